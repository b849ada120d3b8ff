"""The "Label boxes" widget on a stack read as data (issue 13): labeled planes, the 0 key,
next unlabeled plane, one file saved."""

import numpy as np
import tifffile
from qtpy.QtCore import Qt

from napari_faster_rcnn.core.data.annotations import load_annotation
from napari_faster_rcnn.core.data.boxes import boxes_to_rectangles, rectangles_to_boxes

PLUGIN = "napari-faster-rcnn"


def test_label_planes_of_a_stack_with_the_widget(make_napari_viewer, tmp_path, qtbot):
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, np.random.default_rng(0).integers(0, 4096, (10, 32, 40), dtype=np.uint16))
    viewer = make_napari_viewer()
    _, shapes = viewer.open(path, plugin=PLUGIN)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Label boxes")
    assert widget.stack_layer is shapes and widget.session.is_stack
    assert widget.unlabeled.text().startswith("0 of 10 planes labeled")
    (rectangle,) = boxes_to_rectangles(np.array([[2.0, 2.0, 10.0, 12.0]]))
    shapes.add_rectangles([np.concatenate([np.full((4, 1), 3.0), rectangle], axis=1)])
    assert widget.unlabeled.text().startswith("1 of 10 planes labeled")
    viewer.dims.set_current_step(0, 7)
    viewer.layers.selection.active = shapes
    # a real key press on the canvas: "no objects here"
    qtbot.keyClick(viewer.window._qt_viewer.canvas.native, Qt.Key.Key_0)
    assert widget.unlabeled.text().startswith("2 of 10 planes labeled")
    assert widget.position.text() == "plane 7 of a stack of 10 planes"
    assert widget.next_unlabeled() == (8,)
    assert viewer.dims.current_step[0] == 8
    widget.save()
    saved = load_annotation(tmp_path / "movie.pt")
    assert saved.planes.tolist() == [[3]] and saved.labeled_planes.tolist() == [[3], [7]]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["movie.pt", "movie.tif"]


def test_autosave_and_the_class_table_work_on_a_stack(make_napari_viewer, tmp_path):
    from napari_faster_rcnn.core.data.annotations import Annotation, save_annotation

    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, np.zeros((6, 40, 48), dtype=np.uint16))
    boxes = np.array([[1.0, 1, 6, 6], [8, 8, 14, 14], [20, 2, 30, 9]])
    save_annotation(tmp_path / "movie.pt", Annotation(boxes, ["cell", "debris", "cell"], classes=["cell", "debris"],
                                                      planes=np.array([[0], [0], [4]])))
    viewer = make_napari_viewer()
    _, shapes = viewer.open(path, plugin=PLUGIN)
    viewer.dims.set_current_step(0, 0)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Label boxes")
    assert widget.autosave.isChecked() and widget.classes.isEnabled()

    def table():
        return [[widget.classes.item(r, c).text() for c in range(4)] for r in range(widget.classes.rowCount())]

    assert table() == [["1", "cell", "1", "2"], ["2", "debris", "1", "1"]]  # here: plane 0; all: the stack
    assert widget.unlabeled.text().startswith("2 of 6 planes labeled")
    widget.next_button.click()
    assert viewer.dims.current_step[0] == 1 and widget.position.text() == "plane 1 of a stack of 6 planes"
    widget.class_name.setText("mitosis")
    widget.add_class()
    shapes.add_rectangles([np.concatenate([np.full((4, 1), 1.0), r], axis=1)
                           for r in boxes_to_rectangles(np.array([[3.0, 4, 12, 15]]))])
    assert table()[2] == ["3", "mitosis", "1", "1"]
    assert widget.unlabeled.text().startswith("3 of 6 planes labeled")
    widget.next_button.click()  # leaving plane 1: autosave writes the stack's file
    saved = load_annotation(tmp_path / "movie.pt")
    assert saved.on_plane([1]).labels == ["mitosis"] and saved.classes == ["cell", "debris", "mitosis"]
    assert saved.labeled_planes.tolist() == [[0], [1], [4]]
    assert widget.save_button.text() == "Save"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["movie.pt", "movie.tif"]

    reopened = make_napari_viewer()  # the file as a person opens it again
    _, again = reopened.open(path, plugin=PLUGIN)
    reopened.dims.set_current_step(0, 1)
    assert list(again.features["label"]) == ["mitosis"]
    found, _ = rectangles_to_boxes(again.data)
    np.testing.assert_allclose(found, [[3.0, 4, 12, 15]])


def test_a_stack_layer_holding_every_box_is_paged_once_labeled(make_napari_viewer, tmp_path):
    from napari_faster_rcnn.core.data.synthetic_timelapse import nuclei_timelapse

    _, annotation = nuclei_timelapse()
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "nuclei-timelapse")  # its box layer holds every frame's boxes
    _, shapes = viewer.layers
    viewer.dims.set_current_step(0, 2)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Label boxes")
    widget.boxes.set_layer(shapes)
    assert widget.session.is_stack
    assert shapes.nshapes == len(annotation.on_plane([2]))  # now the frame shown only
    assert widget.unlabeled.text().startswith("5 of 10 planes labeled")
    assert widget.classes.item(0, 3).text() == f"{len(annotation):,}"
    assert widget.next_unlabeled() == (5,) and viewer.dims.current_step[0] == 5
    viewer.layers.selection = {shapes}
    viewer.layers.save(str(tmp_path / "nuclei.pt"), selected=True, plugin=PLUGIN)
    saved = load_annotation(tmp_path / "nuclei.pt")
    assert len(saved) == len(annotation) and saved.labeled_planes.tolist() == [[f] for f in range(5)]
    for frame in range(5):
        np.testing.assert_allclose(saved.on_plane([frame]).boxes, annotation.on_plane([frame]).boxes, atol=1e-6)
