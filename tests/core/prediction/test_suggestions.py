"""Which suggestions show (thresholds, labels and rejected boxes covering them), predicting ahead,
and the simulated person of the benchmark, against brute force."""

import numpy as np
import pytest

from napari_faster_rcnn.core.data.annotations import Annotation
from napari_faster_rcnn.core.prediction.suggestions import (
    COVERED_IOU,
    PredictAhead,
    RejectedBoxes,
    SuggestionCache,
    covered_mask,
    iter_suggestions,
    shown_suggestions,
    simulated_labeling,
)
from napari_faster_rcnn.core.prediction.thresholds import Thresholds, apply_thresholds


def iou(a, b):
    """One pair's IoU, written out."""
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def random_boxes(rng, count, extent=200, sizes=(12, 40)):
    corner = rng.uniform(0, extent, (count, 2))
    return np.concatenate([corner, corner + rng.uniform(*sizes, (count, 2))], axis=1)


def jittered(rng, boxes, spread):
    return boxes + rng.normal(0, spread, boxes.shape)


@pytest.mark.parametrize("seed", range(5))
def test_covered_mask_matches_every_pair(seed):
    rng = np.random.default_rng(seed)
    others = random_boxes(rng, 60)
    boxes = np.concatenate([jittered(rng, others[:30], 3), random_boxes(rng, 40)])  # near copies and strangers
    expected = [any(iou(box, other) >= COVERED_IOU for other in others) for box in boxes]
    assert covered_mask(boxes, others).tolist() == expected
    assert 0 < sum(expected) < len(boxes)


@pytest.mark.parametrize("seed", range(5))
def test_shown_suggestions_leave_out_labeled_and_rejected_boxes(seed):
    rng = np.random.default_rng(seed)
    raw_boxes = random_boxes(rng, 80)
    raw = Annotation(raw_boxes, [["a", "b"][k] for k in rng.integers(0, 2, 80)], scores=rng.random(80))
    thresholds = Thresholds(score_threshold=0.3, nms_threshold=0.6)
    passed = apply_thresholds(raw, thresholds)
    labels = Annotation(jittered(rng, passed.boxes[:8], 2), ["b"] * 8)  # labeled, some under another class
    rejected = jittered(rng, passed.boxes[8:14], 2)
    shown = shown_suggestions(raw, thresholds, labels, rejected)
    expected = [i for i in range(len(passed))
                if all(iou(passed.boxes[i], other) < COVERED_IOU for other in [*labels.boxes, *rejected])]
    assert np.array_equal(shown.boxes, passed.boxes[expected])
    assert shown.labels == [passed.labels[i] for i in expected]
    assert np.array_equal(shown.scores, passed.scores[expected])
    assert len(shown) <= len(passed) - 10  # most of the 14 covered ones are gone


def test_a_rejected_box_stays_away_on_its_image_only():
    raw = Annotation([[10, 10, 50, 50], [60, 60, 90, 90]], ["a", "a"], scores=[0.9, 0.8])
    rejected = RejectedBoxes()
    rejected.add("one.png", [[11, 9, 51, 49]])  # where the model put it before retraining, say
    everything = Thresholds(score_threshold=0.0, nms_threshold=1.0)
    assert shown_suggestions(raw, everything, None, rejected.get("one.png")).boxes.tolist() == [[60, 60, 90, 90]]
    assert len(shown_suggestions(raw, everything, None, rejected.get("two.png"))) == 2
    assert len(rejected) == 1


def test_the_cache_keeps_the_last_images_used():
    cache = SuggestionCache(size=3)
    for key in "abc":
        cache.put(key, Annotation())
    cache.get("a")  # used: "b" is now the oldest
    cache.put("d", Annotation())
    assert sorted(key for key in "abcd" if key in cache) == ["a", "c", "d"]
    with pytest.raises(ValueError):
        SuggestionCache(0)


def test_predicting_ahead_takes_the_wanted_images_in_order_and_skips_cached_ones():
    cache = SuggestionCache()
    cache.put("b", Annotation())
    ahead = PredictAhead(cache)
    ahead.want([("a", 1), ("b", 2), ("c", 3)])
    seen = []

    def predict(item):
        seen.append(item)
        if item == 3:
            raise ValueError("c.png: not an image")
        return Annotation([[0, 0, item, item]], ["x"], scores=[1.0])

    results = []
    for key, raw, reason in iter_suggestions(predict, ahead):
        results.append((key, None if raw is None else len(raw), reason))
        if raw is not None:
            cache.put(key, raw)
    assert seen == [1, 3]
    assert results == [("a", 1, None), ("c", None, "c.png: not an image")]
    ahead.want([("d", 4)])
    ahead.stop()
    assert list(iter_suggestions(predict, ahead)) == [] and not ahead.pending()


def brute_force_labeling(truth, suggestions, threshold):
    """The same person: the best scored suggestion first takes the free true box of its class it overlaps most."""
    free = set(range(len(truth)))
    accepted = 0
    for i in sorted(range(len(suggestions)), key=lambda i: -suggestions.scores[i]):
        best, best_iou = None, -1.0
        for j in sorted(free):
            if truth.labels[j] == suggestions.labels[i] and iou(suggestions.boxes[i], truth.boxes[j]) > best_iou:
                best, best_iou = j, iou(suggestions.boxes[i], truth.boxes[j])
        if best is not None and best_iou >= threshold:
            free.discard(best)
            accepted += 1
    return accepted, len(free)


@pytest.mark.parametrize("seed", range(8))
def test_simulated_labeling_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    truth = Annotation(random_boxes(rng, 12), [["a", "b"][k] for k in rng.integers(0, 2, 12)])
    near = jittered(rng, np.repeat(truth.boxes, 2, axis=0), 3)  # two guesses per object: one-to-one matters
    boxes = np.concatenate([near, random_boxes(rng, 6)])
    labels = [*np.repeat(truth.labels, 2).tolist(), *(["a"] * 6)]
    labels = [label if rng.random() > 0.15 else "b" for label in labels]  # some with the wrong class
    suggestions = Annotation(boxes, labels, scores=rng.random(len(boxes)))
    result = simulated_labeling(truth, suggestions, 0.7)
    assert (result.accepted, result.drawn) == brute_force_labeling(truth, suggestions, 0.7)
    assert result.boxes == 12 and result.rejected == len(suggestions) - result.accepted
    assert 0 < result.accepted < 12


def test_simulated_labeling_without_suggestions_draws_everything():
    truth = Annotation([[0, 0, 10, 10], [20, 20, 30, 30]], ["a", "a"])
    result = simulated_labeling(truth, Annotation(scores=np.zeros(0)))
    assert (result.accepted, result.drawn, result.fewer_drawn) == (0, 2, 0.0)
    exact = simulated_labeling(truth, Annotation(truth.boxes, truth.labels, scores=[0.9, 0.8]))
    assert (exact.accepted, exact.drawn, exact.fewer_drawn) == (2, 0, 1.0)
    assert (exact + result).fewer_drawn == 0.5
