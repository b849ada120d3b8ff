"""The "Anchor boxes" widget in a real viewer: its layers hold the model's view of the image, the
anchors of every feature map and the ground truth as the core computes them, and follow the settings,
the dims slider and clicks."""

import numpy as np
import pytest
from napari.utils.events import Event

from napari_faster_rcnn._widgets.anchor_boxes import FOLDER, LAYERS, AnchorBoxesWidget
from napari_faster_rcnn.core.data.annotations import load_annotation
from napari_faster_rcnn.core.data.boxes import rectangles_to_boxes
from napari_faster_rcnn.core.data.images import read_image
from napari_faster_rcnn.core.model.anchor_inputs import format_anchor_text, transform_boxes, transform_image
from napari_faster_rcnn.core.model.anchors import anchor_coverage, anchor_grids, anchors_at
from napari_faster_rcnn.core.model.config import preset
from napari_faster_rcnn.core.model.detector import padded_image_size, resized_image_size
from napari_faster_rcnn.layers import anchors, box_window

PLUGIN = "napari-faster-rcnn"
CPU = preset("cpu", ["object"])


def open_with_widget(viewer, folder, preset_name="cpu"):
    viewer.open(folder, plugin=PLUGIN)
    widget = AnchorBoxesWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.preset.setCurrentText(preset_name)
    return widget


def layer(widget, name):
    return widget.view.layers[name]


def boxes_of(shapes_layer):
    return rectangles_to_boxes(shapes_layer.data)[0]


def dataset(folder):
    files = sorted((folder / "target").iterdir())
    images = sorted((folder / "input").iterdir())
    return [read_image(path) for path in images], [load_annotation(path) for path in files]


def test_layers_hold_the_model_s_view_of_the_image(make_napari_viewer, tutorial_dataset):
    viewer = make_napari_viewer()
    widget = open_with_widget(viewer, tutorial_dataset)
    images, annotations = dataset(tutorial_dataset)
    config = widget.config
    assert config.backbone == "resnet18_slim" and widget.sizes.text() == "(16, 24, 32, 48)"
    index = widget.index.value()
    assert index == viewer.dims.current_step[0]  # the image the slider shows
    size = images[index].shape[:2]

    # the image as the model's batch holds it; the source layers are hidden (they would not line up)
    shown = layer(widget, anchors.IMAGE)
    assert shown.data.shape == (*padded_image_size(config, size), 3) == (128, 128, 3)
    np.testing.assert_array_equal(shown.data, transform_image(config, images[index]))
    assert not viewer.layers[0].visible and not viewer.layers[1].visible
    assert viewer.layers.selection.active is shown  # clicks go to it

    # one point per anchor position of each map, where torchvision puts the anchors
    grids = anchor_grids(config, size)
    assert [points.name for points in widget.view.centre_layers] == ["anchors · centres 0 (stride 8)"]
    for points, grid in zip(widget.view.centre_layers, grids, strict=True):
        assert len(points.data) == grid.rows * grid.columns == 256
        np.testing.assert_allclose(points.data, grid.centres()[:, ::-1] - 0.5)

    # the anchors at the centre of the resized image until a click moves them
    height, width = resized_image_size(config, size)
    at_point = layer(widget, anchors.AT_POINT)
    np.testing.assert_allclose(boxes_of(at_point), np.concatenate(anchors_at(config, size, (width / 2, height / 2))))
    assert at_point.features["size"].tolist() == [16, 24, 32, 48] * 3
    for callback in shown.mouse_drag_callbacks:
        callback(shown, Event("mouse_press", position=(index, 20.5, 90.5)))  # napari (row, col)
    np.testing.assert_allclose(boxes_of(at_point), np.concatenate(anchors_at(config, size, (91, 21))))

    # the ground truth, scaled as training scales it, with its best anchor's IoU
    truth = layer(widget, anchors.TRUTH)
    np.testing.assert_allclose(boxes_of(truth), transform_boxes(config, size, annotations[index].boxes), atol=1e-9)
    coverage = anchor_coverage(config, list(zip([image.shape[:2] for image in images], annotations)))
    mine = coverage.in_image(index)
    np.testing.assert_allclose(truth.features["best_iou"], coverage.best_iou[mine])
    assert truth.features["label"].tolist() == annotations[index].labels
    assert widget.report.text().startswith(f"{len(coverage)} boxes in 6 images: {coverage.share(0.7):.0%} reach")
    assert "resnet" not in widget.error.text() and not widget.error.isVisibleTo(widget)


def test_settings_update_the_layers_and_a_mismatch_leaves_them(make_napari_viewer, tutorial_dataset):
    viewer = make_napari_viewer()
    widget = open_with_widget(viewer, tutorial_dataset)
    images, annotations = dataset(tutorial_dataset)
    index = widget.index.value()
    size = images[index].shape[:2]
    centres = widget.view.centre_layers[0].data

    # large anchors: the small shapes are not reached, and the red layer shows this image's
    widget.sizes.setText("(100, 150)")
    widget.ratios.setText("(1,)")
    assert widget.apply()
    config = widget.config
    assert config.anchors() == (((100, 150),), ((1.0,),))
    at_point = layer(widget, anchors.AT_POINT)
    assert len(at_point.data) == 2 and at_point.features["size"].tolist() == [100, 150]
    assert widget.view.centre_layers[0].data is centres  # the grid did not change: not redrawn
    coverage = widget.coverage
    expected = anchor_coverage(config, list(zip([image.shape[:2] for image in images], annotations)))
    np.testing.assert_allclose(coverage.best_iou, expected.best_iou)
    unreached = layer(widget, anchors.UNREACHED)
    mine = [k for k in expected.in_image(index) if expected.best_iou[k] < 0.5]
    assert len(mine) > 0
    np.testing.assert_allclose(boxes_of(unreached), expected.boxes[mine], atol=1e-9)
    np.testing.assert_allclose(unreached.features["best_iou"], expected.best_iou[mine])
    assert widget.unreached.count() == len(expected.unreached()) and widget.unreached.isVisibleTo(widget)
    assert f"{len(expected.unreached())} unreached" in widget.report.text()

    # min_size: the image, the grid and the ground truth change
    widget.min_size.setValue(256)
    widget.max_size.setValue(320)
    config = widget.config
    assert (config.min_size, config.max_size) == (256, 320)
    assert layer(widget, anchors.IMAGE).data.shape == (*padded_image_size(config, size), 3) == (256, 320, 3)
    assert len(widget.view.centre_layers[0].data) == 32 * 40
    np.testing.assert_allclose(boxes_of(layer(widget, anchors.TRUTH)), transform_boxes(config, size,
                                                                                annotations[index].boxes))
    assert "256 × 320" in widget.maps.text() or "40 × 32" in widget.maps.text()

    # a count of sizes that does not match the maps: the reason, and the layers as they were
    before = {name: [np.copy(d) for d in layer(widget, name).data] for name in (anchors.AT_POINT, anchors.TRUTH)}
    image_before = layer(widget, anchors.IMAGE).data
    widget.sizes.setText("(16,), (32,)")
    assert not widget.apply()
    assert widget.error.text().startswith("anchor_sizes: resnet18_slim gives 1 feature map (no FPN), so "
                                          "anchor_sizes needs 1 tuple")
    assert widget.error.isVisibleTo(widget) and widget.config is config
    for name, data in before.items():
        np.testing.assert_array_equal(np.array(layer(widget, name).data), np.array(data))
    assert layer(widget, anchors.IMAGE).data is image_before
    widget.sizes.setText("")  # empty: the backbone's default, written as the placeholder
    assert widget.apply() and not widget.error.isVisibleTo(widget)
    assert widget.config.anchor_sizes is None and widget.sizes.placeholderText() == "(32, 64, 128, 256, 512)"

    # another backbone with FPN: one layer of centres per map
    widget.backbone.setCurrentText("resnet18")
    widget.fpn.setChecked(True)
    assert widget.config.fpn and widget.config.layers == (1, 2, 3, 4)
    names = [points.name for points in widget.view.centre_layers]
    assert names == [f"anchors · centres {n} (stride {s})" for n, s in
                     [("0", 4), ("1", 8), ("2", 16), ("3", 32), ("pool", 64)]]
    for points, grid in zip(widget.view.centre_layers, anchor_grids(widget.config, size), strict=True):
        assert len(points.data) == grid.rows * grid.columns
    assert len(layer(widget, anchors.AT_POINT).data) == 5  # one size on each map, the one ratio typed for all
    assert widget.config.aspect_ratios == ((1.0,),) * 5


def test_the_image_follows_the_dims_slider(make_napari_viewer, tutorial_dataset):
    viewer = make_napari_viewer()
    widget = open_with_widget(viewer, tutorial_dataset)
    images, annotations = dataset(tutorial_dataset)
    for index in (3, 0):
        viewer.dims.set_current_step(0, index)
        assert widget.index.value() == index
        np.testing.assert_array_equal(layer(widget, anchors.IMAGE).data, transform_image(widget.config, images[index]))
        np.testing.assert_allclose(boxes_of(layer(widget, anchors.TRUTH)),
                                   transform_boxes(widget.config, (64, 80), annotations[index].boxes))
    widget.index.setValue(5)
    assert viewer.dims.current_step[0] == 5
    np.testing.assert_array_equal(layer(widget, anchors.IMAGE).data, transform_image(widget.config, images[5]))

    # an unreached box chosen in the list: its image, and the anchors at its centre
    widget.sizes.setText("(100,)")
    assert widget.apply()
    image, box, _ = widget.coverage.unreached()[-1]
    widget.unreached.setCurrentRow(len(widget.coverage.unreached()) - 1)
    assert widget.index.value() == image == viewer.dims.current_step[0]
    x1, y1, x2, y2 = transform_boxes(widget.config, (64, 80), annotations[image].boxes[box:box + 1])[0]
    np.testing.assert_allclose(boxes_of(layer(widget, anchors.AT_POINT)),
                               np.concatenate(anchors_at(widget.config, (64, 80), ((x1 + x2) / 2, (y1 + y2) / 2))))
    unreached = layer(widget, anchors.UNREACHED)
    assert [unreached.features["box"][k] for k in unreached.selected_data] == [box]
    np.testing.assert_allclose(box_window.camera(viewer).center[-2:], ((y1 + y2) / 2 - 0.5, (x1 + x2) / 2 - 0.5))

    # closing the widget shows the source layers again
    widget.close()
    assert viewer.layers[0].visible and viewer.layers[1].visible


def test_suggest_fills_the_fields_and_apply_uses_them(make_napari_viewer, qtbot, tutorial_dataset):
    viewer = make_napari_viewer()
    widget = open_with_widget(viewer, tutorial_dataset)
    widget.sizes.setText("(90, 120)")  # far too large for these shapes
    assert widget.apply()
    before = widget.coverage
    worker = widget.suggest()
    assert worker is not None
    qtbot.waitUntil(widget.suggest_button.isEnabled, timeout=60_000)
    suggestion = widget.suggestion
    assert widget.sizes.text() == format_anchor_text(suggestion.sizes)
    assert widget.ratios.text() == format_anchor_text(suggestion.ratios)
    assert widget.config.anchor_sizes == ((90, 120),)  # not applied yet
    assert f"{suggestion.coverage.share(0.7):.0%} of the boxes at IoU ≥ 0.7" in widget.suggested.text()
    assert f"now {before.share(0.7):.0%} of the boxes" in widget.suggested.text()
    assert suggestion.coverage.share(0.5) > before.share(0.5)

    widget.apply_button.click()
    assert widget.config.anchors() == (suggestion.sizes, suggestion.ratios)
    assert widget.suggested.text().startswith("suggested, in use: ")
    np.testing.assert_allclose(widget.coverage.best_iou, suggestion.coverage.best_iou)
    assert len(layer(widget, anchors.AT_POINT).data) == len(suggestion.sizes[0]) * len(suggestion.ratios[0])


def test_a_folder_is_read_in_a_worker(make_napari_viewer, qtbot, tutorial_dataset):
    viewer = make_napari_viewer()
    widget = AnchorBoxesWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.preset.setCurrentText("cpu")
    assert "open a dataset" in widget.report.text()
    widget.source.setCurrentText(FOLDER)
    assert widget.folder_row.isVisibleTo(widget) and not widget.image_layer.isVisibleTo(widget)
    widget.folder.setText(str(tutorial_dataset))
    worker = widget.read_folder()
    qtbot.waitUntil(widget.read.isEnabled, timeout=60_000)
    assert (worker.pbar.n, worker.pbar.total) == (6, 6)
    images, annotations = dataset(tutorial_dataset)
    expected = anchor_coverage(widget.config, [(image.shape[:2], a) for image, a in zip(images, annotations)])
    np.testing.assert_allclose(widget.coverage.best_iou, expected.best_iou)
    widget.index.setValue(2)
    np.testing.assert_array_equal(layer(widget, anchors.IMAGE).data, transform_image(widget.config, images[2]))
    np.testing.assert_allclose(boxes_of(layer(widget, anchors.TRUTH)),
                               transform_boxes(widget.config, (64, 80), annotations[2].boxes))

    widget.source.setCurrentText(LAYERS)  # back to the layers: none open, the layers stay
    assert widget.folder.text() == str(tutorial_dataset)


@pytest.mark.parametrize("folder", ["missing", "not-a-dataset"])
def test_a_folder_that_cannot_be_read_says_why(make_napari_viewer, qtbot, tmp_path, folder):
    (tmp_path / "not-a-dataset").mkdir()
    viewer = make_napari_viewer()
    widget = AnchorBoxesWidget(viewer)
    widget.source.setCurrentText(FOLDER)
    widget.folder.setText(str(tmp_path / folder))
    widget.read_folder()
    qtbot.waitUntil(widget.read.isEnabled, timeout=60_000)
    assert widget.report.text().startswith("Anchor boxes: ") and str(tmp_path / folder) in widget.report.text()
    assert widget.coverage is None and anchors.IMAGE not in widget.view.layers
