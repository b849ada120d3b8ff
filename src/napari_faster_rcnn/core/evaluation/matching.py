"""Shared by the VOC and COCO evaluations: labels resolved against a class list, the
annotations of many images flattened into arrays, and the vectorized search for each
detection's best ground-truth box. See :mod:`.metrics` for the rules."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from napari_faster_rcnn.core.data.annotations import Annotation, class_list

# Pairs (detection, ground truth of its class in its image) are computed in
# chunks of at most this many, to bound memory on crowded images.
_PAIR_CHUNK = 1 << 22


def map_labels(labels: Sequence[str], classes: Sequence[str]) -> list[str]:
    """Resolve labels against a class list (see the module docstring).

    Examples
    --------
    >>> map_labels(["1", "head", "2", "cat"], ["head"])
    ['head', 'head', '2', 'cat']
    """
    lookup = _label_lookup(set(labels), classes)
    return [lookup[label] for label in labels]


def _label_lookup(labels, classes: Sequence[str]) -> dict[str, str]:
    names = set(classes)
    lookup = {}
    for label in labels:
        if label in names:
            lookup[label] = label
        elif label.isdecimal() and 1 <= int(label) <= len(classes):
            lookup[label] = classes[int(label) - 1]
        else:
            lookup[label] = label
    return lookup


def evaluation_classes(
    ground_truths: Sequence[Annotation], predictions: Sequence[Annotation], classes: Sequence[str] | None = None
) -> tuple[list[str], list[list[str]], list[list[str]]]:
    """The class list of an evaluation and every image's labels resolved against it.

    Returns ``(classes, ground_truth_labels, prediction_labels)``: the class
    list (see :func:`base_classes`, then classes only the predictions name)
    and the resolved labels, per image.
    """
    check_aligned(ground_truths, predictions)
    base, _ = base_classes(ground_truths, predictions, classes)
    # labels in order of appearance, so classes only predicted come in a stable order
    seen = dict.fromkeys(label for a in (*ground_truths, *predictions) for label in a.labels)
    lookup = _label_lookup(seen, base)
    gt_labels = [[lookup[label] for label in a.labels] for a in ground_truths]
    pred_labels = [[lookup[label] for label in a.labels] for a in predictions]
    known = set(base)
    extra = dict.fromkeys(name for name in map(lookup.get, seen) if name not in known)
    return base + list(extra), gt_labels, pred_labels


def base_classes(
    ground_truths: Sequence[Annotation], predictions: Sequence[Annotation], classes: Sequence[str] | None = None
) -> tuple[list[str], str | None]:
    """The class list that integer labels are resolved against, and where it came from.

    ``classes`` when given; else the class list the ground-truth files carry
    (their ``classes``), else the one the prediction files carry (as
    ``predict`` writes them: the model's classes in class-id order), a list
    with names before one of numbers only (``"1"``, ``"2"``), followed
    by the ground truth's labels that are neither in it nor a class number
    into it. Without any list carried by a file, the ground truth's labels in
    order of appearance (the source is then None).
    """
    if classes is not None:
        return list(dict.fromkeys(classes)), "given"
    carried = [
        (list(dict.fromkeys(name for a in annotations for name in a.classes or ())), source)
        for annotations, source in (
            (ground_truths, "the ground truth's class list"), (predictions, "the predictions' class list")
        )
    ]
    # a list of names first: "1", "2", ... (numbered data) resolves nothing another side's names need
    carried.sort(key=lambda item: all(name.isdecimal() for name in item[0]))
    for known, source in carried:
        if known:
            names = set(known)
            rest = dict.fromkeys(
                label for a in ground_truths for label in a.labels
                if label not in names and not (label.isdecimal() and 1 <= int(label) <= len(known))
            )
            return known + list(rest), source
    return class_list(ground_truths), None


def label_notes(
    ground_truths: Sequence[Annotation], predictions: Sequence[Annotation], classes: Sequence[str] | None = None
) -> tuple[list[str], list[str]]:
    """What a user must know about how the labels of both sides were matched: ``(notes, warnings)``.

    A note when integer labels were read as class numbers through a known
    class list (given, or carried by the files), naming the mapping; a warning
    when that list is only the ground truth's labels in order of appearance (a
    guess), and when, after mapping, no predicted label names a ground-truth
    class (every prediction is then a false positive).
    """
    base, source = base_classes(ground_truths, predictions, classes)
    _, gt_labels, pred_labels = evaluation_classes(ground_truths, predictions, classes)
    raw_gt = dict.fromkeys(label for a in ground_truths for label in a.labels)
    raw_pred = dict.fromkeys(label for a in predictions for label in a.labels)
    notes, warnings = [], []
    lookup = _label_lookup({*raw_gt, *raw_pred}, base)
    mapped = {label: name for label, name in lookup.items() if name != label}
    if mapped:
        sides = [side for side, raw in (("ground-truth", raw_gt), ("predicted", raw_pred)) if set(mapped) & set(raw)]
        origin = {"given": "the class list given (--classes or --checkpoint)", None: "the ground truth's labels in "
                  "order of appearance (no class list known)"}.get(source, source)
        shown = ", ".join(f"{label}={name}" for label, name in sorted(mapped.items(), key=lambda item: int(item[0])))
        text = f"integer {' and '.join(sides)} labels read as class numbers of {origin}: {shown}"
        (notes if source else warnings).append(text)
    truth = {name for image in gt_labels for name in image}
    predicted = {name for image in pred_labels for name in image}
    if truth and predicted and not truth & predicted:
        warnings.append(
            f"no predicted label is a ground-truth class (ground truth: {_names(truth)}; predictions: "
            f"{_names(predicted)}), so every prediction counts as a false positive and every AP is 0. If one side "
            "holds class numbers, give the class list in class-id order (--classes A,B,... or --checkpoint)"
        )
    return notes, warnings


def _names(names) -> str:
    ordered = sorted(names, key=lambda name: (not name.isdecimal(), int(name) if name.isdecimal() else 0, name))
    return ", ".join(ordered[:8]) + (", ..." if len(ordered) > 8 else "")


def check_aligned(ground_truths, predictions) -> None:
    if len(ground_truths) != len(predictions):
        raise ValueError(
            f"{len(ground_truths)} ground-truth annotations but {len(predictions)} prediction annotations; "
            "give one of each per image, in the same order"
        )
    for index, prediction in enumerate(predictions):
        if prediction.scores is None and len(prediction):
            raise ValueError(f"predictions of image {index} have no scores; detections are ranked by score")



def flatten(annotations, labels, class_id, with_scores=False) -> dict:
    counts = np.array([len(a) for a in annotations], dtype=np.int64)
    flat = {
        "boxes": np.concatenate([a.boxes for a in annotations]) if annotations else np.zeros((0, 4)),
        "classes": np.fromiter((class_id[label] for image in labels for label in image), np.int64, int(counts.sum())),
        "images": np.repeat(np.arange(len(annotations)), counts),
        "starts": np.concatenate([[0], np.cumsum(counts)]),
    }
    if with_scores:
        scores = [a.scores if a.scores is not None else np.zeros(0) for a in annotations]
        flat["scores"] = np.concatenate(scores) if scores else np.zeros(0)
    return flat


def best_matches(gt: dict, dt: dict, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """For each detection, the ground-truth box (global index) of its class in its
    image with the highest IoU, and that IoU; -1 and -inf when there is none."""
    n_dt = len(dt["classes"])
    best_gt = np.full(n_dt, -1, dtype=np.int64)
    best_iou = np.full(n_dt, -np.inf)
    if n_dt == 0 or len(gt["classes"]) == 0:
        return best_gt, best_iou
    gt_key = gt["images"] * n_classes + gt["classes"]
    gt_order = np.argsort(gt_key, kind="stable")  # stable: boxes of a group keep their order in the image
    sorted_keys = gt_key[gt_order]
    dt_key = dt["images"] * n_classes + dt["classes"]
    first = np.searchsorted(sorted_keys, dt_key, side="left")
    count = np.searchsorted(sorted_keys, dt_key, side="right") - first
    pair_ends = np.cumsum(count)
    start = 0
    while start < n_dt:
        # detections [start, stop) whose pairs fit in one chunk (at least one detection)
        limit = (pair_ends[start - 1] if start else 0) + _PAIR_CHUNK
        stop = max(start + 1, int(np.searchsorted(pair_ends, limit, side="right")))
        _match_chunk(gt, dt, gt_order, first, count, start, stop, best_gt, best_iou)
        start = stop
    return best_gt, best_iou


def _match_chunk(gt, dt, gt_order, first, count, start, stop, best_gt, best_iou) -> None:
    counts = count[start:stop]
    has = np.flatnonzero(counts) + start
    if len(has) == 0:
        return
    counts = count[has]
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    within = np.arange(int(counts.sum())) - np.repeat(offsets, counts)
    pair_dt = np.repeat(has, counts)
    pair_gt = gt_order[np.repeat(first[has], counts) + within]
    iou = _paired_iou(dt["boxes"][pair_dt], gt["boxes"][pair_gt])
    maxima = np.maximum.reduceat(iou, offsets)
    # the first pair (in the image's box order) reaching the maximum
    position = np.where(iou == np.repeat(maxima, counts), np.arange(len(iou)), len(iou))
    chosen = np.minimum.reduceat(position, offsets)
    best_gt[has] = pair_gt[chosen]
    best_iou[has] = maxima


def _paired_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    width = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    height = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    intersection = width * height
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a + area_b - intersection
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, intersection / union, 0.0)
