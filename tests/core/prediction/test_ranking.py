"""Ranking images by how much labeling them should help: the measures, the greedy order, the model's parts."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from napari_faster_rcnn.core.data.boxes import box_iou
from napari_faster_rcnn.core.data.synthetic import make_synthetic_dataset
from napari_faster_rcnn.core.model.config import preset
from napari_faster_rcnn.core.model.detector import build_model
from napari_faster_rcnn.core.prediction.doubt import ImageMeasures, confusion_of, disagreement_of, uncertainty_of
from napari_faster_rcnn.core.prediction.measuring import iter_image_features, iter_image_measures
from napari_faster_rcnn.core.prediction.ranking import iter_ranking, rank_images
from napari_faster_rcnn.core.prediction.usefulness import RankingWeights, order_by_usefulness, percentiles
from napari_faster_rcnn.core.progress import run_to_end

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
    return [ImageMeasures(k, f"image {k}", *p[:3], detections=0, features=np.asarray(f, float),
                          low_confidence=p[3] if len(p) > 3 else 0.0)
            for k, (p, f) in enumerate(zip(parts, features))]


def brute_force_percentiles(values):
    """Each value's share of the other values below it, ties counting half, one by one."""
    values = list(values)
    if len(values) == 1:
        return [0.5]
    return [sum((w < v) + 0.5 * (w == v) for j, w in enumerate(values) if j != i) / (len(values) - 1)
            for i, v in enumerate(values)]


def brute_force_informativeness(parts, weights=RankingWeights()):
    parts = np.asarray(parts, float)
    columns = [brute_force_percentiles(parts[:, k]) for k in range(parts.shape[1])]
    mix = [weights.uncertainty, weights.confusion, weights.disagreement, weights.low_confidence][:parts.shape[1]]
    return [sum(w * c[i] for w, c in zip(mix, columns)) / sum(mix) for i in range(len(parts))]


def test_percentiles_match_a_brute_force_count():
    rng = np.random.default_rng(3)
    values = rng.integers(0, 5, 40).astype(float)  # many ties
    assert percentiles(values) == pytest.approx(brute_force_percentiles(values))
    assert percentiles(np.array([0.3])) == pytest.approx([0.5])
    assert percentiles(np.array([2.0, 1.0, 3.0])) == pytest.approx([0.5, 0.0, 1.0])
    assert len(percentiles(np.zeros(0))) == 0


def test_without_diversity_the_order_is_by_the_weighted_mean_of_percentiles():
    rng = np.random.default_rng(1)
    parts = rng.uniform(0, 1, (20, 4))
    parts[:, 0] = np.round(parts[:, 0], 1)  # ties
    ranking = order_by_usefulness(measures(parts, rng.normal(size=(20, 5))), RankingWeights(diversity=0.0))
    expected = brute_force_informativeness(parts)
    assert [s.image for s in ranking] == [f"image {k}" for k in np.argsort(-np.array(expected), kind="stable")]
    assert [s.rank for s in ranking] == list(range(1, 21))
    assert all(s.score == pytest.approx(s.informativeness) for s in ranking)
    assert sorted(s.informativeness for s in ranking) == pytest.approx(sorted(expected))


def test_no_part_outweighs_the_others_by_its_scale():
    """Parts count by their order among the images, not their size: squashing one part's values
    into a narrow range (the same order) leaves the ranking as it was."""
    rng = np.random.default_rng(2)
    parts = rng.uniform(0, 1, (30, 4))
    features = rng.normal(size=(30, 6))
    squashed = parts.copy()
    squashed[:, 0] = 0.9 + 0.01 * parts[:, 0] ** 2  # uncertainty near 1 everywhere, as with a weak model
    squashed[:, 3] = 0.001 * parts[:, 3]  # low_confidence near 0 everywhere, as with a strong model
    before = [s.image for s in order_by_usefulness(measures(parts, features))]
    after = [s.image for s in order_by_usefulness(measures(squashed, features))]
    assert after == before


def test_an_image_the_model_is_sure_of_ranks_below_one_it_is_not_sure_of():
    # all alike but for low_confidence: 1 - the highest foreground probability of any proposal
    sure = (0.5, 0.3, 0.2, 0.01)  # an object at foreground probability 0.99
    unsure = (0.5, 0.3, 0.2, 0.60)  # no proposal above 0.4
    others = [(0.5, 0.3, 0.2, 0.1)] * 4
    ranking = order_by_usefulness(measures([sure, unsure] + others, np.eye(6)), RankingWeights(diversity=0.0))
    names = [s.image for s in ranking]
    assert names[0] == "image 1" and names[-1] == "image 0"
    # low_confidence outweighs one other part pulling the other way (the default weights)
    sure_but_doubtful = (0.9, 0.3, 0.2, 0.01)
    ranking = order_by_usefulness(measures([sure_but_doubtful, unsure] + others, np.eye(6)),
                                  RankingWeights(diversity=0.0))
    assert [s.image for s in ranking].index("image 1") < [s.image for s in ranking].index("image 0")


def brute_force_order(parts, features, weights, top=None):
    """The greedy order of the module docstring, written out plainly."""
    informativeness = np.array(brute_force_informativeness(parts, weights))
    features = np.asarray(features, float)
    features = features - features.mean(axis=0)
    features = features / np.linalg.norm(features, axis=1, keepdims=True)
    group = max(top or 0, 16)
    left = sorted(range(len(parts)), key=lambda k: (-informativeness[k], k))
    chosen = []
    while left and (top is None or len(chosen) < top):
        if len(chosen) < group:
            def adjusted(k):
                similarity = max([max(0.0, float(features[k] @ features[j])) for j in chosen] or [0.0])
                return informativeness[k] - weights.diversity * similarity
            candidates = left[:3 * group]
            best = max(candidates, key=lambda k: (adjusted(k), -candidates.index(k)))
        else:
            best = left[0]
        chosen.append(best)
        left.remove(best)
    return [f"image {k}" for k in chosen]


def test_diversity_keeps_near_duplicates_out_of_the_top_group_only():
    rng = np.random.default_rng(5)
    count = 80
    parts = rng.uniform(0, 1, (count, 4))
    # five tight clusters of near-duplicates (cosine > 0.99 within a cluster)
    centres = rng.normal(size=(5, 8))
    features = centres[np.arange(count) % 5] + 0.01 * rng.normal(size=(count, 8))
    weights = RankingWeights()
    diverse = order_by_usefulness(measures(parts, features), weights)
    plain = order_by_usefulness(measures(parts, features), RankingWeights(diversity=0.0))
    assert [s.image for s in diverse] == brute_force_order(parts, features, weights)
    assert [s.image for s in order_by_usefulness(measures(parts, features), weights, top=20)] == \
        brute_force_order(parts, features, weights, top=20)
    cluster = {f"image {k}": k % 5 for k in range(count)}
    # the top 5: one of each cluster; without the diversity term they repeat clusters
    assert len({cluster[s.image] for s in diverse[:5]}) == 5
    assert len({cluster[s.image] for s in plain[:5]}) < 5
    # each of the first 16 is among the 48 most informative; after them the order is informativeness'
    by_informativeness = [s.image for s in plain]
    assert {s.image for s in diverse[:16]} <= set(by_informativeness[:48])
    rest = [s.image for s in diverse[16:]]
    assert rest == [name for name in by_informativeness if name in set(rest)]
    assert all(s.redundancy == 0.0 and s.score == s.informativeness for s in diverse[16:])
    assert diverse[0].redundancy == 0.0 and all(s.redundancy > 0.9 for s in diverse[5:16])
    # one cluster but for the 71st most informative image: not chosen while 48 more informative are left
    odd = int(by_informativeness[70].split()[-1])
    features = np.ones((count, 8)) + 0.01 * rng.normal(size=(count, 8))
    features[odd] = -5.0
    weights = RankingWeights(diversity=1.0)
    diverse = [s.image for s in order_by_usefulness(measures(parts, features), weights)]
    assert diverse == brute_force_order(parts, features, weights)
    assert diverse.index(f"image {odd}") >= 16


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
    # batches do not change an image's measures (its informativeness is relative to the images ranked with it)
    alone = rank_images(model, images[:1], batch_size=1)[0].to_dict()
    together = next(s for s in ranking if s.image == "image 0").to_dict()
    for name in ("uncertainty", "confusion", "disagreement", "low_confidence"):
        assert alone[name] == pytest.approx(together[name], abs=1e-4)
    # the order is the one the measured parts give (weighted mean of percentiles, the diversity term)
    features = [m.features for m in run_to_end(iter_image_measures(model, images, batch_size=4))]
    parts = [[by_name[s.image][name] for name in ("uncertainty", "confusion", "disagreement", "low_confidence")]
             for s in sorted(ranking, key=lambda s: int(s.image.split()[-1]))
             for by_name in [{x.image: x.to_dict() for x in ranking}]]
    assert [s.image for s in ranking] == brute_force_order(parts, features, RankingWeights())


def test_an_image_and_its_mirror_image_disagree_alike(model):
    image = make_synthetic_dataset(1, seed=4, height=64, width=64)[0][0]
    first, second = (rank_images(model, [array], batch_size=1)[0] for array in (image, image[:, ::-1].copy()))
    assert first.disagreement == pytest.approx(second.disagreement, abs=1e-3)


def test_the_detections_are_the_models_own(model):
    """The parts called one by one give what the model's forward gives."""
    images = [image for image, _ in make_synthetic_dataset(2, seed=6, height=64, width=64)]
    tensors = [torch.from_numpy(image).permute(2, 0, 1).float() / 255 for image in images]
    seen = []  # the box head's class probabilities of every proposal, as the model's own forward computes them
    hook = model.roi_heads.box_predictor.register_forward_hook(lambda module, args, out: seen.append(out[0]))
    with torch.inference_mode():
        model.roi_heads.score_thresh = 0.01
        expected = [model([tensor])[0] for tensor in tensors]
        for tensor in tensors:  # the mirror images
            model([tensor.flip(-1)])
        model.roi_heads.score_thresh = 0.05
    hook.remove()
    measured = run_to_end(iter_image_measures(model, images, threshold=0.3, batch_size=2))
    for output, measure, logits, mirror in zip(expected, measured, seen, seen[2:]):
        surest = [np.sort((1 - torch.softmax(x, dim=-1)[:, 0]).numpy())[::-1][:3].mean() for x in (logits, mirror)]
        assert measure.low_confidence == pytest.approx(1 - np.mean(surest), abs=1e-4)
        assert measure.detections == int((output["scores"] >= 0.3).sum())
        assert measure.uncertainty == pytest.approx(uncertainty_of(output["scores"].numpy()[
            output["scores"].numpy() >= 0.05], 0.3), abs=1e-4)


def brute_force_novelty(features, labeled):
    """The Euclidean distance to the nearest labeled image over the RMS distance of all images to their mean, one by one."""
    rows = [np.asarray(f, float) for f in list(features) + list(labeled)]
    mean = sum(rows) / len(rows)
    spread = np.sqrt(sum(float(np.sum((r - mean) ** 2)) for r in rows) / len(rows))
    return [min(float(np.linalg.norm(np.asarray(a, float) - np.asarray(b, float))) for b in labeled) / spread
            for a in features]


def brute_force_labeled_order(parts, features, labeled, weights, top):
    """The greedy order with novelty as a fifth part (cosine redundancy on features centred on all images)."""
    novelty = brute_force_novelty(features, labeled)
    columns = [brute_force_percentiles(np.asarray(parts, float)[:, k]) for k in range(4)] + [brute_force_percentiles(novelty)]
    mix = [weights.uncertainty, weights.confusion, weights.disagreement, weights.low_confidence, weights.novelty]
    informativeness = [sum(w * c[i] for w, c in zip(mix, columns)) / sum(mix) for i in range(len(parts))]
    rows = np.concatenate([np.asarray(features, float), np.asarray(labeled, float)])
    rows = rows - rows.mean(axis=0)
    rows = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    images = rows[:len(features)]
    left = sorted(range(len(parts)), key=lambda k: (-informativeness[k], k))
    chosen = []
    while len(chosen) < top:
        def adjusted(k):
            similarity = max([max(0.0, float(images[k] @ images[j])) for j in chosen] or [0.0])
            return informativeness[k] - weights.diversity * similarity
        candidates = left[:3 * max(top, 16)]
        best = max(candidates, key=lambda k: (adjusted(k), -candidates.index(k)))
        chosen.append(best)
        left.remove(best)
    return [f"image {k}" for k in chosen], novelty


def test_an_image_unlike_every_labeled_one_outranks_a_near_duplicate_of_one():
    rng = np.random.default_rng(11)
    labeled = rng.normal(size=(6, 8))
    features = np.concatenate([labeled[:3] + 0.01 * rng.normal(size=(3, 8)),  # near-duplicates of labeled images
                               rng.normal(size=(3, 8)) * 3])  # unlike them
    parts = [(0.5, 0.3, 0.2, 0.1)] * 6  # alike in every other part
    ranking = order_by_usefulness(measures(parts, features), RankingWeights(), labeled_features=list(labeled))
    novelty = {s.image: s.novelty for s in ranking}
    expected = brute_force_novelty(features, labeled)
    assert [novelty[f"image {k}"] for k in range(6)] == pytest.approx(expected, abs=1e-9)
    assert all(novelty[f"image {k}"] < 0.02 for k in range(3)) and all(novelty[f"image {k}"] > 0.3 for k in range(3, 6))
    # the three unlike the labeled images first, the near-duplicates last
    assert {s.image for s in ranking[:3]} == {"image 3", "image 4", "image 5"}
    # without the labeled images the near-duplicates are not told apart: novelty 0, it does not count
    unaware = order_by_usefulness(measures(parts, features), RankingWeights())
    assert all(s.novelty == 0.0 for s in unaware)
    assert [s.image for s in unaware] == [s.image for s in order_by_usefulness(
        measures(parts, features), RankingWeights(novelty=0.0))] == brute_force_order(parts, features, RankingWeights())


def test_the_order_with_labeled_images_matches_a_brute_force_one():
    rng = np.random.default_rng(12)
    parts = rng.uniform(0, 1, (40, 4))
    features = rng.normal(size=(40, 6))
    labeled = rng.normal(size=(10, 6)) + 0.5
    for weights in (RankingWeights(), RankingWeights(diversity=1.0, novelty=3.0)):
        ranking = order_by_usefulness(measures(parts, features), weights, top=12, labeled_features=list(labeled))
        order, novelty = brute_force_labeled_order(parts, features, labeled, weights, 12)
        assert [s.image for s in ranking] == order
        assert [s.novelty for s in ranking] == pytest.approx([novelty[int(name.split()[-1])] for name in order])


def test_labeled_images_go_through_the_backbone_only_and_change_the_ranking(model):
    images = [image for image, _ in make_synthetic_dataset(6, seed=8, height=64, width=64)]
    pool, labeled = images[:4], images[4:]
    measured = run_to_end(iter_image_measures(model, images, batch_size=3))
    features = run_to_end(iter_image_features(model, images, batch_size=4))
    for measure, vector in zip(measured, features):  # the same pooled features as the full pass
        np.testing.assert_allclose(vector, measure.features, rtol=1e-4, atol=1e-5)
    steps = []
    ranking = run_to_end(iter_ranking(model, pool, batch_size=2, labeled=labeled), steps.append)
    assert steps[-1].done == steps[-1].total == 6  # the progress counts the labeled images too
    expected = order_by_usefulness(measured[:4], RankingWeights(), labeled_features=features[4:])
    assert [s.image for s in ranking] == [s.image for s in expected]
    assert [s.novelty for s in ranking] == pytest.approx([s.novelty for s in expected], abs=1e-4)
    assert all(s.novelty > 0 for s in ranking)
    assert rank_images(model, pool, labeled=labeled)[0].to_dict()["novelty"] == pytest.approx(ranking[0].novelty)


def test_an_unreadable_image_or_labeled_image_is_reported_by_name_and_left_out(model, tmp_path):
    from PIL import Image

    images = [image for image, _ in make_synthetic_dataset(5, seed=9, height=64, width=64)]
    paths = []
    for index, image in enumerate(images[:3]):
        paths.append(tmp_path / f"{index}.png")
        Image.fromarray(image).save(paths[-1])
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    steps = []
    ranking = run_to_end(iter_ranking(model, [paths[0], broken, paths[1], paths[2]], batch_size=2,
                                      labeled=[images[3], broken, images[4]]), steps.append)
    errors = [step.error for step in steps if step.error]
    assert len(errors) == 2 and all(error.startswith(str(broken)) for error in errors)
    assert sorted(score.image for score in ranking) == sorted(map(str, paths))  # the readable ones, all of them
    assert steps[-1].done == steps[-1].total == 5  # 3 measured and 2 labeled images read
    # the same ranking as of the readable images alone
    expected = rank_images(model, paths, batch_size=2, labeled=[images[3], images[4]])
    assert [s.image for s in ranking] == [s.image for s in expected]
