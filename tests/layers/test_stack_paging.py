"""A stack's box layer holds the plane shown only; the other planes' boxes are paged in (issue 13)."""

import numpy as np
import tifffile

from napari_faster_rcnn.core.data.annotations import Annotation, load_annotation, save_annotation
from napari_faster_rcnn.core.data.boxes import boxes_to_rectangles, rectangles_to_boxes
from napari_faster_rcnn.layers import stack_labeling

PLUGIN = "napari-faster-rcnn"


def write_movie(folder, shape=(6, 48, 64), per_plane=4):
    path = folder / "movie.tif"
    tifffile.imwrite(path, np.random.default_rng(0).integers(0, 4096, shape, dtype=np.uint16), photometric="minisblack")
    rng = np.random.default_rng(1)
    planes = np.repeat(np.arange(0, shape[0], 2), per_plane)  # boxes on planes 0, 2, 4
    corner = rng.uniform(0, 30, (len(planes), 2))
    boxes = np.concatenate([corner, corner + rng.uniform(3, 12, corner.shape)], axis=1)
    labels = [["cell", "debris"][(i * i // 3) % 2] for i in range(len(planes))]  # differ from plane to plane
    annotation = Annotation(boxes, labels, classes=["cell", "debris"], planes=planes[:, None],
                            labeled_planes=np.array([[5]]))
    save_annotation(folder / "movie.pt", annotation)
    return path, annotation


def shown(shapes):
    boxes, _ = rectangles_to_boxes(shapes.data)
    return boxes, list(shapes.features["label"]), {int(round(v[0, 0])) for v in shapes.data}


def test_the_layer_holds_the_plane_shown_and_the_slider_swaps_the_boxes_in(make_napari_viewer, tmp_path):
    path, annotation = write_movie(tmp_path)
    viewer = make_napari_viewer()
    image, shapes = viewer.open(path, plugin=PLUGIN)
    assert not isinstance(image.data, np.ndarray)  # lazy: nothing decoded but the plane shown
    for plane in (0, 2, 1, 4, 5):
        viewer.dims.set_current_step(0, plane)
        reference = annotation.on_plane([plane])
        boxes, labels, leads = shown(shapes)
        assert shapes.nshapes == len(reference) and labels == reference.labels
        np.testing.assert_allclose(boxes, reference.boxes)
        assert leads <= {plane}
        drawn = viewer.window._qt_viewer.canvas.layer_to_visual[shapes].node.text.text  # the labels on screen
        assert list(drawn if len(reference) else []) == reference.labels
    assert stack_labeling.labeled_planes(shapes) == {(0,), (2,), (4,), (5,)}
    assert stack_labeling.plane_counts(viewer, shapes) == (4, 6)


def test_edits_on_several_planes_are_saved_to_the_one_file(make_napari_viewer, tmp_path):
    path, annotation = write_movie(tmp_path)
    viewer = make_napari_viewer()
    _, shapes = viewer.open(path, plugin=PLUGIN)
    viewer.dims.set_current_step(0, 2)
    shapes.selected_data = {0}
    shapes.remove_selected()  # one box of plane 2 deleted
    viewer.dims.set_current_step(0, 3)
    (rectangle,) = boxes_to_rectangles(np.array([[10.0, 11.0, 20.0, 25.0]]))
    shapes.add_rectangles([np.concatenate([np.full((4, 1), 3.0), rectangle], axis=1)])  # drawn on plane 3
    viewer.dims.set_current_step(0, 1)
    stack_labeling.mark_no_objects(viewer, shapes)  # plane 1: no objects here
    viewer.layers.selection = {shapes}
    written = viewer.layers.save(str(tmp_path / "movie.pt"), selected=True, plugin=PLUGIN)
    assert written == [str(tmp_path / "movie.pt")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["movie.pt", "movie.tif"]
    saved = load_annotation(tmp_path / "movie.pt")
    expected = {plane: annotation.on_plane([plane]) for plane in range(6)}
    expected[2] = expected[2].select(np.arange(1, len(expected[2])))
    expected[3] = Annotation(np.array([[10.0, 11, 20, 25]]), ["cell"])
    for plane, reference in expected.items():
        found = saved.on_plane([plane])
        assert found.labels == reference.labels, plane
        np.testing.assert_allclose(found.boxes, reference.boxes.reshape(-1, 4))
    assert saved.labeled_planes.tolist() == [[0], [1], [2], [3], [4], [5]]


def test_a_time_and_z_stack_pages_by_both_sliders(make_napari_viewer, tmp_path):
    path = tmp_path / "tz.ome.tif"
    tifffile.imwrite(path, np.zeros((2, 3, 16, 16), np.uint16), metadata={"axes": "TZYX"})
    annotation = Annotation(np.array([[1.0, 1, 5, 5], [2.0, 2, 8, 8]]), ["a", "b"], planes=np.array([[1, 2], [0, 1]]))
    save_annotation(tmp_path / "tz.ome.pt", annotation)
    viewer = make_napari_viewer()
    _, shapes = viewer.open(path, plugin=PLUGIN)
    viewer.dims.current_step = (1, 1, 0, 0)
    assert shapes.nshapes == 0
    viewer.dims.current_step = (1, 2, 0, 0)
    assert list(shapes.features["label"]) == ["a"] and np.allclose(np.asarray(shapes.data[0])[:, :2], [1, 2])
    viewer.dims.current_step = (0, 1, 0, 0)
    assert list(shapes.features["label"]) == ["b"]
    assert stack_labeling.next_unlabeled_plane(viewer, shapes) == (0, 2)
    assert stack_labeling.stack_annotation(shapes).planes.tolist() == [[0, 1], [1, 2]]


def test_the_0_key_marks_the_plane_shown_without_the_widget_and_after_it(make_napari_viewer, tmp_path):
    from napari_faster_rcnn.layers import labeling

    path, _ = write_movie(tmp_path)
    viewer = make_napari_viewer()
    _, shapes = viewer.open(path, plugin=PLUGIN)

    def press_0():
        keys = {str(key): function for key, function in shapes.keymap.items()}
        keys[stack_labeling.NO_OBJECTS_KEY](shapes)  # the key press, as napari dispatches it

    viewer.dims.set_current_step(0, 1)
    press_0()
    session = labeling.labeling_session(viewer, shapes)  # Label boxes takes the layer over
    viewer.dims.set_current_step(0, 3)
    press_0()
    assert stack_labeling.labeled_planes(shapes) == {(0,), (1,), (2,), (3,), (4,), (5,)}
    session.close()  # the layer removed from Label boxes: the old pager's key must not come back
    viewer.dims.set_current_step(0, 2)
    assert {str(key) for key in shapes.keymap} == set()
