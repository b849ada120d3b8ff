"""Ranking images by how much labeling them should help: the measures, the greedy order, the model's parts."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from napari_faster_rcnn.core.data.annotations import save_annotation
from napari_faster_rcnn.core.data.boxes import box_iou
from napari_faster_rcnn.core.data.synthetic import make_synthetic_dataset
from napari_faster_rcnn.core.model.config import preset
from napari_faster_rcnn.core.model.detector import build_model
from napari_faster_rcnn.core.prediction.ranking import (
    ImageMeasures,
    RankingWeights,
    confusion_of,
    disagreement_of,
    find_unlabeled_images,
    order_by_usefulness,
    rank_images,
    uncertainty_of,
)

CLASSES = ["circle", "square", "triangle"]


def test_uncertainty_is_highest_at_the_threshold_and_grows_with_doubtful_boxes():
    assert uncertainty_of(np.array([0.5]), 0.5) == pytest.approx(1.0)
    assert uncertainty_of(np.array([0.99, 0.02]), 0.5) == 0.0  # sure either way: nothing to learn
    assert uncertainty_of(np.array([]), 0.5) == 0.0
    one = uncertainty_of(np.array([0.4]), 0.5)
    assert one == pytest.approx(1 - 0.1 / 0.3)
    assert uncertainty_of(np.array([0.4, 0.6]), 0.5) == pytest.approx(1 - (0.1 / 0.3) ** 2)
    assert uncertainty_of(np.array([0.4, 0.6]), 0.5) > one


def test_confusion_is_the_score_weighted_margin_between_the_two_likeliest_classes():
    even = np.array([[0.1, 0.3, 0.3, 0.3]])
    sure = np.array([[0.1, 0.9, 0.0, 0.0]])
    assert confusion_of(even, np.array([0.9])) == pytest.approx(1.0)
    assert confusion_of(sure, np.array([0.9])) == pytest.approx(0.0)
    both = confusion_of(np.concatenate([even, sure]), np.array([0.3, 0.9]))
    assert both == pytest.approx(0.3 / 1.2)
    assert confusion_of(np.array([[0.5, 0.5]]), np.array([0.5])) == 0.0  # one class: no confusion
    assert confusion_of(np.zeros((0, 4)), np.zeros(0)) == 0.0


def brute_force_disagreement(a, sa, la, b, sb, lb):
    """Every one-to-one pairing of equal labels with IoU >= 0.1; the greedy one is the highest-IoU-first one,
    which for these small cases is the pairing of largest total IoU."""
    best = None
    for pairs in itertools.chain.from_iterable(
            itertools.permutations(range(len(b)), r) for r in range(min(len(a), len(b)) + 1)):
        for chosen in itertools.combinations(range(len(a)), len(pairs)):
            ok = all(la[i] == lb[j] and box_iou(a[i:i + 1], b[j:j + 1])[0, 0] >= 0.1 for i, j in zip(chosen, pairs))
            if not ok:
                continue
            total = sum(box_iou(a[i:i + 1], b[j:j + 1])[0, 0] for i, j in zip(chosen, pairs))
            if best is None or total > best[0] + 1e-12:
                best = (total, list(zip(chosen, pairs)))
    pairs = best[1]
    cost = sum(max(sa[i], sb[j]) * (1 - box_iou(a[i:i + 1], b[j:j + 1])[0, 0]) for i, j in pairs)
    weight = sum(max(sa[i], sb[j]) for i, j in pairs)
    unmatched = sum(sa[i] for i in range(len(a)) if i not in {p[0] for p in pairs})
    unmatched += sum(sb[j] for j in range(len(b)) if j not in {p[1] for p in pairs})
    return (cost + unmatched) / (weight + unmatched)


def test_disagreement_matches_a_brute_force_pairing():
    box = np.array([[10.0, 10, 30, 30]])
    assert disagreement_of(box, [0.9], [1], box, [0.8], [1]) == 0.0
    assert disagreement_of(box, [0.9], [1], np.zeros((0, 4)), [], []) == 1.0
    assert disagreement_of(box, [0.9], [1], box, [0.8], [2]) == 1.0  # another class: no pair
    assert disagreement_of(np.zeros((0, 4)), [], [], np.zeros((0, 4)), [], []) == 0.0
    rng = np.random.default_rng(0)
    for _ in range(30):
        n, m = rng.integers(0, 4, 2)
        corners = rng.uniform(0, 40, (n + m, 2))
        boxes = np.concatenate([corners, corners + rng.uniform(5, 20, (n + m, 2))], axis=1)
        scores, labels = rng.uniform(0.2, 1, n + m), rng.integers(1, 3, n + m)
        a, b = boxes[:n], boxes[n:]
        if n + m == 0:
            continue
        got = disagreement_of(a, scores[:n], labels[:n], b, scores[n:], labels[n:])
        assert got == pytest.approx(brute_force_disagreement(a, scores[:n], labels[:n], b, scores[n:], labels[n:]))


def measures(parts, features):
    return [ImageMeasures(k, f"image {k}", *p, detections=0, features=np.asarray(f, float))
            for k, (p, f) in enumerate(zip(parts, features))]


def test_without_diversity_the_order_is_by_informativeness():
    rng = np.random.default_rng(1)
    parts = rng.uniform(0, 1, (20, 3))
    ranking = order_by_usefulness(measures(parts, rng.normal(size=(20, 5))), RankingWeights(diversity=0.0))
    assert [s.image for s in ranking] == [f"image {k}" for k in np.argsort(-parts.mean(axis=1), kind="stable")]
    assert [s.rank for s in ranking] == list(range(1, 21))
    assert all(s.score == pytest.approx(s.informativeness) for s in ranking)


def test_diversity_keeps_near_duplicates_out_of_the_top():
    # images 0 and 1 are the most informative and alike; image 2 a little less informative and different
    parts = [(0.9, 0.9, 0.9), (0.88, 0.88, 0.88), (0.7, 0.7, 0.7), (0.1, 0.1, 0.1)]
    features = [[1, 0, 0], [1, 0.01, 0], [0, 1, 0], [0, 0, 1]]
    plain = order_by_usefulness(measures(parts, features), RankingWeights(diversity=0.0))
    diverse = order_by_usefulness(measures(parts, features), RankingWeights(diversity=0.5), top=2)
    assert [s.image for s in plain[:2]] == ["image 0", "image 1"]
    assert [s.image for s in diverse] == ["image 0", "image 2"]
    assert diverse[0].redundancy == 0.0 and diverse[1].score <= diverse[0].score
    full = order_by_usefulness(measures(parts, features))
    assert all(a.score >= b.score for a, b in zip(full, full[1:]))  # scores fall along the ranking
    assert [s.image for s in full] == ["image 0", "image 2", "image 1", "image 3"]
    assert full[2].redundancy > 0.9


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    model = build_model(preset("cpu", CLASSES, min_size=64, max_size=64)).eval()
    with torch.no_grad():  # an untrained model scores everything near 1/4: raise the objects a little
        model.roi_heads.box_predictor.cls_score.bias[:] = torch.tensor([0.0, 1.0, 1.0, 1.0])
    return model


def test_the_model_ranks_every_image_and_keeps_its_settings(model):
    images = [image for image, _ in make_synthetic_dataset(6, seed=2, height=64, width=64)]
    before = (model.roi_heads.score_thresh, model.roi_heads.nms_thresh, model.roi_heads.detections_per_img)
    ranking = rank_images(model, images, batch_size=4)
    assert sorted(s.image for s in ranking) == sorted(f"image {k}" for k in range(6))
    for score in ranking:
        for name in ("uncertainty", "confusion", "disagreement", "informativeness", "redundancy"):
            assert 0.0 <= getattr(score, name) <= 1.0
        assert set(score.to_dict()) >= {"image", "score", "uncertainty", "confusion", "disagreement"}
    assert (model.roi_heads.score_thresh, model.roi_heads.nms_thresh, model.roi_heads.detections_per_img) == before
    assert not model.training
    assert len(rank_images(model, images, top=2)) == 2
    # batches do not change an image's measures
    alone = {s.image: s.informativeness for s in rank_images(model, images[:1], batch_size=1)}
    together = {s.image: s.informativeness for s in ranking}
    assert alone["image 0"] == pytest.approx(together["image 0"], abs=1e-4)


def test_an_image_and_its_mirror_image_disagree_alike(model):
    image = make_synthetic_dataset(1, seed=4, height=64, width=64)[0][0]
    first, second = (rank_images(model, [array], batch_size=1)[0] for array in (image, image[:, ::-1].copy()))
    assert first.disagreement == pytest.approx(second.disagreement, abs=1e-3)


def test_the_detections_are_the_models_own(model):
    """The parts called one by one give what the model's forward gives."""
    from napari_faster_rcnn.core.prediction.ranking import iter_image_measures
    from napari_faster_rcnn.core.progress import run_to_end

    images = [image for image, _ in make_synthetic_dataset(2, seed=6, height=64, width=64)]
    tensors = [torch.from_numpy(image).permute(2, 0, 1).float() / 255 for image in images]
    seen = []  # the box head's class probabilities of every proposal, as the model's own forward computes them
    hook = model.roi_heads.box_predictor.register_forward_hook(lambda module, args, out: seen.append(out[0]))
    with torch.inference_mode():
        model.roi_heads.score_thresh = 0.01
        expected = [model([tensor])[0] for tensor in tensors]
        model.roi_heads.score_thresh = 0.05
    hook.remove()
    measured = run_to_end(iter_image_measures(model, images, threshold=0.3, batch_size=2))
    for output, measure, logits in zip(expected, measured, seen):
        foreground = 1 - torch.softmax(logits, dim=-1)[:, 0]
        assert measure.low_confidence == pytest.approx(1 - float(foreground.max()), abs=1e-4)
        assert measure.detections == int((output["scores"] >= 0.3).sum())
        assert measure.uncertainty == pytest.approx(uncertainty_of(output["scores"].numpy()[
            output["scores"].numpy() >= 0.05], 0.3), abs=1e-4)


def test_unlabeled_images_are_those_without_an_annotation_file(tutorial_dataset, side_by_side_dataset):
    for name in ("001", "004"):
        (tutorial_dataset / "target" / f"{name}.pt").unlink()
    found, skipped = find_unlabeled_images(tutorial_dataset)
    assert [p.name for p in found] == ["001.png", "004.png"]
    assert sum(reason.startswith("labeled") for _, reason in skipped) == 4
    found, _ = find_unlabeled_images([side_by_side_dataset / "a.png", side_by_side_dataset / "c.png"])
    assert [p.name for p in found] == ["c.png"]
    found, _ = find_unlabeled_images([tutorial_dataset / "input" / "000.png", tutorial_dataset / "input" / "001.png"])
    assert [p.name for p in found] == ["001.png"]
    save_annotation(side_by_side_dataset / "c.pt", make_synthetic_dataset(1)[0][1])
    assert find_unlabeled_images(side_by_side_dataset)[0] == []
