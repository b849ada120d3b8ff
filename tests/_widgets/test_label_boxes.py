"""The "Label boxes" widget, driven in a real viewer: classes, keys, counts shown, files on disk, closing."""

import numpy as np
import pytest
from qtpy.QtCore import Qt

from napari_faster_rcnn.core.data.annotations import load_annotation
from napari_faster_rcnn.core.data.boxes import boxes_to_rectangles

PLUGIN = "napari-faster-rcnn"


@pytest.fixture
def docked(make_napari_viewer, tutorial_dataset):
    viewer = make_napari_viewer()
    viewer.open(tutorial_dataset, plugin=PLUGIN)
    viewer.dims.set_current_step(0, 0)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Label boxes")  # as the menu docks it
    questions = []
    widget.confirm_overwrite = lambda paths: questions.append(("overwrite", paths)) or False
    widget.confirm_remove_class = lambda name, count: questions.append(("remove", name, count)) or False
    widget.ask_unsaved = lambda count, can_cancel: questions.append(("unsaved", count, can_cancel)) or "save"
    return viewer, widget, tutorial_dataset / "target", questions


def rows(widget):
    """The class table as the person sees it: (key, class, here, all) per row."""
    table = widget.classes
    return [tuple(table.item(r, c).text() for c in range(table.columnCount())) for r in range(table.rowCount())]


def key(viewer, qtbot, name):
    """A real key press on the canvas (the person's keyboard, through Qt and napari's key map)."""
    canvas = viewer.window._qt_viewer.canvas.native
    qtbot.keyClick(canvas, getattr(Qt.Key, f"Key_{name.upper()}"))


def draw(layer, index, box):
    layer.add_rectangles(boxes_to_rectangles(np.array([box], dtype=float), image_index=index))


def test_label_a_stack_with_the_widget(docked, qtbot):
    viewer, widget, target, questions = docked
    layer = viewer.layers[1]
    assert widget.boxes.layer() is layer and widget.session.layer is layer
    assert widget.position.text() == "image 1 of 6: 000.png"
    first = load_annotation(target / "000.pt")
    counts = {name: first.labels.count(name) for name in ("circle", "square", "triangle")}
    assert [r[:3] for r in rows(widget)] == [("1", "circle", str(counts["circle"])),
                                             ("2", "square", str(counts["square"])),
                                             ("3", "triangle", str(counts["triangle"]))]

    widget.class_name.setText("star")
    widget.add_button.click()
    assert rows(widget)[3] == ("4", "star", "0", "0") and widget.selected_class() == "star"
    key(viewer, qtbot, "2")  # the key picks the class, and the table shows it
    assert widget.session.current_class == "square" and widget.selected_class() == "square"
    widget.classes.selectRow(3)  # a click on the row does the same
    assert widget.session.current_class == "star"
    draw(layer, 0, [3, 4, 13, 14])
    assert layer.features["label"].iloc[-1] == "star"
    assert rows(widget)[3] == ("4", "star", "1", "1")

    key(viewer, qtbot, "n")
    assert widget.position.text() == "image 2 of 6: 001.png"
    written = load_annotation(target / "000.pt")
    assert written.labels[-1] == "star" and written.classes == ["circle", "square", "triangle", "star"]
    assert widget.status.text().startswith("saved 000.pt")
    assert rows(widget)[3][2:] == ("0", "1")  # none here, one in the set

    layer.selected_data = set(range(layer.nshapes))
    layer.remove_selected()
    assert widget.unlabeled.text() == "1 of 6 without boxes: 001.png"
    key(viewer, qtbot, "n")
    key(viewer, qtbot, "n")
    assert widget.position.text() == "image 4 of 6: 003.png"
    widget.unlabeled_button.click()
    assert widget.position.text() == "image 2 of 6: 001.png"
    assert len(load_annotation(target / "001.pt")) == 0  # emptied, and saved on leaving
    key(viewer, qtbot, "b")
    assert widget.position.text() == "image 1 of 6: 000.png" and questions == []


def test_rename_by_editing_the_name_and_remove_asks_first(docked):
    viewer, widget, target, questions = docked
    widget.classes.item(0, 1).setText("disc")  # as a double-click edit ends
    assert [r[1] for r in rows(widget)] == ["disc", "square", "triangle"]
    assert load_annotation(target / "002.pt").classes == ["disc", "square", "triangle"]
    widget.classes.item(1, 1).setText("disc")  # a name already taken: refused, said why
    assert "already a class" in widget.status.text() and rows(widget)[1][1] == "square"
    widget.classes.selectRow(2)
    total = int(rows(widget)[2][3])
    assert not widget.remove_class()
    assert questions == [("remove", "triangle", total)] and rows(widget)[2][1] == "triangle"
    widget.recolor_class("#fafafa")  # nearly white: labels vanish on light images, and it says so
    assert "hard to read on light images" in widget.status.text()


def test_save_button_and_autosave_switch(docked):
    viewer, widget, target, questions = docked
    widget.autosave.setChecked(False)
    layer = viewer.layers[1]
    before = len(load_annotation(target / "000.pt"))
    draw(layer, 0, [3, 4, 13, 14])
    widget.next_button.click()
    assert len(load_annotation(target / "000.pt")) == before and widget.save_button.text() == "Save (1 unsaved)"
    widget.save_button.click()
    assert len(load_annotation(target / "000.pt")) == before + 1 and widget.status.text() == "saved 000.pt"
    assert widget.save_button.text() == "Save"


def test_closing_the_viewer_with_unsaved_boxes_asks_when_autosave_is_off(docked):
    viewer, widget, target, questions = docked
    widget.autosave.setChecked(False)
    before = len(load_annotation(target / "000.pt"))
    draw(viewer.layers[1], 0, [3, 4, 13, 14])
    viewer.close()  # closes the canvas first: no way back, so no Cancel
    assert questions == [("unsaved", 1, False)]
    assert len(load_annotation(target / "000.pt")) == before + 1


def test_closing_the_window_can_be_cancelled(docked):
    viewer, widget, target, questions = docked
    widget.autosave.setChecked(False)
    before = load_annotation(target / "000.pt")
    draw(viewer.layers[1], 0, [3, 4, 13, 14])
    widget.ask_unsaved = lambda count, can_cancel: questions.append(("unsaved", count, can_cancel)) or "cancel"
    assert not viewer.window._qt_window.close()  # Qt: the close event was ignored, the window stays
    assert questions == [("unsaved", 1, True)] and not widget.session.closed
    assert load_annotation(target / "000.pt") == before
    widget.ask_unsaved = lambda count, can_cancel: "discard"


def test_removing_the_layer_with_autosave_saves(docked):
    viewer, widget, target, questions = docked
    layer = viewer.layers[1]
    before = len(load_annotation(target / "000.pt"))
    draw(layer, 0, [3, 4, 13, 14])
    viewer.layers.remove(layer)
    assert len(load_annotation(target / "000.pt")) == before + 1 and questions == []
    assert widget.session is None and widget.position.text().startswith("no box layer")


def test_a_new_box_layer_on_an_image_layer(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((2, 40, 50), np.uint8), name="cells")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Label boxes")
    assert widget.session is None and widget.image.layer().name == "cells"
    layer = widget.start_new_layer()
    assert layer.name == "cells boxes" and widget.session.layer is layer
    assert widget.position.text() == "image 1 of 2"
    assert "File > Save Selected Layers" in widget.status.text()  # nowhere to autosave to
    widget.class_name.setText("cell")
    widget.add_button.click()
    draw(layer, 0, [1, 1, 9, 9])
    assert layer.features["label"].iloc[-1] == "cell" and rows(widget) == [("1", "cell", "1", "1")]
    assert widget.unlabeled.text() == "1 of 2 without boxes: #2"
    asked = []
    widget.ask_unsaved = lambda count, can_cancel: asked.append(count) or "discard"
    viewer.close()  # autosave cannot save boxes that have no file: it asks rather than lose them
    assert asked == [1]


def test_the_session_outlives_the_widget(docked):
    viewer, widget, target, questions = docked
    session, layer = widget.session, viewer.layers[1]
    viewer.window.remove_dock_widget(widget)
    widget.deleteLater()
    from qtpy.QtWidgets import QApplication

    QApplication.processEvents()
    before = len(load_annotation(target / "000.pt"))
    draw(layer, 0, [3, 4, 13, 14])
    viewer.window._qt_viewer._key_map_handler.press_key("n")  # the layer's own binding, autosave
    assert session.current == 1 and len(load_annotation(target / "000.pt")) == before + 1


def test_a_crowded_image_says_what_is_editable(make_napari_viewer, tmp_path, monkeypatch):
    from napari_faster_rcnn.core.data.annotations import Annotation, save_annotation
    from napari_faster_rcnn.layers import box_window, conventions
    from tests.conftest import write_image

    monkeypatch.setattr(conventions, "WINDOW_THRESHOLD", 1000)
    monkeypatch.setattr(conventions, "WINDOW_CAP", 500)
    rng = np.random.default_rng(0)
    corner = rng.integers(0, 480, (3000, 2)).astype(float)
    save_annotation(tmp_path / "target" / "crowd.pt", Annotation(np.concatenate([corner, corner + 10], axis=1),
                                                                 ["cell"] * 3000, classes=["cell"]))
    write_image(tmp_path / "input" / "crowd.png", 512, 512)
    viewer = make_napari_viewer()
    viewer.open(tmp_path / "input" / "crowd.png", plugin=PLUGIN)
    viewer.reset_view()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Label boxes")
    assert "zoom in to edit" in widget.position.text()
    assert ("1", "cell", "3000", "3,000") in rows(widget)  # counts every box, not those in the layer
    box_window.camera(viewer).zoom = 12
    assert "boxes editable" in widget.position.text()
    assert ("1", "cell", "3000", "3,000") in rows(widget)
