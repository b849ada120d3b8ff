"""The labeling session in a real viewer: classes, keys, autosave, files changed on disk, closing."""

import numpy as np
import pytest

from napari_faster_rcnn.core.data.annotations import Annotation, load_annotation, save_annotation
from napari_faster_rcnn.core.data.boxes import boxes_to_rectangles, rectangles_to_boxes
from napari_faster_rcnn.layers import box_colors, conventions
from napari_faster_rcnn.layers.box_layers import new_box_layer
from napari_faster_rcnn.layers.label_saving import DISCARD, SAVE
from napari_faster_rcnn.layers.labeling import labeling_session
from tests.conftest import write_image

PLUGIN = "napari-faster-rcnn"


def press(viewer, key):
    """A key press as napari dispatches it: the active layer's bindings, then the viewer's."""
    return viewer.window._qt_viewer._key_map_handler.press_key(key)


def draw(session, box):
    """A rectangle added to the image on screen through the layer API, as the mouse adds one."""
    index = session.current if session.layer.ndim >= 3 else None
    session.layer.add_rectangles(boxes_to_rectangles(np.array([box], dtype=float), image_index=index))


@pytest.fixture
def labeled(make_napari_viewer, tutorial_dataset):
    viewer = make_napari_viewer()
    viewer.open(tutorial_dataset, plugin=PLUGIN)
    image, boxes = viewer.layers
    viewer.dims.set_current_step(0, 0)  # napari opens a stack at its middle image
    session = labeling_session(viewer, boxes)
    return viewer, session, tutorial_dataset / "target"


def saved(target, index):
    return load_annotation(target / f"{index:03d}.pt")


def test_a_new_rectangle_gets_the_current_class_and_its_colour(labeled):
    viewer, session, _ = labeled
    assert session.classes == ["circle", "square", "triangle"] and session.current_class == "circle"
    assert press(viewer, "2") and session.current_class == "square"
    draw(session, [3, 4, 13, 14])
    assert session.layer.features["label"].iloc[-1] == "square"
    square = box_colors.hex_to_rgba(session.layer.metadata[conventions.CLASS_COLORS]["square"])
    np.testing.assert_allclose(session.layer.edge_color[-1], square)
    # selecting a box of another class makes napari take its colour; the next box keeps the class colour
    circles = np.flatnonzero(session.layer.features["label"] == "circle")
    session.layer.selected_data = {int(circles[0])}
    session.layer.selected_data = set()
    draw(session, [20, 20, 30, 30])
    np.testing.assert_allclose(session.layer.edge_color[-1], square)
    assert session.current_counts()["square"] == session.store.counts(0)["square"] + 2


def test_digit_keys_pick_classes_instead_of_napari_shapes_modes(labeled):
    viewer, session, _ = labeled
    layer = session.layer
    layer.selected_data = {0}
    before = layer.nshapes
    press(viewer, "3")  # napari's Shapes layer deletes the selection on 3
    assert layer.nshapes == before and session.current_class == "triangle"
    press(viewer, "5")  # a class that does not exist: nothing, and no mode change either
    assert session.current_class == "triangle" and layer.mode != "select"
    press(viewer, "r")  # the letters still choose napari's modes
    assert layer.mode == "add_rectangle"
    viewer.layers.selection.active = session.image_layer  # the keys work on the image layer too
    press(viewer, "1")
    assert session.current_class == "circle"


def test_n_and_b_walk_the_stack_and_save_the_image_left(labeled):
    viewer, session, target = labeled
    untouched = (target / "001.pt").stat().st_mtime_ns
    before = len(saved(target, 0))
    session.class_for_key(3)
    draw(session, [3, 4, 13, 14])
    assert press(viewer, "n")
    assert session.current == 1 and viewer.dims.current_step[0] == 1
    leaving = saved(target, 0)
    assert len(leaving) == before + 1 and leaving.labels[-1] == "triangle"
    np.testing.assert_allclose(leaving.boxes[-1], [3, 4, 13, 14], atol=1e-4)
    assert leaving.classes == ["circle", "square", "triangle"]
    press(viewer, "n")
    assert (target / "001.pt").stat().st_mtime_ns == untouched  # not edited: not written
    press(viewer, "b")
    press(viewer, "b")
    assert session.current == 0 and len(session.layer.data) == before + 1
    press(viewer, "b")  # the first image: stays
    assert session.current == 0 and not session.store.dirty


def test_without_autosave_leaving_keeps_the_edits_until_save(labeled):
    viewer, session, target = labeled
    session.autosave = False
    before = saved(target, 0)
    draw(session, [3, 4, 13, 14])
    session.next_image()
    assert saved(target, 0) == before and session.unsaved() == [0]
    report = session.save()
    assert report.written == [target / "000.pt"] and len(saved(target, 0)) == len(before) + 1


def test_a_file_another_program_changed_is_not_overwritten_on_no(labeled):
    viewer, session, target = labeled
    asked = []
    session.confirm_overwrite = lambda paths: asked.append(paths) or False
    draw(session, [3, 4, 13, 14])
    theirs = Annotation([[1, 1, 9, 9]], ["square"])
    save_annotation(target / "000.pt", theirs)  # another program, while image 0 is being edited
    press(viewer, "n")
    assert asked == [[target / "000.pt"]]
    assert saved(target, 0) == theirs and session.unsaved() == [0]
    session.confirm_overwrite = lambda paths: True
    session.save()
    assert len(saved(target, 0)) == len(session.annotations[0]) and session.unsaved() == []


def test_an_image_without_edits_changed_on_disk_shows_the_new_file(labeled):
    viewer, session, target = labeled
    save_annotation(target / "003.pt", Annotation([[5, 5, 25, 25], [1, 1, 4, 4]], ["star", "star"]))
    session.go_to(3)
    boxes, _ = rectangles_to_boxes(session.layer.data)
    np.testing.assert_allclose(boxes, [[5, 5, 25, 25], [1, 1, 4, 4]], atol=1e-4)
    assert "star" in session.classes and session.total_counts()["star"] == 2
    assert session.unsaved() == []


@pytest.mark.parametrize("autosave", [True, False])
def test_removing_the_layer_with_unsaved_edits_saves_or_asks(labeled, autosave):
    viewer, session, target = labeled
    session.autosave = autosave
    asked = []
    session.ask_unsaved = lambda count, can_cancel: asked.append((count, can_cancel)) or SAVE
    draw(session, [3, 4, 13, 14])
    expected = len(session.layer.data)
    viewer.layers.remove(session.layer)
    assert asked == ([] if autosave else [(1, False)])  # a removal cannot be cancelled
    assert len(saved(target, 0)) == expected and session.closed


def test_removing_the_layer_and_discarding_leaves_the_files(labeled):
    viewer, session, target = labeled
    session.autosave = False
    session.ask_unsaved = lambda count, can_cancel: DISCARD
    before = saved(target, 0)
    draw(session, [3, 4, 13, 14])
    viewer.layers.remove(session.layer)
    assert saved(target, 0) == before


def test_napari_save_goes_through_the_session_and_saves_every_image(labeled):
    viewer, session, target = labeled
    asked = []
    session.confirm_overwrite = lambda paths: asked.append(paths) or False
    draw(session, [3, 4, 13, 14])
    session.go_to(4)
    session.layer.selected_data = set(range(session.layer.nshapes))
    session.layer.remove_selected()  # unsaved, on screen
    theirs = Annotation([[1, 1, 9, 9]], ["square"])
    save_annotation(target / "002.pt", theirs)  # changed on disk, no edits here: read again, kept
    viewer.layers.selection = {session.layer}
    written = viewer.layers.save(str(target / "x.pt"), selected=True, plugin=PLUGIN)
    assert asked == []
    assert sorted(written) == [str(target / f"{i:03d}.pt") for i in (0, 1, 3, 4, 5)]
    assert len(saved(target, 4)) == 0 and saved(target, 2) == theirs
    assert session.annotations[2].labels == ["square"] and session.unsaved() == []


def test_rename_recolour_and_remove_classes(labeled):
    viewer, session, target = labeled
    counts = session.total_counts()
    session.rename_class("circle", "disc")
    assert session.classes == ["disc", "square", "triangle"] and session.current_class == "disc"
    assert session.total_counts()["disc"] == counts["circle"]
    for index in range(6):  # every file follows (autosave)
        annotation = saved(target, index)
        assert annotation.classes == ["disc", "square", "triangle"] and "circle" not in annotation.labels
    session.recolor_class("square", "#ff00ff")
    squares = np.flatnonzero(session.layer.features["label"] == "square")
    np.testing.assert_allclose(session.layer.edge_color[squares], [[1, 0, 1, 1]] * len(squares))
    assert session.layer.metadata[conventions.CLASS_COLORS]["square"] == "#ff00ff"
    asked = []
    session.confirm_remove_class = lambda name, count: asked.append((name, count)) or False
    assert not session.remove_class("triangle")
    assert asked == [("triangle", counts["triangle"])] and "triangle" in session.classes
    session.confirm_remove_class = lambda name, count: True
    assert session.remove_class("triangle")
    assert "triangle" not in session.classes and "triangle" not in set(session.layer.features["label"])
    assert all("triangle" not in saved(target, i).labels + saved(target, i).classes for i in range(6))
    session.add_class("star")
    assert session.remove_class("star")  # no boxes: removed without asking
    assert session.classes == ["disc", "square"]


def test_selected_boxes_move_to_another_class(labeled):
    viewer, session, target = labeled
    session.layer.selected_data = {0, 1}
    assert session.move_selected_to_class("triangle") == 2
    assert list(session.layer.features["label"][:2]) == ["triangle", "triangle"]
    triangle = box_colors.hex_to_rgba(session.layer.metadata[conventions.CLASS_COLORS]["triangle"])
    np.testing.assert_allclose(session.layer.edge_color[:2], [triangle, triangle])
    session.next_image()
    assert saved(target, 0).labels[:2] == ["triangle", "triangle"]


def test_resuming_is_opening_the_folder_again(labeled):
    viewer, session, target = labeled
    session.add_class("star")
    draw(session, [3, 4, 13, 14])
    session.next_image()
    session.layer.selected_data = set(range(session.layer.nshapes))
    session.layer.remove_selected()
    expected = session.all_annotations()
    viewer.layers.clear()  # saves on the way out (autosave)
    viewer.open(target.parent, plugin=PLUGIN)
    again = labeling_session(viewer, viewer.layers[1])
    assert again.classes == ["circle", "square", "triangle", "star"]
    assert again.unlabeled() == [1]
    for before, after in zip(expected, again.all_annotations()):
        np.testing.assert_allclose(after.boxes, before.boxes, atol=1e-4)
        assert after.labels == before.labels


def test_counts_and_unlabeled_images_follow_the_edits(labeled):
    viewer, session, _ = labeled
    total = sum(session.total_counts().values())
    session.layer.selected_data = set(range(session.layer.nshapes))
    removed = session.layer.nshapes
    session.layer.remove_selected()
    assert session.unlabeled() == [0] and sum(session.total_counts().values()) == total - removed
    session.next_image()
    assert session.next_unlabeled() == 0 and session.current == 0


def test_a_new_box_layer_for_any_image_layer(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    stack = viewer.add_image(np.zeros((3, 30, 40), np.uint8))  # not from a file: saved with File > Save
    layer = new_box_layer(viewer, stack)
    session = labeling_session(viewer, layer)
    assert layer.ndim == 3 and len(session) == 3 and session.image_layer is stack
    assert session.store.files == [None, None, None]
    session.add_class("cell")
    draw(session, [1, 1, 5, 5])
    assert session.save().without_file == [session.current]

    write_image(tmp_path / "input" / "a.png", 40, 50)  # napari takes 30 px or less as no colour
    save_annotation(tmp_path / "target" / "a.pt", Annotation([[2, 2, 9, 9]], ["cell"]))
    write_image(tmp_path / "b.png", 40, 50)
    viewer.open(tmp_path / "input" / "a.png", plugin="napari")  # napari's own reader: no metadata of ours
    viewer.open(tmp_path / "b.png", plugin="napari")
    a, b = viewer.layers[-2:]
    existing = labeling_session(viewer, new_box_layer(viewer, a))
    assert existing.annotations[0].labels == ["cell"]  # what was there is loaded, not overwritten
    fresh = labeling_session(viewer, new_box_layer(viewer, b))
    fresh.add_class("dot")
    draw(fresh, [3, 3, 8, 8])
    fresh.save()
    assert load_annotation(tmp_path / "b.pt").labels == ["dot"]


def test_class_colours_read_on_light_and_dark_images():
    for position in range(60):
        color = box_colors.class_color(position)
        assert box_colors.contrast_ratio(color, "#ffffff") >= 3 and box_colors.contrast_ratio(color, "#000000") >= 3, color
    assert len({box_colors.class_color(p) for p in range(60)}) == 60


def test_one_image_opened_with_the_reader(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    write_image(tmp_path / "photo.png", 40, 50)
    viewer.open(tmp_path / "photo.png", plugin=PLUGIN)
    session = labeling_session(viewer, viewer.layers[1])
    assert len(session) == 1 and session.layer.ndim == 2 and session.image_layer is viewer.layers[0]
    session.add_class("face")
    draw(session, [5, 5, 20, 30])
    press(viewer, "n")  # a single image: nowhere to go, nothing lost
    assert session.current == 0 and session.layer.nshapes == 1
    viewer.layers.selection = {session.layer}
    assert viewer.layers.save(str(tmp_path / "photo.pt"), selected=True, plugin=PLUGIN) == [str(tmp_path / "photo.pt")]
    assert load_annotation(tmp_path / "photo.pt") == Annotation([[5, 5, 20, 30]], ["face"], classes=["face"])
    assert session.unsaved() == []


def test_accepted_predictions_count_and_are_saved(make_napari_viewer, tutorial_dataset):
    from napari_faster_rcnn.layers.prediction_labels import accept_as_labels
    from tests.predictions_data import write_predictions

    viewer = make_napari_viewer()
    write_predictions(tutorial_dataset)
    viewer.open(tutorial_dataset, plugin=PLUGIN)
    session = labeling_session(viewer, viewer.layers[1])
    viewer.open(tutorial_dataset / "predictions", plugin=PLUGIN)
    before = sum(session.total_counts().values())
    added = accept_as_labels(viewer.layers[-1], session.layer)  # every image, through the session's model
    assert added > 0 and sum(session.total_counts().values()) == before + added
    assert len(session.unsaved()) > 1
    session.save()
    total = sum(len(load_annotation(tutorial_dataset / "target" / f"{i:03d}.pt")) for i in range(6))
    assert total == before + added
