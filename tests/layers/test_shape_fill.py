"""napari's rectangles and shape lists filled in with numpy equal napari's own, array by array; what
they cannot fill is left to napari (issue 13: paging a stack's planes of 500 boxes)."""

import numpy as np
import pytest

from napari_faster_rcnn.layers import page_boxes, shape_fill


def same_attributes(a, b):
    one, two = vars(a), vars(b)
    assert one.keys() == two.keys()
    for key in one:
        if isinstance(two[key], np.ndarray):
            assert one[key].dtype == two[key].dtype, key
            np.testing.assert_array_equal(one[key], two[key], err_msg=key)
        else:
            assert type(one[key]) is type(two[key]) and one[key] == two[key], key


@pytest.fixture(params=["bermuda", "pure python"])
def triangulation(request, monkeypatch):
    """napari's triangulation: bermuda (napari's default where installed) and pure Python (napari's tests' own)."""
    from napari.layers.shapes._shapes_models import shape
    from napari.utils.triangulation_backend import TriangulationBackend

    backend = TriangulationBackend.bermuda if request.param == "bermuda" else TriangulationBackend.pure_python
    # bermuda is one of our dependencies (pyproject.toml): without it the install is broken, not the test
    assert backend != TriangulationBackend.bermuda or shape.bermuda is not None, "bermuda is not installed"
    monkeypatch.setattr(shape, "TRIANGULATION_BACKEND", backend)
    return request.param


@pytest.mark.parametrize("lead", [(7,), (1, 2)])
def test_filled_in_rectangles_are_napari_own(lead, triangulation):
    from napari.layers.shapes._shapes_models import Rectangle

    rng = np.random.default_rng(5)
    corner = rng.uniform(0, 2000, (300, 2))
    boxes = np.concatenate([corner, corner + rng.uniform(1, 60, corner.shape)], axis=1)
    boxes[:5] = np.round(boxes[:5])
    vertices = page_boxes.rectangles_at(boxes, lead)
    order = tuple(range(len(lead) + 2))
    made = shape_fill.make_rectangles(Rectangle, vertices, 1, order, 2)
    if made is None:  # napari's rectangles differ from box to box there: left to napari's constructor
        assert triangulation != "bermuda"
        return
    assert len(made) == len(boxes)
    for ours, theirs in zip(made, [Rectangle(v, edge_width=1, z_index=0, dims_order=order, ndisplay=2) for v in vertices]):
        same_attributes(ours, theirs)


def test_an_empty_box_or_another_rectangle_class_is_left_to_napari():
    from napari.layers.shapes._shapes_models import Rectangle

    class Other(Rectangle):  # a napari whose rectangles hold something more
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._extra = np.zeros(3)

    boxes = np.array([[1.0, 1.0, 5.0, 5.0], [3.0, 3.0, 3.0, 9.0]])  # the second: no width
    assert shape_fill.make_rectangles(Rectangle, page_boxes.rectangles_at(boxes, (0,)), 1, (0, 1, 2), 2) is None
    assert shape_fill.make_rectangles(Other, page_boxes.rectangles_at(boxes[:1], (0,)), 1, (0, 1, 2), 2) is None


def random_rectangles(count, lead=(7,), seed=5):
    from napari.layers.shapes._shapes_models import Rectangle

    rng = np.random.default_rng(seed)
    corner = rng.uniform(0, 2000, (count, 2))
    boxes = np.concatenate([corner, corner + rng.uniform(1, 60, corner.shape)], axis=1)
    order = tuple(range(len(lead) + 2))
    return [Rectangle(v, edge_width=1, z_index=0, dims_order=order, ndisplay=2)
            for v in page_boxes.rectangles_at(boxes, lead)]


def assert_same_list(ours, theirs):
    """Every array of two napari shape lists and of their meshes equal, in value and type."""
    assert ours.shapes == theirs.shapes
    for one, two in ((vars(ours), vars(theirs)), (vars(ours._mesh), vars(theirs._mesh))):
        arrays = sorted(k for k in one.keys() | two.keys() if isinstance(one.get(k, two.get(k)), np.ndarray))
        assert arrays
        for key in arrays:
            assert isinstance(one.get(key), np.ndarray) and isinstance(two.get(key), np.ndarray), key
            assert one[key].dtype == two[key].dtype, key
            np.testing.assert_array_equal(one[key], two[key], err_msg=key)


@pytest.mark.parametrize("lead", [(7,), (1, 2)])
def test_a_shape_list_filled_at_once_is_napari_own(lead, triangulation):
    from napari.layers.shapes._shape_list import ShapeList

    shapes = random_rectangles(500, lead)
    rng = np.random.default_rng(1)
    face, edge = rng.random((500, 4)).astype(np.float32), rng.random((500, 4)).astype(np.float32)
    theirs, ours = ShapeList(ndisplay=2), ShapeList(ndisplay=2)
    for target in (theirs, ours):  # after shapes already in the list, as a page's list is built
        target.slice_key = np.asarray(lead, dtype=np.float64)
        target.add(shape=shapes[:2], face_color=face[:2], edge_color=edge[:2], z_refresh=False)
    theirs.add(shape=shapes[2:], face_color=face[2:], edge_color=edge[2:], z_refresh=False)
    assert shape_fill._fill_list(ours, shapes[2:], face[2:], edge[2:])
    assert_same_list(ours, theirs)
    for target in (theirs, ours):  # and napari's own z order and display over them
        target._update_z_order()
    assert_same_list(ours, theirs)


def test_add_shapes_fills_rectangles_at_once_and_leaves_the_rest_to_napari(monkeypatch):
    from napari.layers.shapes._shape_list import ShapeList
    from napari.layers.shapes._shapes_models import Polygon

    shapes = random_rectangles(40)
    face, edge = np.ones((40, 4), np.float32), np.tile(np.float32([1, 0, 0, 1]), (40, 1))
    shape_fill.add_shapes(ShapeList(ndisplay=2), shapes[:3], face[:3], edge[:3])  # (checked against napari here)
    ours = ShapeList(ndisplay=2)
    calls = []
    monkeypatch.setattr(ShapeList, "add", lambda self, **kw: calls.append(kw))
    shape_fill.add_shapes(ours, shapes, face, edge)
    assert calls == [] and len(ours.shapes) == 40  # rectangles: filled at once, napari's add not called
    monkeypatch.undo()
    theirs = ShapeList(ndisplay=2)
    theirs.add(shape=shapes, face_color=face, edge_color=edge, z_refresh=False)
    assert_same_list(ours, theirs)

    # a pentagon among them (other mesh sizes) or another edge width: napari's own add
    polygon = Polygon(np.array([[7, 0, 0], [7, 0, 9], [7, 5, 12], [7, 9, 9], [7, 9, 0]], float), edge_width=1, z_index=0,
                      dims_order=(0, 1, 2), ndisplay=2)
    wider = random_rectangles(1, seed=9)[0]
    wider.edge_width = 3
    for odd in (polygon, wider):
        mixed = [*shapes[:5], odd, *shapes[5:10]]
        assert not shape_fill._fill_list(ShapeList(ndisplay=2), mixed, face[:11], edge[:11])
        ours, theirs = ShapeList(ndisplay=2), ShapeList(ndisplay=2)
        shape_fill.add_shapes(ours, mixed, face[:11], edge[:11])
        theirs.add(shape=mixed, face_color=face[:11], edge_color=edge[:11], z_refresh=False)
        assert_same_list(ours, theirs)
