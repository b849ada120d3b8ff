"""Many boxes on one image in a real viewer: the right boxes open, save back identical, and the labels
that napari cannot lay out fast are switched off (the timing is in benchmarks/bench_many_boxes.py)."""

import numpy as np
import pytest

from napari_faster_rcnn.core.data.annotations import load_annotation, save_annotation
from napari_faster_rcnn.core.data.boxes import boxes_to_rectangles, rectangles_to_boxes
from napari_faster_rcnn.layers import box_colors, conventions, page_boxes, slice_view, window_paging
from napari_faster_rcnn.layers.labeling import labeling_session
from tests.conftest import crowded_annotation, write_image

PLUGIN = "napari-faster-rcnn"
NAMES = ["cell", "nucleus", "debris"]
MANY = 5000
SIZE = 512


def crowded(count, seed=0):
    return crowded_annotation(count, SIZE, NAMES, seed)


@pytest.fixture
def crowded_image(tmp_path):
    write_image(tmp_path / "input" / "crowd.png", SIZE, SIZE)
    save_annotation(tmp_path / "target" / "crowd.pt", crowded(MANY))
    return tmp_path / "input" / "crowd.png", tmp_path / "target" / "crowd.pt"


def test_many_boxes_open_right_and_save_back_identical(make_napari_viewer, crowded_image, tmp_path):
    image_path, annotation_path = crowded_image
    expected = load_annotation(annotation_path)
    viewer = make_napari_viewer()
    viewer.open(image_path, plugin=PLUGIN)
    image, shapes = viewer.layers
    boxes, index = rectangles_to_boxes(shapes.data)
    assert index is None
    np.testing.assert_array_equal(boxes, expected.boxes)
    assert list(shapes.features["label"]) == expected.labels
    colors = shapes.metadata[conventions.CLASS_COLORS]
    np.testing.assert_allclose(shapes.edge_color, box_colors.edge_colors(expected.labels, colors))
    # 5,000 labels would take napari seconds to lay out (and cannot be read): they are off
    assert not shapes.text.visible

    viewer.layers.selection = {shapes}
    viewer.layers.save(str(tmp_path / "copy.pt"), selected=True, plugin=PLUGIN)
    copy = load_annotation(tmp_path / "copy.pt")
    np.testing.assert_array_equal(copy.boxes, expected.boxes)
    assert copy.labels == expected.labels

    # labeling them: the session takes the layer as it is; an added box saves with the others unchanged
    session = labeling_session(viewer, shapes)
    assert shapes.nshapes == MANY
    shapes.feature_defaults = {"label": "debris"}
    shapes.add_rectangles(boxes_to_rectangles(np.array([[1.0, 2.0, 11.0, 12.0]])))
    session.save()
    saved = load_annotation(annotation_path)
    np.testing.assert_array_equal(saved.boxes, np.concatenate([expected.boxes, [[1, 2, 11, 12]]]))
    assert saved.labels == expected.labels + ["debris"]


def test_a_session_on_a_layer_that_shows_its_boxes_does_not_rebuild_it(make_napari_viewer, crowded_image,
                                                                        monkeypatch):
    image_path, annotation_path = crowded_image
    viewer = make_napari_viewer()
    viewer.open(image_path, plugin=PLUGIN)
    shapes = viewer.layers[1]
    replaced = []
    original = page_boxes.show_boxes
    for module in (slice_view, window_paging):  # where the session looks it up (an ordinary page, a window)
        monkeypatch.setattr(module, "show_boxes", lambda *args: (replaced.append(args), original(*args)))
    session = labeling_session(viewer, shapes)
    assert replaced == []  # replacing 100,000 boxes by themselves took napari 8 s
    assert session.current == 0 and shapes.nshapes == MANY
    # a layer that differs from its model is replaced
    shapes.selected_data = {0}
    shapes.remove_selected()
    session.refresh()
    assert len(replaced) == 1 and shapes.nshapes == MANY  # the model's boxes (the edit was not committed)


def test_labels_follow_the_count_of_boxes_on_the_page(make_napari_viewer, tmp_path):
    for index, annotation in enumerate([crowded(MANY, seed=1), crowded(10, seed=2), crowded(20, seed=3)]):
        write_image(tmp_path / "input" / f"{index}.png", SIZE, SIZE, seed=index)
        save_annotation(tmp_path / "target" / f"{index}.pt", annotation)
    viewer = make_napari_viewer()
    viewer.open(tmp_path, plugin=PLUGIN)
    shapes = viewer.layers[1]
    assert not shapes.text.visible  # 5,030 boxes in one layer
    viewer.dims.set_current_step(0, 1)
    session = labeling_session(viewer, shapes)
    assert shapes.nshapes == 10 and shapes.text.visible  # a page of 10 boxes shows its labels
    session.go_to(0)
    assert shapes.nshapes == MANY and not shapes.text.visible
    np.testing.assert_array_equal(rectangles_to_boxes(shapes.data)[0], load_annotation(tmp_path / "target" / "0.pt").boxes)
    session.go_to(2)
    assert shapes.nshapes == 20 and shapes.text.visible
    shapes.text.visible = False  # a person switched them off: paging leaves them off
    session.go_to(0)
    session.go_to(1)
    assert not shapes.text.visible


def test_labels_a_person_switches_on_over_the_limit_stay_on_while_paging(make_napari_viewer, tmp_path, monkeypatch):
    monkeypatch.setattr(conventions, "TEXT_LIMIT", 15)  # pages of 30 and 40 boxes are over it, 10 under
    for index, count in enumerate([30, 40, 10, 30]):
        write_image(tmp_path / "input" / f"{index}.png", SIZE, SIZE, seed=index)
        save_annotation(tmp_path / "target" / f"{index}.pt", crowded(count, seed=index))
    viewer = make_napari_viewer()
    viewer.open(tmp_path, plugin=PLUGIN)
    viewer.dims.set_current_step(0, 0)
    session = labeling_session(viewer, viewer.layers[1])
    shapes = viewer.layers[1]
    assert shapes.nshapes == 30 and not shapes.text.visible
    session.go_to(1)
    assert shapes.nshapes == 40 and not shapes.text.visible  # the count keeps them off
    shapes.text.visible = True  # a person wants them
    session.go_to(0)
    drawn = viewer.window._qt_viewer.canvas.layer_to_visual[shapes].node.text.text
    assert shapes.nshapes == 30 and shapes.text.visible and len(drawn) == 30
    session.go_to(2)
    assert shapes.nshapes == 10 and shapes.text.visible
    session.go_to(3)  # back over the limit after a small page: the count decides again
    assert shapes.nshapes == 30 and not shapes.text.visible


def test_text_fits_the_square_of_the_limit():
    assert conventions.text_fits(conventions.TEXT_LIMIT)
    assert not conventions.text_fits(conventions.TEXT_LIMIT + 1)
    limit = conventions.TEXT_LIMIT  # a page of a few boxes in a layer of very many: the product counts
    assert conventions.text_fits(limit // 50, 20 * limit) and not conventions.text_fits(limit // 5, 20 * limit)
