"""Shared by the VOC and COCO evaluations: labels resolved against a class list, the
annotations of many images flattened into arrays, and the vectorized search for each
detection's best ground-truth box among the boxes it overlaps (found through a grid,
so that thousands of boxes in one image are not compared pair by pair). See :mod:`.metrics` for the rules."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np

from napari_faster_rcnn.core.data.annotations import Annotation, class_list

# Candidate pairs (boxes near each other) are computed in chunks of at most
# this many, to bound memory on crowded images.
_PAIR_CHUNK = 1 << 22
# A box reaching more grid bands than this looks up all bands of its key at once.
_MOST_BANDS = 8


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


@dataclass(frozen=True)
class LabelResolution:
    """How the labels of an evaluation resolve (see :func:`resolve_labels`).

    Attributes
    ----------
    classes : list of str
        The evaluation's class list: :attr:`base`, then classes only the predictions name.
    base : list of str
        The class list integer labels are resolved against (:func:`base_classes`).
    source : str or None
        Where :attr:`base` came from (see :func:`base_classes`).
    lookup : dict
        Every raw label of either side, in order of appearance (ground truth first): its class name.
    ground_truth_raw, prediction_raw : dict
        The raw labels of each side, in order of appearance (dicts used as ordered sets).
    """

    classes: list[str]
    base: list[str]
    source: str | None
    lookup: dict[str, str]
    ground_truth_raw: dict
    prediction_raw: dict

    def resolve(self, annotations: Sequence[Annotation]) -> list[list[str]]:
        """Every image's labels resolved: one list per annotation."""
        name = self.lookup.__getitem__
        return [list(map(name, a.labels)) for a in annotations]


def resolve_labels(
    ground_truths: Sequence[Annotation], predictions: Sequence[Annotation], classes: Sequence[str] | None = None
) -> LabelResolution:
    """The class list of an evaluation and how every raw label resolves against it, computed once
    for :func:`evaluation_classes` and :func:`label_notes` alike."""
    check_aligned(ground_truths, predictions)
    base, source = base_classes(ground_truths, predictions, classes)
    raw_gt = dict.fromkeys(chain.from_iterable(a.labels for a in ground_truths))
    raw_pred = dict.fromkeys(chain.from_iterable(a.labels for a in predictions))
    # labels in order of appearance, so classes only predicted come in a stable order
    seen = {**raw_gt, **raw_pred}
    lookup = _label_lookup(seen, base)
    known = set(base)
    extra = dict.fromkeys(name for name in map(lookup.get, seen) if name not in known)
    return LabelResolution(base + list(extra), base, source, lookup, raw_gt, raw_pred)


def evaluation_classes(
    ground_truths: Sequence[Annotation], predictions: Sequence[Annotation], classes: Sequence[str] | None = None,
    resolution: LabelResolution | None = None,
) -> tuple[list[str], list[list[str]], list[list[str]]]:
    """The class list of an evaluation and every image's labels resolved against it.

    Returns ``(classes, ground_truth_labels, prediction_labels)``: the class
    list (see :func:`base_classes`, then classes only the predictions name)
    and the resolved labels, per image. ``resolution``: the
    :func:`resolve_labels` of the same arguments, when made already.
    """
    if resolution is None:
        resolution = resolve_labels(ground_truths, predictions, classes)
    return list(resolution.classes), resolution.resolve(ground_truths), resolution.resolve(predictions)


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
    ground_truths: Sequence[Annotation], predictions: Sequence[Annotation], classes: Sequence[str] | None = None,
    resolution: LabelResolution | None = None,
) -> tuple[list[str], list[str]]:
    """What a user must know about how the labels of both sides were matched: ``(notes, warnings)``.

    A note when integer labels were read as class numbers through a known
    class list (given, or carried by the files), naming the mapping; a warning
    when that list is only the ground truth's labels in order of appearance (a
    guess), and when, after mapping, no predicted label names a ground-truth
    class (every prediction is then a false positive). ``resolution``: the
    :func:`resolve_labels` of the same arguments, when made already.
    """
    if resolution is None:
        resolution = resolve_labels(ground_truths, predictions, classes)
    source, lookup = resolution.source, resolution.lookup
    raw_gt, raw_pred = resolution.ground_truth_raw, resolution.prediction_raw
    notes, warnings = [], []
    mapped = {label: name for label, name in lookup.items() if name != label}
    if mapped:
        sides = [side for side, raw in (("ground-truth", raw_gt), ("predicted", raw_pred)) if set(mapped) & set(raw)]
        origin = {"given": "the class list given (--classes or --checkpoint)", None: "the ground truth's labels in "
                  "order of appearance (no class list known)"}.get(source, source)
        shown = ", ".join(f"{label}={name}" for label, name in sorted(mapped.items(), key=lambda item: int(item[0])))
        text = f"integer {' and '.join(sides)} labels read as class numbers of {origin}: {shown}"
        (notes if source else warnings).append(text)
    truth = set(map(lookup.get, raw_gt))
    predicted = set(map(lookup.get, raw_pred))
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
    image that it overlaps with the highest IoU (the first in the image's box
    order on ties), and that IoU; -1 and -inf when it overlaps none.

    Only overlapping pairs are compared (see :func:`overlapping_pairs`), so the
    time grows with the boxes, not with the pairs of boxes of an image.
    """
    n_dt = len(dt["classes"])
    best_gt = np.full(n_dt, -1, dtype=np.int64)
    best_iou = np.full(n_dt, -np.inf)
    gt_key = gt["images"] * n_classes + gt["classes"]
    dt_key = dt["images"] * n_classes + dt["classes"]
    for pair_dt, pair_gt, iou in overlapping_pairs(gt["boxes"], gt_key, dt["boxes"], dt_key):
        # best per detection: highest IoU, then the lowest ground-truth index
        order = np.lexsort((pair_gt, -iou, pair_dt))
        pair_dt, pair_gt, iou = pair_dt[order], pair_gt[order], iou[order]
        first = np.flatnonzero(np.r_[True, pair_dt[1:] != pair_dt[:-1]])
        pair_dt, pair_gt, iou = pair_dt[first], pair_gt[first], iou[first]
        better = (iou > best_iou[pair_dt]) | ((iou == best_iou[pair_dt]) & (pair_gt < best_gt[pair_dt]))
        best_gt[pair_dt[better]] = pair_gt[better]
        best_iou[pair_dt[better]] = iou[better]
    return best_gt, best_iou


def overlapping_pairs(a_boxes, a_key, b_boxes, b_key):
    """The pairs of boxes of ``a`` and ``b`` with the same key whose interiors overlap
    (IoU above 0), with their IoU: yields ``(b_index, a_index, iou)`` arrays in chunks.

    A grid per box size: the boxes of ``a`` are grouped by their longer side
    into powers of two; in the group of sides up to ``s = 2**level`` each box is
    filed under its key, the band ``s`` high that holds its top edge, and its
    left edge. A box of ``b`` can only overlap one of them whose top edge lies
    less than ``s`` above its own and whose left edge lies less than ``s`` left
    of its own, so it looks up the bands it reaches and, in each, the window of
    left edges; the pairs found are then checked exactly. A box of ``b`` that
    reaches more than a few bands looks up the window of left edges over all
    bands of its key instead. The work grows with the boxes and their near
    neighbours, not with all pairs of a key.
    """
    a_key, b_key = np.asarray(a_key, dtype=np.int64), np.asarray(b_key, dtype=np.int64)
    a_boxes = np.asarray(a_boxes, dtype=np.float64).reshape(-1, 4)
    b_boxes = np.asarray(b_boxes, dtype=np.float64).reshape(-1, 4)
    # only boxes with a positive width and height overlap anything
    a_valid = np.flatnonzero(_has_area(a_boxes))
    b_valid = np.flatnonzero(_has_area(b_boxes))
    if len(a_valid) == 0 or len(b_valid) == 0:
        return
    sides = np.maximum(a_boxes[a_valid, 2] - a_boxes[a_valid, 0], a_boxes[a_valid, 3] - a_boxes[a_valid, 1])
    _, levels = np.frexp(sides)  # longer side <= 2**level
    top = min(a_boxes[a_valid, 1].min(), b_boxes[b_valid, 1].min())
    keys = int(max(a_key.max(), b_key.max())) + 1
    for level in np.unique(levels):
        members = a_valid[levels == level]
        side = np.ldexp(1.0, int(level))
        reach = side * (1 + 1 / 1024)  # room for rounding: a superset of the candidates is enough
        band = np.floor((a_boxes[members, 1] - top) / side)
        bands = int(band.max()) + 1
        if keys * bands >= 2**52:  # the (key, band) number would lose precision: one band
            band, bands = np.zeros(len(members)), 1
        first = np.floor((b_boxes[b_valid, 1] - reach - top) / side).clip(0, bands - 1).astype(np.int64)
        last = np.floor((b_boxes[b_valid, 3] - top) / side).clip(0, bands - 1).astype(np.int64)
        lookups = last - first + 1
        few = lookups <= _MOST_BANDS
        query = b_valid[few]
        lookups = lookups[few]
        query_band = np.repeat(first[few] - np.cumsum(lookups) + lookups, lookups) + np.arange(int(lookups.sum()))
        query = np.repeat(query, lookups)
        yield from _window_pairs(a_boxes, a_key[members] * bands + band.astype(np.int64), members,
                                 b_boxes, b_key[query] * bands + query_band, query, reach)
        if not few.all():
            query = b_valid[~few]
            yield from _window_pairs(a_boxes, a_key[members], members, b_boxes, b_key[query], query, reach)


def _window_pairs(a_boxes, a_cell, members, b_boxes, b_cell, query, reach):
    """Pairs of ``b_boxes[query]`` and ``a_boxes[members]`` of the same cell, the left edge of ``a``
    in ``(x1 - reach, x2)`` of ``b``, that overlap; chunked."""
    # sorted by (cell, left edge): complex numbers sort and search by real, then imaginary part
    sort = np.lexsort((a_boxes[members, 0], a_cell))
    order = members[sort]
    place = a_cell[sort].astype(np.float64) + 1j * a_boxes[order, 0]
    cell = b_cell.astype(np.float64)
    low = np.searchsorted(place, cell + 1j * (b_boxes[query, 0] - reach), side="left")
    high = np.searchsorted(place, cell + 1j * b_boxes[query, 2], side="left")
    count = high - low
    ends = np.cumsum(count)
    start = 0
    while start < len(query):
        limit = (ends[start - 1] if start else 0) + _PAIR_CHUNK
        stop = max(start + 1, int(np.searchsorted(ends, limit, side="right")))
        counts = count[start:stop]
        total = int(counts.sum())
        if total:
            offsets = np.repeat(np.cumsum(counts) - counts, counts)
            pair_b = np.repeat(query[start:stop], counts)
            pair_a = order[np.repeat(low[start:stop], counts) + np.arange(total) - offsets]
            iou = _paired_iou(b_boxes[pair_b], a_boxes[pair_a])
            overlap = iou > 0
            if overlap.any():
                yield pair_b[overlap], pair_a[overlap], iou[overlap]
        start = stop


def _has_area(boxes: np.ndarray) -> np.ndarray:
    finite = np.isfinite(boxes).all(axis=1)
    return finite & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])


def _paired_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    width = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    height = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    intersection = width * height
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a + area_b - intersection
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, intersection / union, 0.0)
