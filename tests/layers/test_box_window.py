"""A crowded image in a real viewer: every box drawn by the display layer, only the boxes around the view
in the editable layer, the window following the camera, and edits in it saved with every other box.

The threshold is lowered to keep the test quick (20,000 boxes, windowed above 5,000 by default)."""

import numpy as np
import pytest

from napari_faster_rcnn.core.data.annotations import load_annotation, save_annotation
from napari_faster_rcnn.core.data.boxes import boxes_to_rectangles, rectangles_to_boxes
from napari_faster_rcnn.layers import box_window, conventions
from napari_faster_rcnn.layers.box_layers import layer_annotations
from napari_faster_rcnn.layers.labeling import labeling_session
from napari_faster_rcnn.layers.paging_registry import paging_model
from tests.conftest import crowded_annotation, write_image

PLUGIN = "napari-faster-rcnn"
NAMES = ["cell", "nucleus", "debris"]
MANY = 20000
SIZE = 1024


def crowded(count, seed=0):
    return crowded_annotation(count, SIZE, NAMES, seed)


@pytest.fixture
def small_window(monkeypatch):
    monkeypatch.setattr(conventions, "WINDOW_THRESHOLD", 1000)
    monkeypatch.setattr(conventions, "WINDOW_CAP", 800)


@pytest.fixture
def crowded_image(tmp_path):
    write_image(tmp_path / "input" / "crowd.png", SIZE, SIZE)
    save_annotation(tmp_path / "target" / "crowd.pt", crowded(MANY))
    return tmp_path / "input" / "crowd.png", tmp_path / "target" / "crowd.pt"


def as_rows(boxes, labels):
    """Boxes with their labels as a sorted list of tuples (order does not matter to a file's boxes)."""
    return sorted((tuple(float(v) for v in box), str(label)) for box, label in zip(boxes, labels))


def window_boxes(shapes):
    boxes, _ = rectangles_to_boxes(shapes.data) if shapes.nshapes else (np.zeros((0, 4)), None)
    return boxes


def zoom_to(viewer, center_yx, zoom):
    box_window.camera(viewer).center = tuple(center_yx)
    box_window.camera(viewer).zoom = zoom


def drawn_outline_pixels(display):
    """Which display pixels hold an outline (alpha > 0)."""
    return display.data[..., 3] > 0


def test_crowded_image_opens_as_display_and_window(make_napari_viewer, small_window, crowded_image):
    image_path, annotation_path = crowded_image
    expected = load_annotation(annotation_path)
    viewer = make_napari_viewer()
    viewer.open(image_path, plugin=PLUGIN)
    names = [layer.name for layer in viewer.layers]
    assert len(viewer.layers) == 3, names
    shapes = viewer.layers[-1]
    display = box_window.find_display(viewer, shapes)
    assert display is not None and display is viewer.layers[1]
    assert viewer.layers.selection.active is shapes
    model = paging_model(shapes)
    assert model is not None and model.windowed

    # the whole image in view: too many boxes to edit, none in the layer, all of them drawn
    viewer.reset_view()
    assert shapes.nshapes == 0
    assert "zoom in" in model.window_note
    # the display picture holds exactly the outlines of every box (brute force, box by box)
    reference = np.zeros(display.data.shape[:2], dtype=bool)
    for x0, y0, x1, y1 in np.floor(expected.boxes + 0.5).astype(int):
        reference[y0, x0:x1 + 1] = reference[y1, x0:x1 + 1] = True
        reference[y0:y1 + 1, x0] = reference[y0:y1 + 1, x1] = True
    np.testing.assert_array_equal(drawn_outline_pixels(display), reference)
    assert as_rows(*_all(layer_annotations(shapes))) == as_rows(expected.boxes, expected.labels)

    # zoomed in: the layer holds the boxes around the view, and the display the others
    zoom_to(viewer, (200, 300), 8)
    view = box_window.view_rect(viewer, shapes)
    held = window_boxes(shapes)
    assert 0 < shapes.nshapes <= conventions.WINDOW_CAP
    in_view = box_window.touching(expected.boxes, view)
    assert as_rows(expected.boxes[in_view], np.array(expected.labels)[in_view]) == sorted(
        row for row in as_rows(held, shapes.features["label"]) if box_window.touching(np.array([row[0]]), view)[0])
    rest = model.outside_window()
    assert sorted(as_rows(*_all([rest])) + as_rows(held, shapes.features["label"])) == as_rows(
        expected.boxes, expected.labels)
    assert not box_window.touching(rest.boxes, view).any()  # nothing in view is display-only
    # the display draws every box but in the window's region, which it leaves to the box layer
    region = model.window_region
    assert box_window.inside(view, region)
    x0, y0, x1, y1 = np.floor(region + 0.5).astype(int)
    outside = np.ones_like(reference)
    outside[y0:y1 + 1, x0:x1 + 1] = False
    np.testing.assert_array_equal(drawn_outline_pixels(display), reference & outside)

    # moving the camera moves the window
    before = as_rows(held, shapes.features["label"])
    zoom_to(viewer, (800, 700), 8)
    after = as_rows(window_boxes(shapes), shapes.features["label"])
    assert after != before and after
    view = box_window.view_rect(viewer, shapes)
    assert box_window.touching(expected.boxes, view).sum() == box_window.touching(window_boxes(shapes), view).sum()
    assert as_rows(*_all(layer_annotations(shapes))) == as_rows(expected.boxes, expected.labels)

    viewer.layers.remove(shapes)  # the display goes with its box layer
    assert [layer.name for layer in viewer.layers] == names[:1]


def _all(annotations):
    boxes = np.concatenate([a.boxes for a in annotations])
    labels = [label for a in annotations for label in a.labels]
    return boxes, labels


def test_edits_in_the_window_save_with_every_other_box(make_napari_viewer, small_window, crowded_image):
    image_path, annotation_path = crowded_image
    expected = load_annotation(annotation_path)
    viewer = make_napari_viewer()
    viewer.open(image_path, plugin=PLUGIN)
    shapes = viewer.layers[-1]
    session = labeling_session(viewer, shapes, autosave=False)
    zoom_to(viewer, (400, 400), 8)
    assert 0 < shapes.nshapes <= conventions.WINDOW_CAP
    assert sum(session.current_counts().values()) == MANY

    # delete one box, move another, add one (all in the window)
    boxes = window_boxes(shapes)
    labels = list(shapes.features["label"])
    deleted = (tuple(float(v) for v in boxes[0]), labels[0])
    moved_from = (tuple(float(v) for v in boxes[1]), labels[1])
    data = list(shapes.data)
    data[1] = data[1] + np.array([2.0, 3.0])  # 2 px down, 3 px right
    shapes.data = data
    shapes.selected_data = {0}
    shapes.remove_selected()
    shapes.feature_defaults = {"label": "debris"}
    shapes.add_rectangles(boxes_to_rectangles(np.array([[400.0, 401.0, 410.0, 412.0]])))
    assert sum(session.current_counts().values()) == MANY

    # the camera moves on (the window with it), and the edits stay
    zoom_to(viewer, (900, 100), 8)
    report = session.save()
    assert report.written
    saved = load_annotation(annotation_path)
    rows = as_rows(expected.boxes, expected.labels)
    rows.remove(deleted)
    rows.remove(moved_from)
    x0, y0, x1, y1 = moved_from[0]
    rows += [((x0 + 3, y0 + 2, x1 + 3, y1 + 2), moved_from[1]), ((400.0, 401.0, 410.0, 412.0), "debris")]
    assert as_rows(saved.boxes, saved.labels) == sorted(rows)
    assert as_rows(*_all(layer_annotations(shapes))) == sorted(rows)


def test_small_images_stay_as_they_are(make_napari_viewer, small_window, tmp_path):
    write_image(tmp_path / "input" / "few.png", SIZE, SIZE)
    save_annotation(tmp_path / "target" / "few.pt", crowded(500))
    viewer = make_napari_viewer()
    viewer.open(tmp_path / "input" / "few.png", plugin=PLUGIN)
    assert len(viewer.layers) == 2 and viewer.layers[-1].nshapes == 500
    assert paging_model(viewer.layers[-1]) is None


def test_outlines_are_drawn_where_the_edges_are():
    picture = box_window.draw_outlines(np.array([[1.0, 2.0, 5.0, 4.0]]), np.array([[1.0, 0, 0, 1]]), (8, 8), 1.0)
    expected = np.zeros((8, 8), dtype=bool)
    expected[2, 1:6] = expected[4, 1:6] = True
    expected[2:5, 1] = expected[2:5, 5] = True
    np.testing.assert_array_equal(picture[..., 3] > 0, expected)
    assert (picture[expected] == [255, 0, 0, 255]).all()
    # a coarser picture of a large image
    assert box_window.draw_outlines(np.zeros((0, 4)), np.zeros((0, 4)), (10000, 5000), 0.4096).shape == (4096, 2048, 4)


def test_a_folder_with_a_crowded_image_pages_it_through_a_window(make_napari_viewer, small_window, tmp_path):
    counts = [3000, 10, 12]
    originals = []
    for index, count in enumerate(counts):
        write_image(tmp_path / "input" / f"img_{index}.png", SIZE, SIZE)
        originals.append(crowded(count, seed=index))
        save_annotation(tmp_path / "target" / f"img_{index}.pt", originals[-1])
    viewer = make_napari_viewer()
    viewer.open(tmp_path, plugin=PLUGIN)
    shapes = viewer.layers[-1]
    viewer.dims.set_current_step(0, 0)
    viewer.reset_view()
    model = paging_model(shapes)
    assert model is not None and model.windowed and shapes.nshapes == 0
    display = box_window.find_display(viewer, shapes)
    assert display is not None and display.visible
    for annotation, held in zip(originals, layer_annotations(shapes)):
        assert as_rows(held.boxes, held.labels) == as_rows(annotation.boxes, annotation.labels)

    viewer.dims.set_current_step(0, 2)  # a small image: all its boxes in the layer, no display
    assert not model.windowed and shapes.nshapes == 12 and not display.visible
    assert as_rows(*rectangles_to_boxes(shapes.data)[:1], shapes.features["label"]) == as_rows(
        originals[2].boxes, originals[2].labels)

    session = labeling_session(viewer, shapes, autosave=False)
    viewer.dims.set_current_step(0, 0)
    zoom_to(viewer, (300, 300), 8)
    assert session.windowed and 0 < shapes.nshapes <= conventions.WINDOW_CAP
    shapes.selected_data = {0}
    removed = (tuple(float(v) for v in window_boxes(shapes)[0]), shapes.features["label"][0])
    shapes.remove_selected()
    session.save()
    rows = as_rows(originals[0].boxes, originals[0].labels)
    rows.remove(removed)
    saved = load_annotation(tmp_path / "target" / "img_0.pt")
    assert as_rows(saved.boxes, saved.labels) == rows
    assert len(box_window.find_display(viewer, shapes).data)  # one display layer, still there
    assert sum(1 for layer in viewer.layers if layer.metadata.get(conventions.BOX_DISPLAY)) == 1
    viewer.layers.remove(shapes)  # with a labeling session on it: the display goes too
    assert not any(layer.metadata.get(conventions.BOX_DISPLAY) for layer in viewer.layers)
