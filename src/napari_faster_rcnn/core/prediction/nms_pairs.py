"""The overlapping pairs of boxes that calibration needs, and greedy NMS at every NMS value at once
(see :mod:`~napari_faster_rcnn.core.prediction.calibration`).

One sweep over the boxes (sorted by image, class and left edge) finds every pair that can overlap
enough: detection pairs become NMS edges (:func:`nms_edges`), detection-box pairs the matches at the
IoU threshold (:func:`split_pairs`); crowded columns go through the grid of
:func:`~napari_faster_rcnn.core.evaluation.matching.overlapping_pairs` instead. :func:`nms_survivors`
settles greedy NMS for every NMS value in one pass over the edges; :func:`greedy_nms` is the plain
greedy NMS it agrees with.
"""

from __future__ import annotations

import numpy as np

from napari_faster_rcnn.core.evaluation.matching import overlapping_pairs

__all__ = ["greedy_nms", "grid_edges", "near_pairs", "nms_edges", "nms_survivors", "split_pairs"]

# Pairs of detections compared at once, to bound memory.
_PAIR_CHUNK = 1 << 22
# Above this many pairs per detection (groups of ~100 detections of one class in one image),
# overlapping pairs are found through a grid rather than by comparing every pair.
_DENSE_PAIRS = 50


# --- overlapping pairs: one sweep for NMS and matching ----------------------------------


def _sweep(boxes, key, reach_iou: float):
    """Candidate pairs ``(i, j)`` (indices into ``boxes``) of the same key that can overlap with IoU
    above ``reach_iou``, each pair once, in chunks; None when they are too many (crowded columns).

    A sweep along x: sorted by (key, left edge), a box is paired with the boxes after it in its
    key whose left edge lies before its right edge less ``reach_iou`` times its width (IoU above
    t needs an overlap wider than t times either width; a little wider, for rounding). Key and
    left edge are folded into one float, ``key * stride + x1``, with ``stride`` above twice the
    span of the x coordinates: rounding keeps that order monotone, so the windows found hold at
    least every such pair (the exact IoU decides afterwards).
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    valid = np.flatnonzero(np.isfinite(boxes).all(axis=1) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1]))
    if len(valid) < 2:
        return []
    x1, x2, group = boxes[valid, 0], boxes[valid, 2], np.asarray(key, dtype=np.int64)[valid]
    low = float(x1.min())
    stride = 2.0 * (float(x2.max()) - low) + 2.0
    base = group.astype(np.float64) * stride
    place = base + (x1 - low)
    sort = np.argsort(place)
    order, place = valid[sort], place[sort]
    reach = x2 - max(float(reach_iou) * (1 - 1e-6), 0.0) * (x2 - x1)
    end = np.searchsorted(place, (base + (reach - low))[sort], side="right")
    after = np.maximum(end - np.arange(len(order)) - 1, 0)
    if int(after.sum()) > _DENSE_PAIRS * len(order):
        return None
    # folded keys stay apart unless key * stride nears 2**52: then check the keys of the pairs
    exact_keys = float(np.abs(group).max()) * stride < 2.0**50
    return _chunked_pairs(order, after, None if exact_keys else np.asarray(key, dtype=np.int64))


def _chunked_pairs(order, after, key):
    ends = np.cumsum(after)
    first, count = 0, len(order)
    while first < count:
        stop = max(first + 1, int(np.searchsorted(ends, (ends[first - 1] if first else 0) + _PAIR_CHUNK, "right")))
        counts = after[first:stop]
        total = int(counts.sum())
        if total:
            left = np.repeat(np.arange(first, stop), counts)
            right = left + 1 + np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
            a, b = order[left], order[right]
            if key is not None:
                same = key[a] == key[b]
                a, b = a[same], b[same]
            yield a, b
        first = stop


class _Boxes:
    """Box columns and areas, for the IoU of many pairs (the arithmetic of the evaluation's matching)."""

    def __init__(self, boxes):
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        self.x1, self.y1, self.x2, self.y2 = (np.ascontiguousarray(boxes[:, k]) for k in range(4))
        self.area = (self.x2 - self.x1) * (self.y2 - self.y1)

    def iou(self, a, b):
        width = np.minimum(self.x2[a], self.x2[b])
        width -= np.maximum(self.x1[a], self.x1[b])
        np.maximum(width, 0, out=width)
        height = np.minimum(self.y2[a], self.y2[b])
        height -= np.maximum(self.y1[a], self.y1[b])
        np.maximum(height, 0, out=height)
        width *= height  # the intersection
        union = self.area[a] + self.area[b]
        union -= width
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(union > 0, width / union, 0.0)


def near_pairs(dt_boxes, dt_key, gt_boxes, gt_key, reach_iou: float):
    """The pairs of two detections, or of a detection and a ground-truth box, of the same key that
    can overlap with IoU above ``reach_iou``, with their IoU: ``(a, b, iou)`` over the detections
    followed by the boxes (``b >= len(dt_boxes)`` is box ``b - len(dt_boxes)``); None when crowded."""
    n = len(dt_boxes)
    boxes = np.concatenate([np.asarray(dt_boxes, dtype=np.float64).reshape(-1, 4),
                            np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)])
    keys = np.concatenate([np.asarray(dt_key, dtype=np.int64), np.asarray(gt_key, dtype=np.int64)])
    chunks = _sweep(boxes, keys, reach_iou)
    if chunks is None:
        return None
    columns = _Boxes(boxes)
    found_a, found_b, found_iou = [], [], []
    for a, b in chunks:
        # two ground-truth boxes: not needed; a detection first
        low, high = np.minimum(a, b), np.maximum(a, b)
        needed = low < n
        a, b = low[needed], high[needed]
        iou = columns.iou(a, b)
        overlap = iou > 0
        found_a.append(a[overlap])
        found_b.append(b[overlap])
        found_iou.append(iou[overlap])
    return _joined(found_a, found_b, found_iou)


def split_pairs(pairs, n, rank, above: float, iou_threshold: float):
    """NMS edges (see :func:`nms_edges`) and each detection's match (see
    :func:`~napari_faster_rcnn.core.evaluation.matching.best_matches`) from :func:`near_pairs`:
    ``best_gt`` and ``best_iou`` are exact for the detections whose best IoU is at least
    ``iou_threshold``, -1 and -inf for the others (no match there in either case)."""
    a, b, iou = pairs
    both = b < n
    edge = both & (iou > max(above, 0.0))
    ea, eb, eiou = a[edge], b[edge], iou[edge]
    swap = rank[eb] < rank[ea]
    edges = (np.where(swap, eb, ea), np.where(swap, ea, eb), eiou)
    match = ~both & (iou >= iou_threshold)
    detection, box, match_iou = a[match], b[match] - n, iou[match]
    best_iou = np.full(n, -np.inf)
    np.maximum.at(best_iou, detection, match_iou)
    # on ties the first box in the images' order
    top = match_iou == best_iou[detection]
    best_gt = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(best_gt, detection[top], box[top])
    best_gt[best_iou == -np.inf] = -1
    return edges, best_gt, best_iou


def nms_edges(boxes, key, rank, above: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(better, worse, iou)``: every pair of detections of the same image and class that overlap
    with IoU above ``above``, the better-ranked first.

    A sweep along x (see :func:`_sweep`); when that leaves too many pairs (more than
    :data:`_DENSE_PAIRS` per detection: crowded columns), the grid of ``overlapping_pairs``
    finds them instead.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    rank = np.asarray(rank)
    chunks = _sweep(boxes, key, above)
    if chunks is None:
        return grid_edges(boxes, key, rank, above)
    columns = _Boxes(boxes)
    better, worse, ious = [], [], []
    for a, b in chunks:
        iou = columns.iou(a, b)
        overlap = iou > max(float(above), 0.0)
        a, b, iou = a[overlap], b[overlap], iou[overlap]
        swap = rank[b] < rank[a]
        better.append(np.where(swap, b, a))
        worse.append(np.where(swap, a, b))
        ious.append(iou)
    return _joined(better, worse, ious)


def _joined(first: list, second: list, ious: list):
    """Pairs found chunk by chunk as three arrays (indices, indices, IoUs); empty ones when none."""
    if not first:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    return np.concatenate(first), np.concatenate(second), np.concatenate(ious)


def grid_edges(boxes, key, rank, above: float = 0.0):
    better, worse, ious = [], [], []
    for b_index, a_index, iou in overlapping_pairs(boxes, key, boxes, key):
        keep = (rank[a_index] < rank[b_index]) & (iou > above)
        better.append(a_index[keep])
        worse.append(b_index[keep])
        ious.append(iou[keep])
    return _joined(better, worse, ious)


# --- greedy NMS for every image and every NMS value at once --------------------------------

# NMS values decided together in one pass over the edges (bits of one integer).
_BITS = 62


def greedy_nms(edges, rank, nms_threshold: float) -> np.ndarray:
    """Which detections greedy NMS keeps (a ``(n,)`` bool mask), given the overlapping pairs of
    :func:`nms_edges` and each detection's rank: a detection is dropped when a kept, better-ranked
    one overlaps it with IoU above ``nms_threshold``, as ``torchvision.ops.batched_nms``
    (see :func:`nms_survivors`)."""
    return nms_survivors(edges, len(rank), [nms_threshold])[float(nms_threshold)]


def nms_survivors(edges, n: int, thresholds) -> dict[float, np.ndarray]:
    """Greedy NMS (see :func:`greedy_nms`) at every NMS IoU of ``thresholds``: ``{threshold: kept}``.

    A detection without a better one overlapping it above the threshold is kept; in the first
    round, every detection that such a detection overlaps above the threshold is dropped. That
    round is done for all thresholds in one pass over the edges: each edge drops its worse end at
    the thresholds below its IoU and at or above the largest IoU into its better end (where the
    better one is kept outright), a range of bits of one integer per detection. The few
    detections left undecided are settled threshold by threshold in rounds: one whose better
    overlapping ones are all decided is kept when none of them is kept, else dropped.
    """
    better, worse, iou = edges
    values = sorted({float(value) for value in thresholds})
    # the largest IoU with a better detection: a detection is a root (kept outright) at thresholds at or above it
    incoming = np.full(n, -np.inf)
    np.maximum.at(incoming, worse, iou)
    result = {}
    for first in range(0, len(values), _BITS):
        chunk = values[first:first + _BITS]
        below = np.left_shift(np.uint64(1), np.arange(len(chunk) + 1, dtype=np.uint64)) - np.uint64(1)
        between = below[:, None] & ~below[None, :]  # [a, r]: the bits of chunk[r:a]
        active = _count_below(iou, chunk)  # the edge is there at chunk[:active]
        target = _count_below(incoming, chunk)  # a detection has a better one overlapping it at chunk[:target]
        # the better end is a root at chunk[target[better]:]: there the edge drops its worse end
        dropped = np.zeros(n, dtype=np.uint64)
        np.bitwise_or.at(dropped, worse, between[active, target[better]])
        undecided = below[target] & ~dropped
        # the edges into a detection left undecided at some threshold where the edge is there
        open_bits = undecided[worse] & below[active]
        open_edge = np.flatnonzero(open_bits)
        rest_better, rest_worse, open_bits = better[open_edge], worse[open_edge], open_bits[open_edge]
        dropped = dropped.astype(np.min_scalar_type(int(below[-1])))
        for bit, value in enumerate(chunk):
            mask = np.uint64(1 << bit)
            state = (target <= bit).view(np.int8)  # 1 kept, 2 dropped, 0 undecided
            state[(dropped & dropped.dtype.type(1 << bit)) != 0] = 2
            here = (open_bits & mask) != 0
            result[value] = _settle(state, rest_better[here], rest_worse[here])
    return result


def _count_below(values, chunk) -> np.ndarray:
    """How many of the sorted numbers ``chunk`` lie below each of ``values``."""
    count = np.zeros(len(values), dtype=np.uint8)
    for value in chunk:
        count += values > value
    return count


def _settle(state, better, worse) -> np.ndarray:
    """Greedy NMS's rounds from ``state`` (1 kept, 2 dropped, 0 undecided) along the edges
    ``better -> worse`` into undecided detections (above the threshold); the kept mask."""
    targets, local = np.unique(worse, return_inverse=True)
    while len(better):
        source = state[better]
        dropped = np.zeros(len(targets), dtype=bool)
        dropped[local[source == 1]] = True
        waiting = np.zeros(len(targets), dtype=bool)
        waiting[local[source == 0]] = True
        undecided = state[targets] == 0
        state[targets[undecided & dropped]] = 2
        state[targets[undecided & ~dropped & ~waiting]] = 1
        open_edge = state[worse] == 0
        better, worse, local = better[open_edge], worse[open_edge], local[open_edge]
    return state == 1
