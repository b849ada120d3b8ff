"""Suggestions in Label boxes on a stack read as data (issues 13 and 14): each plane predicted as a
plane of the stack's file, shown on the plane shown, Shift-K accepts into that plane (the stack's one
file: boxes with their plane, the plane labeled), ``n`` moves to the next plane with its own."""

import numpy as np
import tifffile
import torchvision.ops  # noqa: F401  (the score filter needs it: imported here, not on the first suggestions)
from qtpy.QtCore import Qt

from napari_faster_rcnn.core.data.annotations import Annotation, load_annotation
from napari_faster_rcnn.core.data.boxes import rectangles_to_boxes
from napari_faster_rcnn.core.prediction.rejections import REJECTED_FILE, read_rejected_file
from napari_faster_rcnn.core.prediction.stacks import StackPlane
from napari_faster_rcnn.layers.suggestions import SUGGESTIONS_NAME

PLUGIN = "napari-faster-rcnn"

#: the model's boxes per plane: plane p has p + 1 boxes at 0.9, and one at 0.2 (not suggested)
TRUTH = {
    plane: Annotation(
        np.array([[4.0 + 12 * i, 4.0 + 6 * plane, 12.0 + 12 * i, 14.0 + 6 * plane] for i in range(plane + 2)]),
        ["cell"] * (plane + 1) + ["debris"],
        scores=np.array([0.9] * (plane + 1) + [0.2]),
        classes=["cell", "debris"],
    )
    for plane in range(4)
}


def key(viewer, qtbot, name, shift=False):
    canvas = viewer.window._qt_viewer.canvas.native
    modifier = Qt.KeyboardModifier.ShiftModifier if shift else Qt.KeyboardModifier.NoModifier
    qtbot.keyClick(canvas, getattr(Qt.Key, f"Key_{name.upper()}"), modifier)


def plane_boxes(layer):
    """Boxes of a layer's shapes and the leading coordinate each lies on."""
    if not layer.nshapes:
        return np.zeros((0, 4)), []
    return rectangles_to_boxes([v[:, -2:] for v in layer.data])[0], [int(round(v[0, 0])) for v in layer.data]


def test_suggestions_on_the_planes_of_a_stack(make_napari_viewer, qtbot, tmp_path):
    path = tmp_path / "movie.tif"
    # minisblack: tifffile would otherwise store 4 planes as the samples of one RGBA image
    tifffile.imwrite(path, np.random.default_rng(0).integers(0, 4096, (4, 64, 64), dtype=np.uint16),
                     photometric="minisblack")
    calls = []

    def predict(item):
        assert isinstance(item, StackPlane)  # one plane of the stack's file, not the whole stack
        calls.append((item.source, item.plane))
        return TRUTH[item.plane[0]]

    viewer = make_napari_viewer()
    _, shapes = viewer.open(path, plugin=PLUGIN)
    viewer.dims.set_current_step(0, 1)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Label boxes")
    assert widget.session.is_stack and widget.session.current == 1
    widget.suggestions.use_predictor(predict, "stub")
    layer = viewer.layers[SUGGESTIONS_NAME]
    assert viewer.layers.selection.active is shapes

    # the plane shown: its suggestions (the 0.2 box left out), drawn on that plane
    qtbot.waitUntil(lambda: layer.nshapes == 2, timeout=5000)
    boxes, planes = plane_boxes(layer)
    np.testing.assert_allclose(boxes, TRUTH[1].boxes[:2], atol=1e-6)
    assert planes == [1, 1] and list(layer.features["label"]) == ["cell", "cell"]
    assert widget.suggestions.status.text() == "stub: 2 suggestions (score ≥ 0.50)"
    # the planes after it are predicted ahead, each as a plane of the file
    qtbot.waitUntil(lambda: {(path, (p,)) for p in (1, 2, 3)} <= set(calls), timeout=5000)

    key(viewer, qtbot, "k", shift=True)  # accept all, into plane 1
    assert layer.nshapes == 0
    boxes, planes = plane_boxes(shapes)
    np.testing.assert_allclose(boxes, TRUTH[1].boxes[:2], atol=1e-6)
    assert planes == [1, 1] and list(shapes.features["label"]) == ["cell", "cell"]
    assert widget.unlabeled.text().startswith("1 of 4 planes labeled")

    key(viewer, qtbot, "n")  # the next plane, with its own suggestions; leaving plane 1 saved the stack's file
    assert viewer.dims.current_step[0] == 2 and widget.session.current == 2
    qtbot.waitUntil(lambda: layer.nshapes == 3, timeout=5000)
    boxes, planes = plane_boxes(layer)
    np.testing.assert_allclose(boxes, TRUTH[2].boxes[:3], atol=1e-6)
    assert planes == [2, 2, 2]
    saved = load_annotation(tmp_path / "movie.pt")
    np.testing.assert_allclose(saved.boxes, TRUTH[1].boxes[:2], atol=1e-6)
    assert saved.planes.tolist() == [[1], [1]] and saved.labeled_planes.tolist() == [[1]]
    assert saved.labels == ["cell", "cell"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["movie.pt", "movie.tif"]

    layer.selected_data = {0}
    key(viewer, qtbot, "j")  # reject one on plane 2; accept the rest
    # kept beside the stack, under its file name and plane, for the next time the stack is opened
    rejected = read_rejected_file(tmp_path / REJECTED_FILE)
    assert list(rejected) == ["movie.tif"] and list(rejected["movie.tif"]) == ["2"]
    np.testing.assert_allclose(rejected["movie.tif"]["2"][0], TRUTH[2].boxes[:1], atol=1e-6)
    assert rejected["movie.tif"]["2"][1] == ["cell"]
    key(viewer, qtbot, "k", shift=True)
    widget.save()
    saved = load_annotation(tmp_path / "movie.pt")
    assert saved.planes.tolist() == [[1], [1], [2], [2]]
    np.testing.assert_allclose(saved.boxes[2:], TRUTH[2].boxes[1:3], atol=1e-6)
    assert saved.labeled_planes.tolist() == [[1], [2]]

    key(viewer, qtbot, "b")  # back on plane 1: its labels, no suggestion again (all accepted)
    assert widget.session.current == 1 and layer.nshapes == 0 and shapes.nshapes == 2


def test_suggestions_on_a_time_lapse_of_z_stacks_carry_both_coordinates(make_napari_viewer, qtbot, tmp_path):
    path = tmp_path / "tz.tif"
    tifffile.imwrite(path, np.zeros((2, 3, 48, 48), dtype=np.uint16), photometric="minisblack")
    truth = Annotation(np.array([[4.0, 6, 20, 18], [24, 24, 40, 44]]), ["cell", "cell"],
                       scores=np.array([0.9, 0.8]), classes=["cell"])
    viewer = make_napari_viewer()
    _, shapes = viewer.open(path, plugin=PLUGIN)
    assert shapes.ndim == 4
    viewer.dims.current_step = (1, 2, 0, 0)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Label boxes")
    seen = []
    widget.suggestions.use_predictor(lambda item: seen.append(item.plane) or truth, "stub")
    layer = viewer.layers[SUGGESTIONS_NAME]
    assert layer.ndim == 4
    qtbot.waitUntil(lambda: layer.nshapes == 2, timeout=5000)
    assert seen[0] == (1, 2)
    assert [tuple(v[0, :2]) for v in layer.data] == [(1.0, 2.0), (1.0, 2.0)]  # on the plane shown
    key(viewer, qtbot, "k", shift=True)
    widget.save()
    saved = load_annotation(tmp_path / "tz.pt")
    assert saved.planes.tolist() == [[1, 2], [1, 2]] and saved.labeled_planes.tolist() == [[1, 2]]
    np.testing.assert_allclose(saved.boxes, truth.boxes, atol=1e-6)
