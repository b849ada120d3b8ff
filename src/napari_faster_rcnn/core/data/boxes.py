"""Box geometry: pixel ``xyxy`` boxes and napari rectangles.

Boxes follow torchvision: ``(x1, y1, x2, y2)`` on continuous pixel coordinates,
x along columns, y along rows, the image spanning ``[0, width] x [0, height]``,
so pixel ``(row, col)`` covers ``[col, col + 1) x [row, row + 1)``.

napari puts pixel centres on integer world coordinates: pixel ``(row, col)``
covers ``[row - 0.5, row + 0.5)``. A box's edge ``x`` therefore sits at napari
column ``x - 0.5``. Every conversion here applies that half-pixel shift, so a
box drawn around a pixel in napari is the box around that pixel in the file.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: napari world coordinate = box coordinate - PIXEL_OFFSET.
PIXEL_OFFSET = 0.5


def as_boxes(values) -> np.ndarray:
    """Return ``values`` as a float64 ``(N, 4)`` array.

    Accepts an array or tensor of shape ``(N, 4)``, a list of length-4 arrays,
    tensors or lists, or an empty container (no boxes).

    Raises
    ------
    ValueError
        If the values are not ``(N, 4)`` numbers.
    """
    if hasattr(values, "detach"):  # a torch tensor; no torch import needed
        values = values.detach().cpu().numpy()
    if isinstance(values, (list, tuple)):
        if len(values) == 0:
            return np.zeros((0, 4), dtype=np.float64)
        rows = [np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v) for v in values]
        shapes = {row.shape for row in rows}
        if shapes != {(4,)}:
            raise ValueError(
                f"boxes must be (N, 4); got a list of {len(rows)} items with shapes "
                f"{sorted(shapes, key=str)[:3]}"
            )
        values = np.stack(rows)
    array = np.asarray(values)
    if array.size == 0:
        return np.zeros((0, 4), dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 4:
        raise ValueError(f"boxes must be (N, 4); got shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise ValueError(f"boxes must be numbers; got dtype {array.dtype}")
    return array.astype(np.float64, copy=True)


def check_boxes(boxes: np.ndarray) -> None:
    """Raise ``ValueError`` unless every box is finite with ``x2 >= x1`` and ``y2 >= y1``.

    Inverted boxes usually mean the file holds ``xywh`` or ``yxyx`` rather than
    ``xyxy``, so they are refused instead of silently flipped.
    """
    if boxes.size == 0:
        return
    finite = np.isfinite(boxes).all(axis=1)
    if not finite.all():
        index = int(np.flatnonzero(~finite)[0])
        raise ValueError(f"box {index} has a NaN or infinite coordinate: {boxes[index].tolist()}")
    inverted = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    if inverted.any():
        index = int(np.flatnonzero(inverted)[0])
        raise ValueError(
            f"box {index} is not xyxy (x2 < x1 or y2 < y1): {boxes[index].tolist()}; "
            "boxes must be (x1, y1, x2, y2) in pixels"
        )


def box_areas(boxes: np.ndarray) -> np.ndarray:
    """Areas of ``(N, 4)`` xyxy boxes (zero for degenerate ones)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def clip_boxes(boxes: np.ndarray, height: float, width: float) -> np.ndarray:
    """Clip xyxy boxes to an image of ``height`` x ``width`` pixels."""
    clipped = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
    clipped[:, [0, 2]] = np.clip(clipped[:, [0, 2]], 0.0, float(width))
    clipped[:, [1, 3]] = np.clip(clipped[:, [1, 3]], 0.0, float(height))
    return clipped


def usable_boxes(boxes: np.ndarray, height: float | None = None, width: float | None = None):
    """The one rule for which boxes are objects, as training and evaluation apply it.

    Boxes are clipped to an image of ``height`` x ``width`` pixels (when its
    size is known) and boxes left with no area (zero width or height, or wholly
    outside the image) are dropped: no pixel of the image shows them.

    Returns
    -------
    boxes : (K, 4) float64 array
        The boxes kept, clipped.
    keep : (N,) bool array
        Which input boxes were kept.
    clipped : int
        How many of the kept boxes were cut at the image's border.
    """
    original = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    result = original if height is None or width is None else clip_boxes(original, height, width)
    keep = (result[:, 2] > result[:, 0]) & (result[:, 3] > result[:, 1])
    clipped = int((keep & (result != original).any(axis=1)).sum())
    return result[keep], keep, clipped


def boxes_to_rectangles(boxes: np.ndarray, image_index=None) -> np.ndarray:
    """Convert xyxy boxes to napari rectangle vertices.

    Parameters
    ----------
    boxes : (N, 4) array
        Pixel xyxy boxes.
    image_index : int or (N,) array of int, optional
        The image each box belongs to in a stack. Without it the vertices are
        ``(N, 4, 2)`` ``(row, col)``; with it ``(N, 4, 3)`` ``(index, row, col)``.

    Returns
    -------
    np.ndarray
        Vertices in the order top-left, top-right, bottom-right, bottom-left.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) - PIXEL_OFFSET
    x1, y1, x2, y2 = boxes.T
    rows = np.stack([y1, y1, y2, y2], axis=1)
    cols = np.stack([x1, x2, x2, x1], axis=1)
    if image_index is None:
        return np.stack([rows, cols], axis=2)
    index = np.broadcast_to(np.asarray(image_index, dtype=np.float64), (len(boxes),))
    layers = np.repeat(index[:, None], 4, axis=1)
    return np.stack([layers, rows, cols], axis=2)


def rectangles_to_boxes(rectangles: Sequence[np.ndarray] | np.ndarray):
    """Convert napari shapes to xyxy boxes and, for a stack, their image index.

    Any polygon works: a rectangle drawn from any corner, or rotated, becomes
    the axis-aligned box around its vertices.

    Parameters
    ----------
    rectangles : sequence of (K, 2) or (K, 3) arrays, or an (N, K, D) array
        Vertices as napari stores them (``layer.data``).

    Returns
    -------
    boxes : (N, 4) float64 array
    image_index : (N,) int array or None
        The leading coordinate, rounded, when the vertices are 3-D; else None.
    """
    if isinstance(rectangles, np.ndarray) and rectangles.ndim == 3:
        stacked = rectangles.astype(np.float64, copy=False)
    else:
        if len(rectangles) == 0:
            return np.zeros((0, 4), dtype=np.float64), None
        shapes = {np.shape(r) for r in rectangles}
        if len(shapes) == 1:
            stacked = np.asarray(rectangles, dtype=np.float64)
        else:  # polygons with different vertex counts
            return _ragged_rectangles_to_boxes(rectangles)
    if stacked.shape[0] == 0:
        return np.zeros((0, 4), dtype=np.float64), None
    rows = stacked[:, :, -2]
    cols = stacked[:, :, -1]
    boxes = np.stack([cols.min(1), rows.min(1), cols.max(1), rows.max(1)], axis=1) + PIXEL_OFFSET
    index = None
    if stacked.shape[2] >= 3:
        index = np.rint(stacked[:, 0, -3]).astype(np.int64)
    return boxes, index


def _ragged_rectangles_to_boxes(rectangles):
    boxes = np.empty((len(rectangles), 4), dtype=np.float64)
    ndims = {np.shape(r)[1] for r in rectangles}
    if len(ndims) != 1:
        raise ValueError(f"shapes mix dimensions {sorted(ndims)}")
    index = np.empty(len(rectangles), dtype=np.int64) if ndims.pop() >= 3 else None
    for i, vertices in enumerate(rectangles):
        vertices = np.asarray(vertices, dtype=np.float64)
        rows, cols = vertices[:, -2], vertices[:, -1]
        boxes[i] = (cols.min(), rows.min(), cols.max(), rows.max())
        if index is not None:
            index[i] = int(np.rint(vertices[0, -3]))
    return boxes + PIXEL_OFFSET, index


def box_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes, ``(N, M)``, on continuous coordinates (no +1)."""
    a = np.asarray(boxes_a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b, dtype=np.float64).reshape(-1, 4)
    left = np.maximum(a[:, None, 0], b[None, :, 0])
    top = np.maximum(a[:, None, 1], b[None, :, 1])
    right = np.minimum(a[:, None, 2], b[None, :, 2])
    bottom = np.minimum(a[:, None, 3], b[None, :, 3])
    intersection = np.clip(right - left, 0, None) * np.clip(bottom - top, 0, None)
    union = box_areas(a)[:, None] + box_areas(b)[None, :] - intersection
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, intersection / union, 0.0)
