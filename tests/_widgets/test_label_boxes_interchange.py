"""Import… and Export… of the "Label boxes" widget, driven in a real viewer: COCO, VOC, YOLO and
our folders go out with the edits on screen, and come in as a new folder that is labeled at once."""

from pathlib import Path

import numpy as np
import pytest

from napari_faster_rcnn.core.data.annotations import Annotation, load_annotation
from napari_faster_rcnn.core.data.boxes import boxes_to_rectangles, rectangles_to_boxes
from napari_faster_rcnn.core.formats import LabeledDataset, LabeledItem, read_dataset, write_dataset
from napari_faster_rcnn.layers import conventions
from tests.conftest import write_image

PLUGIN = "napari-faster-rcnn"


def dock(viewer):
    """The widget as the menu docks it, its questions answered without a modal dialog."""
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Label boxes")
    widget.confirm_overwrite = lambda paths: False
    widget.confirm_remove_class = lambda name, count: False
    widget.ask_unsaved = lambda count, can_cancel: "discard"
    return widget


@pytest.fixture
def docked(make_napari_viewer, tutorial_dataset):
    viewer = make_napari_viewer()
    viewer.open(tutorial_dataset, plugin=PLUGIN)
    viewer.dims.set_current_step(0, 0)
    return viewer, dock(viewer), tutorial_dataset


def wait(qtbot, widget):
    qtbot.waitUntil(lambda: widget.interchange.worker is None, timeout=60_000)


def files_of(folder: Path) -> dict:
    """Every file under ``folder`` with its bytes: what "left unchanged" compares."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def edit_without_saving(viewer, widget):
    """Autosave off; on image 1 every box deleted (then left), on image 0 a box moved and one
    drawn, still on screen; a class without boxes added. Returns the session's annotations by name."""
    widget.autosave.setChecked(False)
    session, layer = widget.session, viewer.layers[1]
    widget.next_button.click()
    layer.selected_data = set(range(layer.nshapes))
    layer.remove_selected()
    widget.previous_button.click()
    moved = layer.data[0].copy()
    moved[:, 1:] += [1.25, 2.5]  # (row, column) of a stack's rectangle, after the image index
    layer.data = [moved, *layer.data[1:]]
    widget.class_name.setText("star")
    widget.add_button.click()
    layer.add_rectangles(boxes_to_rectangles(np.array([[3.5, 4.0, 13.0, 14.25]]), image_index=0))
    widget.class_name.setText("unused")
    widget.add_button.click()
    return {session.image_name(i): a for i, a in enumerate(session.all_annotations())}


@pytest.mark.parametrize("fmt", ["coco", "voc", "yolo", "pt"])
def test_export_writes_every_image_with_the_edits_on_screen(docked, qtbot, tmp_path, fmt):
    viewer, widget, dataset = docked
    on_disk = files_of(dataset)
    expected = edit_without_saving(viewer, widget)
    assert len(expected["001.png"]) == 0 and expected["000.png"].labels[-1] == "star"
    classes = widget.session.classes
    assert classes[-2:] == ["star", "unused"]

    worker = widget.interchange.export_dataset(tmp_path / "out", fmt)
    wait(qtbot, widget)
    assert (worker.pbar.n, worker.pbar.total) == (6, 6)
    assert widget.status.text().startswith(f"exported 6 images, {sum(map(len, expected.values()))} boxes and "
                                           f"{len(classes)} classes")
    written = read_dataset(tmp_path / "out", fmt)
    assert written.classes == classes  # in order, "unused" too
    by_name = {item.name: item for item in written.items}
    assert sorted(by_name) == sorted(expected)  # the image without boxes too
    for name, annotation in expected.items():
        np.testing.assert_allclose(by_name[name].annotation.boxes, annotation.boxes, rtol=0, atol=1e-3)
        assert by_name[name].annotation.labels == annotation.labels
        assert by_name[name].size == (64, 80)
    assert files_of(dataset) == on_disk  # exporting saved nothing, changed nothing
    assert widget.save_button.text() == "Save (6 unsaved)"  # still to save (new classes go into every file)


def test_export_into_a_folder_that_holds_anything_is_refused(docked, qtbot, tmp_path):
    viewer, widget, dataset = docked
    target = tmp_path / "out"
    target.mkdir()
    (target / "mine.txt").write_text("keep me")
    widget.interchange.export_dataset(target, "coco")
    wait(qtbot, widget)
    status = widget.status.text()
    assert status.startswith("Export refused, nothing was written:") and "not empty" in status
    assert files_of(target) == {"mine.txt": b"keep me"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "shapes"]  # no half-written folder beside it
    assert widget.interchange.export_button.isEnabled()  # and the widget can go on


def test_a_single_image_exports_as_one_item(make_napari_viewer, qtbot, tmp_path, tutorial_dataset):
    viewer = make_napari_viewer()
    viewer.open(tutorial_dataset / "input" / "002.png", plugin=PLUGIN)
    widget = dock(viewer)
    widget.interchange.export_dataset(tmp_path / "one", "yolo")
    wait(qtbot, widget)
    written = read_dataset(tmp_path / "one")
    truth = load_annotation(tutorial_dataset / "target" / "002.pt")
    assert [item.name for item in written.items] == ["002.png"]
    np.testing.assert_allclose(written.items[0].annotation.boxes, truth.boxes, atol=1e-3)
    assert written.items[0].annotation.labels == truth.labels


def test_images_that_are_no_files_cannot_be_exported_and_it_says_why(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((2, 40, 50), np.uint8), name="cells")
    widget = dock(viewer)
    widget.start_new_layer()
    assert widget.interchange.export_dataset(tmp_path / "out", "coco") is None
    assert "'cells boxes': its images are not files on disk" in widget.status.text()
    assert not (tmp_path / "out").exists()


def hand_made(folder: Path) -> tuple[list[str], dict[str, Annotation], dict[str, tuple[int, int]]]:
    """Three images and boxes typed in by hand (fractional, one image without boxes, one class unused)."""
    classes = ["head", "hand", "hat"]
    boxes = {
        "a.png": Annotation([[1.5, 2.0, 30.25, 20.0], [10.0, 12.5, 59.0, 39.75]], ["head", "hand"]),
        "b.jpg": Annotation([[0.0, 0.0, 29.5, 49.5]], ["hand"]),
        "c.png": Annotation(),
    }
    sizes = {"a.png": (40, 60), "b.jpg": (50, 30), "c.png": (20, 20)}
    for seed, name in enumerate(boxes):
        write_image(folder / name, *sizes[name], seed=seed)
    return classes, boxes, sizes


def foreign_folder(tmp_path: Path, fmt: str) -> tuple[Path, list[str], dict]:
    classes, boxes, sizes = hand_made(tmp_path / "typed")
    items = [LabeledItem(tmp_path / "typed" / name, sizes[name], annotation, name)
             for name, annotation in boxes.items()]
    folder = tmp_path / f"from_{fmt}"
    write_dataset(LabeledDataset(root=None, format="pt", classes=classes, items=items), folder, fmt, link_images=False)
    return folder, classes, boxes


def assert_labeling(widget, classes, boxes):
    session = widget.session
    assert session.classes == classes
    got = {session.image_name(i): a for i, a in enumerate(session.all_annotations())}
    assert set(got) == set(boxes)
    for name, annotation in boxes.items():
        np.testing.assert_allclose(got[name].boxes, annotation.boxes, rtol=0, atol=1e-3)
        assert got[name].labels == annotation.labels


@pytest.mark.parametrize("fmt", ["coco", "yolo", "voc"])
def test_import_converts_into_a_new_folder_and_labels_it(make_napari_viewer, qtbot, tmp_path, fmt):
    source, classes, boxes = foreign_folder(tmp_path, fmt)
    before = files_of(source)
    viewer = make_napari_viewer()
    widget = dock(viewer)
    worker = widget.interchange.import_dataset(source)
    assert not widget.interchange.import_button.isEnabled()  # one at a time
    wait(qtbot, widget)
    assert (worker.pbar.n, worker.pbar.total) == (3, 3)
    destination = tmp_path / f"from_{fmt}_pt"
    layer = widget.boxes.layer()
    assert layer is viewer.layers[-1] and layer.name == f"from_{fmt}_pt boxes" and widget.session.layer is layer
    assert [type(layer).__name__ for layer in viewer.layers] == ["Image", "Shapes"]
    assert layer.metadata[conventions.DATASET_ROOT] == str(destination)
    assert widget.status.text().startswith(f"imported 3 images, 3 boxes and 3 classes from from_{fmt}")
    assert_labeling(widget, classes, boxes)

    # labeling it writes our files into the new folder; the folder imported from stays as it was
    widget.session.layer.add_rectangles(boxes_to_rectangles(np.array([[2.0, 3.0, 9.0, 8.0]]), image_index=0))
    widget.next_button.click()
    assert len(load_annotation(destination / "target" / "a.pt")) == 3
    assert files_of(source) == before


def test_import_reports_skipped_files_and_notes(make_napari_viewer, qtbot, tmp_path):
    source, classes, boxes = foreign_folder(tmp_path, "yolo")
    (source / "labels" / "b.txt").write_text("0 0.5 0.5 not-a-number 0.1\n")
    viewer = make_napari_viewer()
    widget = dock(viewer)
    widget.interchange.import_dataset(source)
    wait(qtbot, widget)
    status = widget.status.text()
    assert "skipped 1 (hover for the list): b.txt" in status
    assert "b.txt" in widget.status.toolTip()  # the whole summary
    assert "b.jpg" not in [widget.session.image_name(i) for i in range(len(widget.session))]


def test_a_folder_opened_read_only_is_imported_from_the_button(make_napari_viewer, qtbot, tmp_path):
    source, classes, boxes = foreign_folder(tmp_path, "coco")
    before = files_of(source)
    viewer = make_napari_viewer()
    viewer.open(source, plugin=PLUGIN)  # the reader shows a COCO folder read-only
    read_only = viewer.layers[-1]
    assert read_only.name == "from_coco boxes (COCO JSON, read-only)"
    assert read_only.metadata[conventions.ANNOTATION_FILES] == [None] * 3 and read_only.metadata[conventions.SOURCE_FORMAT] == "coco"
    widget = dock(viewer)
    assert widget.status.text().startswith("read-only COCO JSON folder")
    assert_labeling(widget, classes, boxes)
    viewer.dims.set_current_step(0, 0)
    read_only.add_rectangles(boxes_to_rectangles(np.array([[2.0, 3.0, 9.0, 8.0]]), image_index=0))
    widget.next_button.click()
    widget.save_button.click()
    assert files_of(source) == before  # nothing saved into the other tool's files

    asked = []
    widget.interchange.ask_import_source = lambda: asked.append("source") or source
    widget.interchange.ask_import_destination = lambda src, default: asked.append(default) or default
    widget.interchange.import_button.click()
    wait(qtbot, widget)
    assert asked == ["source", tmp_path / "from_coco_pt"]
    assert widget.session.layer is viewer.layers[-1] and viewer.layers[-1].name == "from_coco_pt boxes"
    assert_labeling(widget, classes, boxes)  # as the files say: the edit on the read-only layer is not in them
    assert files_of(source) == before


def test_the_export_menu_asks_for_a_folder(docked, qtbot, tmp_path):
    viewer, widget, dataset = docked
    menu = widget.interchange.export_menu
    assert [action.text() for action in menu.actions()] == [
        "COCO JSON", "Pascal VOC XML", "YOLO txt", "input/ + target/*.pt"]
    widget.interchange.ask_export_folder = lambda fmt: tmp_path / f"as_{fmt}"
    menu.actions()[1].trigger()
    wait(qtbot, widget)
    assert len(read_dataset(tmp_path / "as_voc", "voc")) == 6


def test_a_folder_of_several_formats_asks_which(make_napari_viewer, qtbot, tmp_path):
    source, classes, boxes = foreign_folder(tmp_path, "voc")
    coco, _, _ = foreign_folder(tmp_path / "other", "coco")
    (source / "annotations.json").write_bytes((coco / "annotations" / "instances_default.json").read_bytes())
    viewer = make_napari_viewer()
    widget = dock(viewer)
    asked = []
    widget.interchange.choose_format = lambda folder, candidates: asked.append(candidates) or "voc"
    widget.interchange.import_dataset(source, tmp_path / "chosen")
    wait(qtbot, widget)
    assert asked == [["coco", "voc"]] and "(Pascal VOC XML)" in widget.status.text()
    assert_labeling(widget, classes, boxes)
    widget.interchange.choose_format = lambda folder, candidates: None  # cancelled: nothing happens
    assert widget.interchange.import_dataset(source, tmp_path / "cancelled") is None
    assert not (tmp_path / "cancelled").exists()


def test_import_writes_only_into_a_new_folder_and_opens_ours_as_they_are(make_napari_viewer, qtbot, tmp_path,
                                                                         tutorial_dataset):
    source, classes, boxes = foreign_folder(tmp_path, "coco")
    viewer = make_napari_viewer()
    widget = dock(viewer)
    assert widget.interchange.import_dataset(source, source / "inside") is None
    assert "lies inside" in widget.status.text() and not (source / "inside").exists()
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "mine.txt").write_text("keep me")
    widget.interchange.import_dataset(source, taken)
    wait(qtbot, widget)
    status = widget.status.text()
    assert status.startswith("Import refused, nothing was written:") and "not empty" in status
    assert files_of(taken) == {"mine.txt": b"keep me"} and len(viewer.layers) == 0
    assert widget.interchange.import_dataset(tutorial_dataset) is None  # ours: nothing to convert
    assert "already a napari-faster-rcnn dataset" in widget.status.text()
    assert widget.session.layer.metadata[conventions.DATASET_ROOT] == str(tutorial_dataset)
    assert not (tutorial_dataset.parent / "shapes_pt").exists()
    boxes_shown, _ = rectangles_to_boxes(widget.session.layer.data)
    assert len(boxes_shown) == len(load_annotation(tutorial_dataset / "target" / f"{widget.session.current:03d}.pt"))
