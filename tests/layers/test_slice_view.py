"""Paging a stack's boxes through one Shapes layer."""

import numpy as np

from napari_faster_rcnn.core.data.annotations import Annotation, load_annotation
from napari_faster_rcnn.core.data.boxes import boxes_to_rectangles, rectangles_to_boxes
from napari_faster_rcnn.layers import box_colors, conventions
from napari_faster_rcnn.layers.slice_view import SliceBoxes

PLUGIN = "napari-faster-rcnn"


def open_paged(viewer, folder, **options):
    viewer.open(folder, plugin=PLUGIN)
    image, shapes = viewer.layers
    annotations = conventions.annotations_from_shapes(shapes.data, shapes.features, shapes.metadata)
    return image, shapes, annotations, SliceBoxes(viewer, shapes, annotations, **options)


def test_layer_shows_only_the_current_image(make_napari_viewer, tutorial_dataset):
    viewer = make_napari_viewer()
    image, shapes, annotations, paged = open_paged(viewer, tutorial_dataset)
    for index in [0, 3, 5, 1]:
        viewer.dims.set_current_step(0, index)
        boxes, at = rectangles_to_boxes(shapes.data)
        expected = load_annotation(tutorial_dataset / "target" / f"{index:03d}.pt")
        np.testing.assert_allclose(boxes, expected.boxes, atol=1e-4)
        assert set(at.tolist()) <= {index}
        assert list(shapes.features["label"]) == expected.labels
        # colours follow the classes
        colors = shapes.metadata[conventions.CLASS_COLORS]
        np.testing.assert_allclose(shapes.edge_color, box_colors.edge_colors(expected.labels, colors))


def test_edits_are_kept_when_leaving_an_image(make_napari_viewer, tutorial_dataset):
    viewer = make_napari_viewer()
    left = []
    image, shapes, annotations, paged = open_paged(
        viewer, tutorial_dataset, on_leave=lambda index, changed: left.append((index, changed))
    )
    viewer.dims.set_current_step(0, 0)  # napari opens a stack at its middle image
    left.clear()
    viewer.dims.set_current_step(0, 2)
    before = len(paged.annotations[2])
    shapes.feature_defaults = {"label": "circle"}
    shapes.add_rectangles(boxes_to_rectangles(np.array([[3.0, 4.0, 13.0, 14.0]]), image_index=2))
    viewer.dims.set_current_step(0, 3)
    viewer.dims.set_current_step(0, 4)
    assert left == [(0, False), (2, True), (3, False)]
    assert len(paged.annotations[2]) == before + 1
    assert paged.annotations[2].labels[-1] == "circle"
    viewer.dims.set_current_step(0, 2)
    assert len(shapes.data) == before + 1  # shown again after coming back


def test_saving_a_paged_layer_writes_every_image(make_napari_viewer, tutorial_dataset):
    viewer = make_napari_viewer()
    image, shapes, annotations, paged = open_paged(viewer, tutorial_dataset)
    viewer.dims.set_current_step(0, 1)
    shapes.selected_data = set(range(len(shapes.data)))
    shapes.remove_selected()  # unsaved, on screen
    viewer.layers.selection = {shapes}
    written = viewer.layers.save(str(tutorial_dataset / "target" / "x.pt"), selected=True, plugin=PLUGIN)
    assert len(written) == 6
    assert len(load_annotation(tutorial_dataset / "target" / "001.pt")) == 0
    for index in [0, 2, 3, 4, 5]:  # images not on screen keep their boxes
        assert load_annotation(tutorial_dataset / "target" / f"{index:03d}.pt") == Annotation(
            boxes=annotations[index].boxes, labels=annotations[index].labels, classes=annotations[index].classes
        )


def test_disconnecting_restores_every_box_to_the_layer(make_napari_viewer, tutorial_dataset):
    viewer = make_napari_viewer()
    image, shapes, annotations, paged = open_paged(viewer, tutorial_dataset)
    total = sum(len(a) for a in annotations)
    assert len(shapes.data) < total
    paged.disconnect()
    assert len(shapes.data) == total
    boxes, index = rectangles_to_boxes(shapes.data)
    np.testing.assert_allclose(boxes[index == 4], annotations[4].boxes, atol=1e-4)
    assert "slice_model" not in shapes.metadata


def test_a_paged_layer_without_its_model_refuses_to_save(make_napari_viewer, tutorial_dataset):
    import gc

    import pytest

    from napari_faster_rcnn._writer import write_boxes

    viewer = make_napari_viewer()
    image, shapes, annotations, paged = open_paged(viewer, tutorial_dataset)
    viewer.dims.events.current_step.disconnect(paged._on_step)
    del paged
    gc.collect()
    before = (tutorial_dataset / "target" / "000.pt").read_bytes()
    data, meta, _ = shapes.as_layer_data_tuple()
    with pytest.raises(ValueError, match="not saving"):
        write_boxes(str(tutorial_dataset / "target" / "x.pt"), data, meta)
    assert (tutorial_dataset / "target" / "000.pt").read_bytes() == before


def test_paging_model_finds_the_model_of_a_layer(make_napari_viewer, tutorial_dataset):
    from napari_faster_rcnn.layers.paging_registry import paging_model

    viewer = make_napari_viewer()
    image, shapes, annotations, paged = open_paged(viewer, tutorial_dataset)
    assert paging_model(shapes) is paged
    viewer.dims.set_current_step(0, 1)
    paged.annotations[1] = Annotation([[1, 1, 9, 9]], ["square"])
    paged.refresh()
    assert len(shapes.data) == 1 and list(shapes.features["label"]) == ["square"]
    paged.disconnect()
    assert paging_model(shapes) is None


def test_showing_an_empty_image_keeps_the_feature_defaults(make_napari_viewer):
    from napari_faster_rcnn.layers.page_boxes import show_boxes

    viewer = make_napari_viewer()
    data, kwargs, _ = conventions.shapes_layer_data([Annotation(), Annotation()], stacked=True, name="b", classes=["cat"])
    layer = viewer.add_shapes(data, **{k: v for k, v in kwargs.items() if k != "ndim"}, ndim=3)
    colors = layer.metadata[conventions.CLASS_COLORS]
    show_boxes(layer, Annotation(), 0, colors)
    # several boxes after an empty image: new rows must not get a None label (the text colour failed)
    show_boxes(layer, Annotation([[0, 0, 5, 5], [1, 1, 6, 6], [2, 2, 7, 7]], ["cat"] * 3), 1, colors)
    assert list(layer.features["label"]) == ["cat"] * 3
    show_boxes(layer, Annotation(), 0, colors)
    assert layer.feature_defaults["label"][0] == "cat"  # a rectangle drawn now is a cat
