"""Labeled planes of a stack read as data (issue 13), in a real viewer."""

import numpy as np
import tifffile

from napari_faster_rcnn.core.data.annotations import load_annotation
from napari_faster_rcnn.core.data.boxes import boxes_to_rectangles
from napari_faster_rcnn.layers import stack_labeling

PLUGIN = "napari-faster-rcnn"


def open_stack(viewer, path, shape=(10, 32, 40)):
    tifffile.imwrite(path, np.random.default_rng(0).integers(0, 4096, shape, dtype=np.uint16), photometric="minisblack")
    return viewer.open(path, plugin=PLUGIN)


def box_on(plane, box):
    (rectangle,) = boxes_to_rectangles(np.array([box], dtype=float))
    return [np.concatenate([np.full((4, len(plane)), plane, dtype=float), rectangle], axis=1)]


def test_drawing_a_box_and_the_no_objects_key_label_planes(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    _, shapes = open_stack(viewer, tmp_path / "movie.tif")
    assert stack_labeling.plane_counts(viewer, shapes) == (0, 10)
    shapes.add_rectangles(box_on([3], [2, 2, 10, 12]))
    viewer.dims.set_current_step(0, 7)
    stack_labeling.bind_stack_keys(viewer, shapes)
    keys = {str(key): function for key, function in shapes.keymap.items()}
    keys[stack_labeling.NO_OBJECTS_KEY](shapes)  # the key press, as napari dispatches it
    assert stack_labeling.labeled_planes(shapes) == {(3,), (7,)}
    assert stack_labeling.plane_counts(viewer, shapes) == (2, 10)
    viewer.layers.selection = {shapes}
    viewer.layers.save(str(tmp_path / "movie.pt"), selected=True, plugin=PLUGIN)
    saved = load_annotation(tmp_path / "movie.pt")
    assert saved.labeled_planes.tolist() == [[3], [7]] and saved.planes.tolist() == [[3]]


def test_next_unlabeled_plane_skips_labeled_ones_and_wraps(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    _, shapes = open_stack(viewer, tmp_path / "movie.tif", shape=(5, 16, 16))
    stack_labeling.mark_planes(shapes, [[1], [2], [4]])
    viewer.dims.set_current_step(0, 0)
    assert stack_labeling.next_unlabeled_plane(viewer, shapes) == (3,)
    assert viewer.dims.current_step[0] == 3
    assert stack_labeling.next_unlabeled_plane(viewer, shapes) == (0,)
    stack_labeling.mark_planes(shapes, [[0], [3]])
    assert stack_labeling.next_unlabeled_plane(viewer, shapes) is None


def test_two_leading_dimensions(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    path = tmp_path / "tz.ome.tif"
    tifffile.imwrite(path, np.zeros((2, 3, 16, 16), np.uint16), metadata={"axes": "TZYX"})
    _, shapes = viewer.open(path, plugin=PLUGIN)
    shapes.add_rectangles(box_on([0, 0], [1, 1, 5, 5]))
    viewer.dims.current_step = (0, 0, 0, 0)
    assert stack_labeling.next_unlabeled_plane(viewer, shapes) == (0, 1)
    assert stack_labeling.plane_counts(viewer, shapes) == (1, 6)


def test_a_plane_stays_labeled_when_its_box_is_deleted(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    _, shapes = open_stack(viewer, tmp_path / "movie.tif", shape=(4, 16, 16))
    stack_labeling.bind_stack_keys(viewer, shapes)
    viewer.dims.set_current_step(0, 2)
    shapes.add_rectangles(box_on([2], [1, 1, 5, 5]))
    shapes.selected_data = {0}
    shapes.remove_selected()
    assert len(shapes.data) == 0
    assert stack_labeling.labeled_planes(shapes) == {(2,)}
