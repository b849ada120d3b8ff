"""The merge of the detections of overlapping tiles into one image's detections
(the grid itself is :mod:`.tiles`, the matching of boxes across tiles :mod:`.tile_matching`).

Each tile's detections, shifted into image coordinates, come with the
number of their tile. An object cut by a tile's edge gives a *partial*
box there; NMS cannot join the pieces of an object cut in two (they
hardly overlap), and would keep a cut piece beside the whole box from a
neighbouring tile. The rule, in four steps:

1. **Partial or complete.** A box is *partial* when it reaches, within
   ``edge_tolerance`` pixels, an edge of its tile that is inside the image
   (an edge on the image's border cuts nothing); other boxes are *complete*.
2. **Agreement.** Two boxes of the same class from different tiles are
   compared on the part of the image both tiles see, ``R`` (the
   intersection of the two tiles): each box is clipped to ``R`` and the
   *agreement* is the IoU of the clipped boxes. Both tiles see the whole
   of ``R``, so the two views of one object agree there even when one or
   both of them is cut. When the tiles only touch (no overlap, ``R`` a
   line or a corner point), a box *reaches* ``R`` when it comes within
   ``edge_tolerance`` of it, and the comparison is along the line (the
   boxes' extents along the shared edge; 1 at a shared corner).
   Boxes *match* when they agree by at least ``match_threshold``. Unlike
   the IoS (intersection over the smaller box) of SAHI's merging, this
   does not let a large, loose box (a raw detection with a low score)
   swallow the small cut pieces inside it.
3. **Complete boxes: one tile owns each point.** The overlap between two
   neighbouring tiles is split at its middle; each tile *owns* the points
   on its side. A complete box is kept when its tile owns its centre, or
   when no complete box of another tile, itself in its owner tile, matches
   it (the owner's detector missed what this tile saw: kept, rather than
   lost). An object that lies whole in two tiles is thus kept from one
   tile only, together with that tile's other (raw) boxes around it, and
   nothing is suppressed inside a tile: the raw detections stay raw for
   the score and NMS thresholds applied afterwards. (A box whose centre a
   tile owns lies whole in that tile when it lies whole in any tile: the
   owner's view is complete whenever any view is.)
4. **Partial boxes.** A partial box is dropped when it matches a kept
   complete box of another tile: the whole object is seen there, so the
   piece adds nothing (a box fully inside another tile wins over a cut
   one). The partial boxes left are the pieces of objects that no tile
   sees whole (objects larger than the overlap, or tiles without
   overlap). They are merged greedily, in order of score (the highest
   first): a box takes, from each other tile, the matching partial box
   still free with the highest score (raw detections around one object
   pair up best with best), and so on through the boxes taken (a piece
   joins through a piece it matches: the four pieces of an object cut at
   a tile corner become one), at most one box per tile. The group becomes
   one box: the union of its pieces, with the highest score of them and
   their class. A partial box that matches nothing is kept as it is.

Tile by tile (:class:`TileMerger`, what tiled prediction uses): a box can
only match boxes of tiles that meet its own, so once those tiles are in,
nothing added later changes its fate but through a box it matches; the
groups of boxes linked by matching pairs whose tiles' neighbours are all in
are merged and released after each row of tiles. The result equals the
merge of all the boxes at once, and memory follows a row of tiles.

The agreement of step 2, the matching pairs it gives and the greedy grouping
of step 4 are in :mod:`.tile_matching`; this module decides, from them, which
boxes are kept, dropped or merged.

Known limit: an object that ends within ``edge_tolerance`` of a tile's
edge while lying whole in that tile may count as cut there by some of its
raw boxes and as whole by others; with an overlap smaller than the
objects, a cut one can then join a slightly different box of the next
tile (a union 1-2 px too large). The default overlap (at least 0.1 of the
tile, and at least the training boxes' size) avoids it in the benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse
from scipy.sparse.csgraph import connected_components

from napari_faster_rcnn.core.prediction.tile_matching import greedy_groups, matching_pairs
from napari_faster_rcnn.core.prediction.tiles import EDGE_TOLERANCE, MATCH_THRESHOLD, TileGrid

__all__ = ["MergedDetections", "TileMerger", "merge_tile_detections"]


# --- the merge ------------------------------------------------------------------------


@dataclass
class MergedDetections:
    """The detections of an image, merged from its tiles.

    Attributes
    ----------
    boxes : (n, 4) float64
    scores : (n,) float64
    labels : (n,) int64
    sources : (n,) int64
        For each box, the input detection it comes from (for a merged box, the
        highest-scoring piece).
    pieces : (n,) int64
        How many input boxes were merged into each box (1 for a box kept as it was).
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    sources: np.ndarray
    pieces: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)


def merge_tile_detections(
    grid: TileGrid,
    boxes,
    scores,
    labels,
    tile_ids,
    edge_tolerance: float = EDGE_TOLERANCE,
    match_threshold: float = MATCH_THRESHOLD,
) -> MergedDetections:
    """One box per object from the detections of every tile of ``grid`` (see the module docstring).

    Parameters
    ----------
    grid
        The tiles.
    boxes : (n, 4)
        ``x0, y0, x1, y1`` in image coordinates (shifted back from their tile).
    scores : (n,)
    labels : (n,) int
    tile_ids : (n,) int
        The tile each detection comes from.

    Returns
    -------
    MergedDetections
        In the order of the detections they come from.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    tile_ids = np.asarray(tile_ids).reshape(-1).astype(np.int64)
    count = len(boxes)
    if not len(scores) == len(labels) == len(tile_ids) == count:
        raise ValueError(f"boxes, scores, labels and tile_ids differ in length: {count}, {len(scores)}, "
                         f"{len(labels)}, {len(tile_ids)}")
    if count and (tile_ids.min() < 0 or tile_ids.max() >= len(grid)):
        raise ValueError(f"tile ids must be from 0 to {len(grid) - 1}, got {tile_ids.min()} to {tile_ids.max()}")
    if len(grid) == 1 or count == 0:
        return MergedDetections(boxes, scores, labels, np.arange(count), np.ones(count, dtype=np.int64))
    return _merge(grid, boxes, scores, labels, tile_ids, float(edge_tolerance), float(match_threshold))


def _merge(grid: TileGrid, boxes, scores, labels, tile_ids, tolerance: float, threshold: float,
           pairs: tuple[np.ndarray, np.ndarray] | None = None) -> MergedDetections:
    """Steps 1 to 4 over detections in image coordinates (``pairs``: their matching pairs, when known)."""
    count = len(boxes)
    rects = grid.rects.astype(np.float64)
    own = rects[tile_ids]
    height, width = grid.image_size
    partial = (((own[:, 0] > 0) & (boxes[:, 0] <= own[:, 0] + tolerance))
               | ((own[:, 1] > 0) & (boxes[:, 1] <= own[:, 1] + tolerance))
               | ((own[:, 2] < width) & (boxes[:, 2] >= own[:, 2] - tolerance))
               | ((own[:, 3] < height) & (boxes[:, 3] >= own[:, 3] - tolerance)))
    complete = ~partial
    centres_x = (boxes[:, 0] + boxes[:, 2]) / 2.0
    centres_y = (boxes[:, 1] + boxes[:, 3]) / 2.0
    owned = grid.owner(centres_x, centres_y) == tile_ids

    if pairs is None:
        pairs = matching_pairs(grid, rects, boxes, labels, tile_ids, tolerance, threshold)
    first, second = pairs

    # 3. a complete box outside its owner tile goes when it matches an owned complete box of another tile
    owned_complete = complete & owned
    dropped = np.zeros(count, dtype=bool)
    for one, other in ((first, second), (second, first)):
        dropped[one[complete[one] & ~owned[one] & owned_complete[other]]] = True
    kept_complete = complete & ~dropped
    # 4. a partial box goes when it matches a kept complete box of another tile
    covered = np.zeros(count, dtype=bool)
    for one, other in ((first, second), (second, first)):
        covered[one[partial[one] & kept_complete[other]]] = True
    loose = partial & ~covered
    both = loose[first] & loose[second]
    groups = greedy_groups(scores, tile_ids, loose, first[both], second[both])

    seeds = np.flatnonzero(groups >= 0)
    seeds = seeds[groups[seeds] == seeds]  # a group is numbered by its seed
    keep = np.sort(np.concatenate([np.flatnonzero(kept_complete), seeds]))
    merged_boxes = boxes[keep].copy()
    merged_scores = scores[keep].copy()
    pieces = np.ones(len(keep), dtype=np.int64)
    members = np.flatnonzero(groups >= 0)
    if len(members):
        position = np.searchsorted(keep, groups[members])
        np.minimum.at(merged_boxes[:, 0], position, boxes[members, 0])
        np.minimum.at(merged_boxes[:, 1], position, boxes[members, 1])
        np.maximum.at(merged_boxes[:, 2], position, boxes[members, 2])
        np.maximum.at(merged_boxes[:, 3], position, boxes[members, 3])
        np.maximum.at(merged_scores, position, scores[members])
        pieces[:] = 0
        np.add.at(pieces, position, 1)
        pieces[pieces == 0] = 1
    return MergedDetections(merged_boxes, merged_scores, labels[keep], keep, pieces)


class TileMerger:
    """The merge of :func:`merge_tile_detections`, tile by tile, with memory that follows a row of tiles.

    Add the tiles' detections in the order of the grid (:meth:`add`, tile ``0``
    first; each tile once), then :meth:`result`: the same boxes, scores, labels,
    sources and pieces, in the same order, as :func:`merge_tile_detections` of
    all the detections at once (``sources`` counts the detections in the order
    they were added).

    How: a detection can only match detections of tiles that meet its own
    (steps 2 to 4 compare nothing else), so once every tile meeting its tile is
    in, the detection is *settled*: nothing added later can change its fate but
    through another detection it matches. The detections not yet merged are
    held, compactly (boxes in tile coordinates as float32, scores float32,
    labels int32), and after each row of tiles they are merged together; the
    groups of detections linked by matching pairs whose members are all settled
    come out final (their fate depends on nothing outside the group) and are
    released, the others wait for the next row. Held at once: about two rows of
    tiles' detections (more with an overlap of half a tile or more, where tiles
    two rows apart meet), plus the merged detections so far.
    """

    def __init__(self, grid: TileGrid, edge_tolerance: float = EDGE_TOLERANCE,
                 match_threshold: float = MATCH_THRESHOLD):
        self.grid = grid
        self.tolerance, self.threshold = float(edge_tolerance), float(match_threshold)
        self._rects = grid.rects
        # the last tile (in the grid's order) that meets each tile: touching counts, as in the merge
        last_row = np.searchsorted(grid.y_starts, grid.y_starts + grid.tile_size[0], side="right") - 1
        last_column = np.searchsorted(grid.x_starts, grid.x_starts + grid.tile_size[1], side="right") - 1
        self._last_meeting = (last_row[:, None] * grid.columns + last_column[None, :]).reshape(-1)
        self.tiles = 0  # tiles added
        self.detections = 0  # detections added
        self._held: list[tuple[np.ndarray, ...]] = []  # (local boxes, scores, labels, tiles, sources) chunks
        self._done: list[MergedDetections] = []

    def add(self, tile: int, boxes, scores, labels) -> None:
        """Tile ``tile``'s detections: ``boxes`` ``(n, 4)`` in the tile's own coordinates."""
        if int(tile) != self.tiles or self.tiles >= len(self.grid):
            raise ValueError(f"tiles must be added in the order of the grid: expected tile {self.tiles} of "
                             f"{len(self.grid)}, got {tile}")
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        scores = np.asarray(scores, dtype=np.float32).reshape(-1)
        labels = np.asarray(labels).reshape(-1).astype(np.int32)
        count = len(boxes)
        if not len(scores) == len(labels) == count:
            raise ValueError(f"boxes, scores and labels differ in length: {count}, {len(scores)}, {len(labels)}")
        self._held.append((boxes, scores, labels, np.full(count, tile, dtype=np.int32),
                           np.arange(self.detections, self.detections + count, dtype=np.int64)))
        self.detections += count
        self.tiles += 1
        if self.tiles == len(self.grid) or self.tiles % self.grid.columns == 0:
            self._settle()

    @property
    def held(self) -> int:
        """Detections held, not merged yet."""
        return sum(len(chunk[1]) for chunk in self._held)

    def result(self) -> MergedDetections:
        """The merged detections of every tile (all tiles must have been added)."""
        if self.tiles != len(self.grid):
            raise ValueError(f"{self.tiles} of the {len(self.grid)} tiles were added")
        done = [chunk for chunk in self._done if len(chunk)]
        if not done:
            empty = np.zeros(0, dtype=np.int64)
            return MergedDetections(np.zeros((0, 4)), np.zeros(0), empty, empty, empty)
        sources = np.concatenate([chunk.sources for chunk in done])
        order = np.argsort(sources, kind="stable")
        return MergedDetections(np.concatenate([chunk.boxes for chunk in done])[order],
                                np.concatenate([chunk.scores for chunk in done])[order],
                                np.concatenate([chunk.labels for chunk in done])[order],
                                sources[order],
                                np.concatenate([chunk.pieces for chunk in done])[order])

    def _settle(self) -> None:
        """Merge what is held; release the groups whose members are all settled."""
        if not self._held:
            return
        local, scores32, labels32, tiles, sources = (np.concatenate(parts) for parts in zip(*self._held))
        self._held = []
        count = len(tiles)
        if count == 0:
            return
        boxes = local.astype(np.float64) + self._rects[tiles][:, [0, 1, 0, 1]].astype(np.float64)
        scores = scores32.astype(np.float64)
        labels = labels32.astype(np.int64)
        tile_ids = tiles.astype(np.int64)
        if len(self.grid) == 1:
            pairs = (np.zeros(0, dtype=np.int64),) * 2
            merged = MergedDetections(boxes, scores, labels, np.arange(count), np.ones(count, dtype=np.int64))
        else:
            pairs = matching_pairs(self.grid, self._rects.astype(np.float64), boxes, labels, tile_ids,
                                   self.tolerance, self.threshold)
            merged = _merge(self.grid, boxes, scores, labels, tile_ids, self.tolerance, self.threshold, pairs)
        first, second = pairs
        links = scipy.sparse.coo_array((np.ones(len(first), dtype=bool), (first, second)), shape=(count, count))
        group = connected_components(links, directed=False)[1]  # the same number for the boxes linked by pairs
        unsettled = self._last_meeting[tile_ids] >= self.tiles
        waiting = np.zeros(count, dtype=bool)
        waiting[group[unsettled]] = True  # a group waits while any member waits
        final = ~waiting[group]
        out = final[merged.sources]
        self._done.append(MergedDetections(merged.boxes[out], merged.scores[out], merged.labels[out],
                                           sources[merged.sources[out]], merged.pieces[out]))
        rest = ~final
        if rest.any():
            self._held.append((local[rest], scores32[rest], labels32[rest], tiles[rest], sources[rest]))
