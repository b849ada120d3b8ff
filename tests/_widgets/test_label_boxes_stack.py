"""The "Label boxes" widget on a stack read as data (issue 13): labeled planes, the 0 key,
next unlabeled plane, one file saved."""

import numpy as np
import tifffile
from qtpy.QtCore import Qt

from napari_faster_rcnn.core.data.annotations import load_annotation
from napari_faster_rcnn.core.data.boxes import boxes_to_rectangles

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
