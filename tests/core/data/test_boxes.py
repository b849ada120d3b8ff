import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from napari_faster_rcnn.core.data.boxes import (
    PIXEL_OFFSET,
    as_boxes,
    box_iou,
    boxes_to_rectangles,
    check_boxes,
    clip_boxes,
    rectangles_to_boxes,
    usable_boxes,
)

coordinate = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False, width=64)


@st.composite
def xyxy_boxes(draw, max_boxes=20):
    n = draw(st.integers(0, max_boxes))
    corners = draw(arrays(np.float64, (n, 4), elements=coordinate))
    x1, x2 = np.minimum(corners[:, 0], corners[:, 2]), np.maximum(corners[:, 0], corners[:, 2])
    y1, y2 = np.minimum(corners[:, 1], corners[:, 3]), np.maximum(corners[:, 1], corners[:, 3])
    return np.stack([x1, y1, x2, y2], axis=1)


@given(xyxy_boxes())
def test_single_image_round_trip(boxes):
    rectangles = boxes_to_rectangles(boxes)
    assert rectangles.shape == (len(boxes), 4, 2)
    back, index = rectangles_to_boxes(rectangles)
    assert index is None
    np.testing.assert_allclose(back, boxes, atol=1e-6)


@given(xyxy_boxes(), st.integers(0, 999))
def test_stack_round_trip_keeps_the_image_index(boxes, first_index):
    image_index = first_index + np.arange(len(boxes)) % 3
    rectangles = boxes_to_rectangles(boxes, image_index)
    assert rectangles.shape == (len(boxes), 4, 3)
    back, index = rectangles_to_boxes(list(rectangles))
    np.testing.assert_allclose(back, boxes, atol=1e-6)
    if len(boxes):
        np.testing.assert_array_equal(index, image_index)


@given(xyxy_boxes(max_boxes=5), st.integers(0, 3), st.booleans())
def test_rectangles_from_any_corner_give_the_same_box(boxes, start, reverse):
    rectangles = boxes_to_rectangles(boxes)
    reordered = np.roll(rectangles, -start, axis=1)
    if reverse:
        reordered = reordered[:, ::-1]
    back, _ = rectangles_to_boxes(reordered)
    np.testing.assert_allclose(back, boxes, atol=1e-6)


@settings(deadline=None)
@given(xyxy_boxes(max_boxes=5), st.floats(0, 2 * np.pi))
def test_rotated_rectangles_become_their_axis_aligned_hull(boxes, angle):
    rectangles = boxes_to_rectangles(boxes)
    centre = rectangles.mean(axis=1, keepdims=True)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    rotated = (rectangles - centre) @ rotation.T + centre
    back, _ = rectangles_to_boxes(rotated)
    rows, cols = rotated[..., 0] + PIXEL_OFFSET, rotated[..., 1] + PIXEL_OFFSET
    # Every vertex lies inside the box and each side of the box touches a vertex.
    assert np.all(cols >= back[:, [0]] - 1e-6) and np.all(cols <= back[:, [2]] + 1e-6)
    assert np.all(rows >= back[:, [1]] - 1e-6) and np.all(rows <= back[:, [3]] + 1e-6)
    np.testing.assert_allclose(cols.min(1), back[:, 0], atol=1e-6)
    np.testing.assert_allclose(rows.max(1), back[:, 3], atol=1e-6)


def test_napari_vertices_sit_half_a_pixel_before_box_edges():
    # A box around pixel (row 2, col 5) spans x 5..6, y 2..3; napari's pixel centre is (2, 5).
    rectangle = boxes_to_rectangles(np.array([[5.0, 2.0, 6.0, 3.0]]))[0]
    assert rectangle[:, 0].min() == 1.5 and rectangle[:, 0].max() == 2.5
    assert rectangle[:, 1].min() == 4.5 and rectangle[:, 1].max() == 5.5


def test_polygons_with_different_vertex_counts():
    triangle = np.array([[0.0, 0.0], [10.0, 5.0], [3.0, 8.0]])
    square = np.array([[1.0, 1.0], [1.0, 2.0], [2.0, 2.0], [2.0, 1.0]])
    boxes, index = rectangles_to_boxes([triangle, square])
    np.testing.assert_allclose(boxes, [[0.5, 0.5, 8.5, 10.5], [1.5, 1.5, 2.5, 2.5]])
    assert index is None


def test_as_boxes_accepts_lists_tensors_and_empty_values():
    import torch

    expected = np.array([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]])
    assert np.array_equal(as_boxes([np.array([1, 2, 3, 4]), [5, 6, 7, 8]]), expected)
    assert np.array_equal(as_boxes(torch.tensor(expected, dtype=torch.float32)), expected)
    assert np.array_equal(as_boxes([torch.tensor([1.0, 2, 3, 4]), torch.tensor([5.0, 6, 7, 8])]), expected)
    for empty in ([], np.zeros((0, 4)), np.array([]), torch.zeros(0)):
        assert as_boxes(empty).shape == (0, 4)


@pytest.mark.parametrize("bad", [np.zeros((3, 5)), np.zeros(4), [[1, 2, 3]], np.array([["a", "b", "c", "d"]])])
def test_as_boxes_refuses_other_shapes(bad):
    with pytest.raises(ValueError, match="boxes must be"):
        as_boxes(bad)


def test_check_boxes_names_the_bad_box():
    with pytest.raises(ValueError, match="box 1 has a NaN"):
        check_boxes(np.array([[0, 0, 1, 1], [0, np.nan, 1, 1]], dtype=float))
    with pytest.raises(ValueError, match="box 0 .*infinite"):
        check_boxes(np.array([[0, 0, np.inf, 1]]))
    with pytest.raises(ValueError, match="box 0 is not xyxy"):
        check_boxes(np.array([[10, 10, 5, 20]], dtype=float))  # an xywh box
    check_boxes(np.array([[1, 1, 1, 1]], dtype=float))  # zero area is allowed


def test_clip_boxes_to_the_image():
    clipped = clip_boxes(np.array([[-5.0, -1.0, 70.0, 30.0]]), height=20, width=60)
    np.testing.assert_array_equal(clipped, [[0.0, 0.0, 60.0, 20.0]])


def test_box_iou_matches_hand_computed_values():
    a = np.array([[0.0, 0.0, 10.0, 10.0]])
    b = np.array([[5.0, 5.0, 15.0, 15.0], [20.0, 20.0, 30.0, 30.0], [0.0, 0.0, 10.0, 10.0]])
    np.testing.assert_allclose(box_iou(a, b), [[25 / 175, 0.0, 1.0]])


def test_usable_boxes_keep_exactly_the_boxes_that_cover_part_of_the_image():
    rng = np.random.default_rng(0)
    height, width = 12, 9
    corners = rng.integers(-6, 16, (400, 2)).astype(float)
    sides = rng.integers(0, 6, (400, 2)) * rng.integers(0, 2, (400, 2))  # many flat boxes
    boxes = np.column_stack([corners, corners + sides])
    kept, keep, clipped = usable_boxes(boxes, height, width)
    # brute force on a 4x finer grid: a box is an object when it covers some of the image
    fine = (np.arange(4 * width) + 0.5) / 4, (np.arange(4 * height) + 0.5) / 4
    covers = [
        bool(((fine[0] > x1) & (fine[0] < x2)).any() and ((fine[1] > y1) & (fine[1] < y2)).any())
        for x1, y1, x2, y2 in boxes
    ]
    assert keep.tolist() == covers
    assert np.array_equal(kept, clip_boxes(boxes[keep], height, width))
    assert clipped == int((clip_boxes(boxes[keep], height, width) != boxes[keep]).any(axis=1).sum())
    # without a size only the boxes without area go
    kept, keep, clipped = usable_boxes(boxes)
    assert keep.tolist() == ((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])).tolist() and clipped == 0
