"""Which boxes of neighbouring tiles are views of one object: the agreement of two tiles' boxes,
the pairs of boxes that match across tile edges, and the greedy grouping of the cut pieces (steps 2
and 4 of the merge's rule, told in :mod:`.tile_merge`, which uses them).

:func:`shared_view_iou` is the agreement of step 2: two boxes from different tiles are compared on
the part of the image both tiles see (each box clipped to the tiles' intersection), or along the
line where the tiles only touch. :func:`matching_pairs` finds the pairs of boxes of one class from
different tiles that agree by at least the match threshold. Candidate pairs come from bucketing the
boxes near tile borders by class and into a grid of cells (sorting by cell, then tile), pairing only
boxes of different tiles in a bucket, never from comparing every box with every other; the rest is
numpy over the candidate pairs.

:func:`greedy_groups` is step 4's greedy merge of the partial boxes left: in order of score, a box
takes from each other tile the matching box still free with the highest score, and so on through
the boxes taken, at most one box per tile. It is the only part of the merge that loops in Python,
once per partial box left.
"""

from __future__ import annotations

import numpy as np

from napari_faster_rcnn.core.prediction.tiles import EDGE_TOLERANCE, TileGrid

__all__ = ["greedy_groups", "matching_pairs", "shared_view_iou"]


def shared_view_iou(first, second, first_tiles, second_tiles, tolerance: float = EDGE_TOLERANCE) -> np.ndarray:
    """The agreement of box pairs from two tiles: the IoU of the boxes clipped to the tiles' intersection.

    Where the tiles only touch (their intersection has no width or no height),
    the intersection is widened by ``tolerance`` across the shared line and a
    box reaching it counts as spanning that width, so that the comparison is
    along the line. Pairs of tiles that do not meet, and boxes that do not
    reach the intersection, agree 0.
    """
    first, second = np.asarray(first, np.float64), np.asarray(second, np.float64)
    low = np.maximum(first_tiles[:, :2], second_tiles[:, :2]).astype(np.float64)
    high = np.minimum(first_tiles[:, 2:], second_tiles[:, 2:]).astype(np.float64)
    meets = (high >= low).all(axis=1)
    thin = (high - low) < 1.0
    low = np.where(thin, low - tolerance, low)
    high = np.where(thin, high + tolerance, high)
    clipped = []
    for box in (first, second):
        box_low = np.maximum(box[:, :2], low)
        box_high = np.minimum(box[:, 2:], high)
        reaches = box_high >= box_low
        # across a line both boxes count as spanning the widened line
        box_low = np.where(thin & reaches, low, box_low)
        box_high = np.where(thin & reaches, high, box_high)
        clipped.append((box_low, box_high, reaches.all(axis=1)))
    (a_low, a_high, a_in), (b_low, b_high, b_in) = clipped
    a_area = np.prod(np.clip(a_high - a_low, 0.0, None), axis=1)
    b_area = np.prod(np.clip(b_high - b_low, 0.0, None), axis=1)
    inter = np.prod(np.clip(np.minimum(a_high, b_high) - np.maximum(a_low, b_low), 0.0, None), axis=1)
    union = a_area + b_area - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    return np.where(meets & a_in & b_in, iou, 0.0)


def matching_pairs(grid: TileGrid, rects, boxes, labels, tile_ids, tolerance: float, threshold: float):
    """Pairs ``(i, j)``, ``i < j``, of boxes of one class from different tiles that match."""
    exclusive = grid.exclusive()[tile_ids]
    near_border = ((boxes[:, 0] - tolerance <= exclusive[:, 0]) | (boxes[:, 1] - tolerance <= exclusive[:, 1])
                   | (boxes[:, 2] + tolerance >= exclusive[:, 2]) | (boxes[:, 3] + tolerance >= exclusive[:, 3]))
    candidates = np.flatnonzero(near_border)
    if len(candidates) < 2:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    grown = boxes[candidates] + np.array([-tolerance, -tolerance, tolerance, tolerance])
    _, kinds = np.unique(labels[candidates], return_inverse=True)
    one, other = _sharing_cells(grown, kinds.reshape(-1), tile_ids[candidates])
    first, second = candidates[one], candidates[other]
    agreement = shared_view_iou(boxes[first], boxes[second], rects[tile_ids[first]], rects[tile_ids[second]],
                                tolerance)
    matched = agreement >= threshold
    first, second, agreement = first[matched], second[matched], agreement[matched]
    # the best matches first, for the greedy merge; equal ones in the order of the boxes, so that the
    # order does not hang on the bucketing (the incremental merge finds the same pairs in smaller sets)
    order = np.lexsort((second, first, -agreement))
    return first[order], second[order]


def _sharing_cells(boxes: np.ndarray, kinds: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs ``(i, j)``, ``i < j``, of boxes of one kind and of different ``groups`` (their tiles) that
    intersect (touching counts), each once.

    The boxes are bucketed into the cells of a grid (a box into every cell it
    covers) and sorted by kind, cell and group; pairs are formed inside each bucket
    between boxes of different groups only (raw boxes of one tile crowd the same
    cells: pairing them too, to drop them later, was half the work or more), and a
    pair is kept only in the cell holding the corner of its intersection (``max x0``,
    ``max y0``), so that a pair sharing several cells counts once and boxes that
    share a cell but do not meet are left out.
    """
    sides = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    cell = max(8.0, float(np.percentile(sides, 90)))
    origin = boxes[:, :2].min(axis=0)
    cells_low = np.floor((boxes[:, :2] - origin) / cell).astype(np.int64)
    cells_high = np.floor((boxes[:, 2:] - origin) / cell).astype(np.int64)
    spans = cells_high - cells_low + 1
    counts = spans[:, 0] * spans[:, 1]
    box = np.repeat(np.arange(len(boxes)), counts)
    offset = np.arange(len(box)) - np.repeat(np.cumsum(counts) - counts, counts)
    row, column = np.divmod(offset, spans[box, 0])
    columns = int(cells_high[:, 0].max()) + 1
    rows = int(cells_high[:, 1].max()) + 1
    cell_x, cell_y = cells_low[box, 0] + column, cells_low[box, 1] + row
    key = (kinds[box] * rows + cell_y) * columns + cell_x
    order = np.lexsort((groups[box], key))  # by bucket, then group
    key, box, cell_x, cell_y = key[order], box[order], cell_x[order], cell_y[order]
    group = groups[box]
    bucket_end = np.searchsorted(key, key, side="right")
    # where each box's run of its own group ends within its bucket: its partners are the boxes after the run
    starts = np.flatnonzero(np.r_[True, (key[1:] != key[:-1]) | (group[1:] != group[:-1])])
    run_end = np.repeat(np.r_[starts[1:], len(key)], np.diff(np.r_[starts, len(key)]))
    after = bucket_end - run_end
    left = np.repeat(np.arange(len(key)), after)
    right = np.repeat(run_end, after) + np.arange(len(left)) - np.repeat(np.cumsum(after) - after, after)
    one, other = box[left], box[right]
    corner = np.maximum(boxes[one, :2], boxes[other, :2])
    meets = (corner <= np.minimum(boxes[one, 2:], boxes[other, 2:])).all(axis=1)
    corner_cell = np.floor((corner - origin) / cell).astype(np.int64)
    here = meets & (corner_cell[:, 0] == cell_x[left]) & (corner_cell[:, 1] == cell_y[left])
    one, other = one[here], other[here]
    return np.minimum(one, other), np.maximum(one, other)


def greedy_groups(scores, tile_ids, loose, first, second) -> np.ndarray:
    """For each box, the seed of its group (-1 for boxes not in the merge): step 4's greedy merge.

    ``first``, ``second`` are the matching pairs among the loose partial boxes,
    best match first. A box takes from each tile the matching box of the
    highest score (the best match among equal scores), so that the raw boxes
    of two tiles around one object pair up best with best, second with second.
    """
    count = len(scores)
    groups = np.full(count, -1, dtype=np.int64)
    nodes = np.concatenate([first, second])
    neighbours = np.concatenate([second, first])
    rank = np.concatenate([np.arange(len(first))] * 2)
    order = np.lexsort((rank, -scores[neighbours], nodes))  # by node, then highest score, then best match
    nodes, neighbours = nodes[order], neighbours[order]
    starts = np.searchsorted(nodes, np.arange(count + 1))
    neighbour_list = neighbours.tolist()
    tiles = tile_ids.tolist()
    loose_boxes = np.flatnonzero(loose)
    by_score = loose_boxes[np.argsort(-scores[loose_boxes], kind="stable")].tolist()
    start_list = starts.tolist()
    group_list = groups.tolist()
    for seed in by_score:
        if group_list[seed] >= 0:
            continue
        group_list[seed] = seed
        if start_list[seed] == start_list[seed + 1]:
            continue
        used = {tiles[seed]}
        stack = [seed]
        while stack:
            node = stack.pop()
            for neighbour in neighbour_list[start_list[node]:start_list[node + 1]]:
                if group_list[neighbour] < 0 and tiles[neighbour] not in used:
                    group_list[neighbour] = seed
                    used.add(tiles[neighbour])
                    stack.append(neighbour)
    groups[:] = group_list
    groups[~loose] = -1
    return groups
