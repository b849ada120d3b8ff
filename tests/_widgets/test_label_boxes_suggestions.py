"""Suggestions in Label boxes, in a real viewer: the layer, the keys, the files, rejected boxes on revisit,
predicting ahead, and a real checkpoint loaded through the box."""

import shutil

import numpy as np
import pytest
from qtpy.QtCore import Qt

from napari_faster_rcnn.core.data.annotations import Annotation, load_annotation
from napari_faster_rcnn.core.data.boxes import rectangles_to_boxes
from napari_faster_rcnn.core.data.synthetic import write_synthetic_dataset
from napari_faster_rcnn.layers.suggestions import SUGGESTIONS_NAME
from tests.checkpoint_data import tiny_checkpoint

PLUGIN = "napari-faster-rcnn"


@pytest.fixture
def unlabeled(tmp_path):
    """Six synthetic images without annotation files, and their true boxes (kept aside)."""
    folder = write_synthetic_dataset(tmp_path / "shapes", n_images=6, seed=3, height=64, width=80,
                                     objects=(3, 4), sizes=(12, 20))
    truth = {path.stem: load_annotation(path) for path in (folder / "target").glob("*.pt")}
    shutil.rmtree(folder / "target")
    (folder / "target").mkdir()
    return folder, truth


def stub_predictor(truth, calls):
    """The truth as the model's boxes: every box scores 0.9 but the last, 0.2 (under the threshold)."""
    def predict(item):
        from pathlib import Path

        calls.append(Path(item).stem)
        annotation = truth[Path(item).stem]
        scores = np.full(len(annotation), 0.9)
        scores[-1] = 0.2
        return Annotation(annotation.boxes, annotation.labels, scores=scores, classes=annotation.classes)

    return predict


def key(viewer, qtbot, name, shift=False):
    canvas = viewer.window._qt_viewer.canvas.native
    modifier = Qt.KeyboardModifier.ShiftModifier if shift else Qt.KeyboardModifier.NoModifier
    qtbot.keyClick(canvas, getattr(Qt.Key, f"Key_{name.upper()}"), modifier)


def boxes_of(layer):
    return rectangles_to_boxes(layer.data)[0] if layer.nshapes else np.zeros((0, 4))


def test_suggestions_accepted_rejected_and_saved(make_napari_viewer, qtbot, unlabeled):
    folder, truth = unlabeled
    viewer = make_napari_viewer()
    viewer.open(folder, plugin=PLUGIN)
    viewer.dims.set_current_step(0, 0)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Label boxes")
    boxes = widget.session.layer
    calls = []
    widget.suggestions.use_predictor(stub_predictor(truth, calls), "stub")

    layer = viewer.layers[SUGGESTIONS_NAME]
    assert viewer.layers.index(layer) > viewer.layers.index(boxes)  # drawn over the labels
    assert viewer.layers.selection.active is boxes  # the person draws where they did
    first = truth["000"]
    qtbot.waitUntil(lambda: layer.nshapes == len(first) - 1, timeout=5000)
    assert np.allclose(boxes_of(layer), first.boxes[:-1], atol=1e-6)  # the low-scored one is not suggested
    assert list(layer.features["label"]) == first.labels[:-1]
    assert widget.suggestions.status.text() == f"stub: {len(first) - 1} suggestions (score ≥ 0.50)"
    # the next images are predicted ahead of the person, in order
    qtbot.waitUntil(lambda: calls[:5] == ["000", "001", "002", "003", "004"], timeout=5000)

    key(viewer, qtbot, "k", shift=True)  # accept all
    assert boxes.nshapes == len(first) - 1 and layer.nshapes == 0
    assert list(boxes.features["label"]) == first.labels[:-1]
    assert 0 in widget.session.store.dirty  # unsaved, as a drawn box
    key(viewer, qtbot, "n")
    saved = load_annotation(folder / "target" / "000.pt")  # autosave on leaving
    assert np.allclose(saved.boxes, first.boxes[:-1], atol=1e-6) and saved.labels == first.labels[:-1]

    second = truth["001"]
    qtbot.waitUntil(lambda: layer.nshapes == len(second) - 1, timeout=5000)
    layer.selected_data = {1}
    key(viewer, qtbot, "k")  # accept the selected one
    assert boxes.nshapes == 1 and np.allclose(boxes_of(boxes), second.boxes[[1]], atol=1e-6)
    assert layer.nshapes == len(second) - 2
    layer.selected_data = {0}
    key(viewer, qtbot, "j")  # reject the selected one
    assert layer.nshapes == len(second) - 3
    key(viewer, qtbot, "j")  # none selected: reject every one shown
    assert layer.nshapes == 0 and boxes.nshapes == 1

    key(viewer, qtbot, "n")
    key(viewer, qtbot, "b")  # back: what was rejected does not come back, the accepted one is a label
    assert widget.session.current == 1 and layer.nshapes == 0 and boxes.nshapes == 1
    written = load_annotation(folder / "target" / "001.pt")
    assert np.allclose(written.boxes, second.boxes[[1]], atol=1e-6) and written.labels == [second.labels[1]]

    widget.suggestions.threshold.setValue(0.1)  # the low-scored box shows now: it was never shown, nor rejected
    assert layer.nshapes == 1 and np.allclose(boxes_of(layer), second.boxes[[-1]], atol=1e-6)
    key(viewer, qtbot, "n")
    qtbot.waitUntil(lambda: layer.nshapes == len(truth["002"]), timeout=5000)

    widget.suggestions.enabled.setChecked(False)  # off: the layer goes, the keys with it
    assert SUGGESTIONS_NAME not in viewer.layers
    key(viewer, qtbot, "k", shift=True)
    assert boxes.nshapes == 0


def test_a_checkpoint_loaded_in_the_box_suggests(make_napari_viewer, qtbot, unlabeled, tmp_path_factory):
    folder, _ = unlabeled
    checkpoint = tiny_checkpoint(tmp_path_factory)  # two steps of training: every score near 1/4
    viewer = make_napari_viewer()
    viewer.open(folder, plugin=PLUGIN)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Label boxes")
    box = widget.suggestions
    box.use_last_run()
    assert box.status.text() == "no run of Train detector in this viewer has written a checkpoint yet"
    box.threshold.setValue(0.0)
    box.path.setText(str(checkpoint))
    box.load()
    qtbot.waitUntil(lambda: SUGGESTIONS_NAME in viewer.layers and viewer.layers[SUGGESTIONS_NAME].nshapes > 0,
                    timeout=30000)
    layer = viewer.layers[SUGGESTIONS_NAME]
    assert box.status.text().startswith("last.ckpt: ")
    assert set(layer.features["label"]) <= {"circle", "square", "triangle"}
    viewer.layers.remove(widget.session.layer)  # the box layer goes: its suggestions with it
    assert SUGGESTIONS_NAME not in viewer.layers


def test_a_checkpoint_that_is_not_one_is_named(make_napari_viewer, qtbot, unlabeled, tmp_path):
    folder, _ = unlabeled
    viewer = make_napari_viewer()
    viewer.open(folder, plugin=PLUGIN)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Label boxes")
    bad = tmp_path / "notes.ckpt"
    bad.write_text("not a checkpoint")
    widget.suggestions.path.setText(str(bad))
    widget.suggestions.load()  # (a worker that fails at once may finish before a wait for its signal begins)
    qtbot.waitUntil(lambda: widget.suggestions.status.text().startswith("not loaded: "), timeout=20000)
    assert "notes.ckpt" in widget.suggestions.status.text()
    assert SUGGESTIONS_NAME not in viewer.layers


def test_a_rejected_suggestion_stays_away_after_the_folder_is_opened_again(make_napari_viewer, qtbot, unlabeled):
    """Rejected in one viewer, written beside the images; a new viewer on the folder does not suggest it
    again, but does suggest a box there of another class."""
    import json

    from napari_faster_rcnn.core.prediction.rejections import REJECTED_FILE

    folder, truth = unlabeled
    first = truth["000"]
    viewer = make_napari_viewer()
    viewer.open(folder, plugin=PLUGIN)
    viewer.dims.set_current_step(0, 0)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Label boxes")
    widget.suggestions.use_predictor(stub_predictor(truth, []), "stub")
    layer = viewer.layers[SUGGESTIONS_NAME]
    qtbot.waitUntil(lambda: layer.nshapes == len(first) - 1, timeout=5000)
    layer.selected_data = {0}
    key(viewer, qtbot, "j")  # reject the first suggestion
    assert layer.nshapes == len(first) - 2
    sidecar = folder / "input" / REJECTED_FILE
    saved = json.loads(sidecar.read_text())["images"]["000.png"][""]
    assert np.allclose(saved["boxes"], first.boxes[[0]]) and saved["labels"] == [first.labels[0]]

    other = "hexagon" if first.labels[0] != "hexagon" else "star"
    moved = first.boxes[0] + np.array([1.0, -1.0, 1.0, 0.0])  # a retrained model's box a pixel away

    def predict_again(item):  # the rejected box (moved a little) again, and once more under another class
        from pathlib import Path

        annotation = truth[Path(item).stem]
        if Path(item).stem != "000":
            return stub_predictor(truth, [])(item)
        boxes = np.concatenate([[moved], annotation.boxes[1:-1], [first.boxes[0]]])
        return Annotation(boxes, [first.labels[0], *annotation.labels[1:-1], other],
                          scores=np.full(len(boxes), 0.9), classes=annotation.classes)

    again = make_napari_viewer()
    again.open(folder, plugin=PLUGIN)
    again.dims.set_current_step(0, 0)
    _, widget = again.window.add_plugin_dock_widget(PLUGIN, "Label boxes")
    widget.suggestions.use_predictor(predict_again, "stub")
    layer = again.layers[SUGGESTIONS_NAME]
    qtbot.waitUntil(lambda: layer.nshapes == len(first) - 1, timeout=5000)
    assert list(layer.features["label"]) == [*first.labels[1:-1], other]
    assert np.allclose(boxes_of(layer), np.concatenate([first.boxes[1:-1], first.boxes[[0]]]), atol=1e-6)
