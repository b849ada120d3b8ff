"""Synthetic data: every box is the exact extent of its shape's pixels, found from the image alone."""

from collections import deque

import numpy as np
import pytest

from napari_faster_rcnn.core.data.synthetic import make_synthetic_sample

MARGIN = 4  # how far beyond its box a shape's pixels are looked for


def shape_pixels(image: np.ndarray) -> np.ndarray:
    """Where shapes are painted, by brute force from the pixels.

    A shape is painted without the background's per-pixel grain: its colour is linear in the column
    and the same down a column. So a pixel with the same colour as the pixel above or below it is
    painted (in the background this happens only here and there, see :func:`shape_extent`); and so is one that
    continues the straight colour line of the two painted pixels beside it in its row (within 1 per
    channel, for rounding), as the single pixel of a triangle's corner column is.
    """
    pixels = image.astype(np.int64)
    same_as_above = np.zeros(pixels.shape[:2], bool)
    same_as_above[1:] = (pixels[1:] == pixels[:-1]).all(axis=2)
    painted = same_as_above.copy()
    painted[:-1] |= same_as_above[1:]
    # a painted run of two, continued by one pixel on either side
    continues_right = np.zeros_like(painted)
    continues_right[:, 2:] = (painted[:, :-2] & painted[:, 1:-1]
                              & (np.abs(pixels[:, 2:] - 2 * pixels[:, 1:-1] + pixels[:, :-2]) <= 1).all(axis=2))
    continues_left = np.zeros_like(painted)
    continues_left[:, :-2] = (painted[:, 2:] & painted[:, 1:-1]
                              & (np.abs(pixels[:, :-2] - 2 * pixels[:, 1:-1] + pixels[:, 2:]) <= 1).all(axis=2))
    return painted | continues_right | continues_left


def shape_extent(image: np.ndarray, painted: np.ndarray, box) -> tuple[int, int, int, int]:
    """The xyxy extent (x2 = last column + 1) of the largest painted region found from inside ``box``.

    Regions grow through painted neighbours whose colour differs by a shading step at most (so a
    touching shape of another colour stays apart), in a window reaching ``MARGIN`` pixels beyond
    the box. The shape is the largest region; background pixels that pass for painted make
    regions of a pixel or two.
    """
    pixels = image.astype(np.int64)
    height, width = painted.shape
    x1, y1, x2, y2 = (int(v) for v in box)
    top, left = max(0, y1 - MARGIN), max(0, x1 - MARGIN)
    bottom, right = min(height, y2 + MARGIN), min(width, x2 + MARGIN)
    reached = np.zeros_like(painted)
    largest: list = []
    for seed in zip(*np.nonzero(painted[y1:y2, x1:x2])):
        seed = (seed[0] + y1, seed[1] + x1)
        if reached[seed]:
            continue
        reached[seed] = True
        region, queue = [seed], deque([seed])
        while queue:
            row, col = queue.popleft()
            for near in ((row + 1, col), (row - 1, col), (row, col + 1), (row, col - 1)):
                if (top <= near[0] < bottom and left <= near[1] < right and painted[near] and not reached[near]
                        and np.abs(pixels[near] - pixels[row, col]).max() <= 4):
                    reached[near] = True
                    region.append(near)
                    queue.append(near)
        if len(region) > len(largest):
            largest = region
    rows, cols = np.array(largest).T
    return int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1


@pytest.mark.parametrize("size", [(128, 128), (64, 96)])
def test_every_box_is_the_exact_extent_of_its_shapes_pixels(size):
    height, width = size
    boxes = 0
    for index in range(12):
        image, annotation = make_synthetic_sample(11, index, height=height, width=width, objects=(2, 6))
        painted = shape_pixels(image)
        for box, label in zip(annotation.boxes, annotation.labels):
            assert tuple(box) == shape_extent(image, painted, box), (index, label)
            boxes += 1
    assert boxes > 30
