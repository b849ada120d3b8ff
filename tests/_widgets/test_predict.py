"""The "Predict" widget in a real viewer: a tiny trained checkpoint over an image, a stack, a folder."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from napari_faster_rcnn._widgets.evaluate import EvaluateWidget
from napari_faster_rcnn._widgets.predict import FOLDER, STACK, PredictWidget
from napari_faster_rcnn._widgets.tune_predictions import TunePredictionsWidget
from napari_faster_rcnn.core.data.annotations import THRESHOLDS_FILE, load_annotation
from napari_faster_rcnn.core.data.boxes import rectangles_to_boxes
from napari_faster_rcnn.core.data.synthetic import write_synthetic_dataset
from napari_faster_rcnn.core.model.checkpoints import load_checkpoint
from napari_faster_rcnn.core.prediction.run import predict_images
from napari_faster_rcnn.core.prediction.settings import DetectionSettings
from napari_faster_rcnn.core.prediction.thresholds import Thresholds, apply_thresholds, load_thresholds
from napari_faster_rcnn.layers import box_colors, conventions
from napari_faster_rcnn.layers.predictions import prediction_pages
from tests.checkpoint_data import RunsCode, assert_same_detections, tiny_checkpoint

PLUGIN = "napari-faster-rcnn"
SCORE = 0.2  # the untrained model's scores lie near 0.25: some boxes pass this


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory)


@pytest.fixture(scope="module")
def expected(checkpoint, tmp_path_factory):
    """A dataset folder and the raw detections of each of its images, computed without the widget."""
    dataset = write_synthetic_dataset(tmp_path_factory.mktemp("widget") / "shapes", 6, seed=3, height=64, width=80)
    loaded = load_checkpoint(checkpoint)
    records, _ = predict_images(loaded.model, sorted((dataset / "input").glob("*.png")), loaded.classes)
    return dataset, [record.annotation for record in records]


def loaded_widget(viewer, qtbot, path, tile: int | None = 0):
    """The widget with the checkpoint loaded; ``tile`` 0 (the default here) predicts each image whole, as
    the raw detections these tests compare with were made (tiling has its own test), None leaves the default."""
    widget = PredictWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.path.setText(str(path))
    load(qtbot, widget)
    if tile is not None:
        widget.tile.setValue(tile)
    return widget


def load(qtbot, widget):
    assert widget.load() is not None
    # Load comes back in the widget's own `finished` handler, connected before the worker started; a signal
    # connected here could miss a worker that already finished
    qtbot.waitUntil(widget.load_button.isEnabled, timeout=60_000)


def run(qtbot, widget):
    worker = widget.predict()
    assert worker is not None, widget.status.text()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)  # finished and cleaned up
    return worker


def shown(layer):
    boxes, _ = rectangles_to_boxes(layer.data)
    return boxes, list(layer.features["label"]), np.asarray(layer.features["score"])


def assert_shows(layer, annotation):
    boxes, labels, scores = shown(layer)
    np.testing.assert_allclose(boxes, annotation.boxes, atol=1e-3)
    assert labels == annotation.labels
    np.testing.assert_allclose(scores, annotation.scores, atol=1e-5)


@pytest.fixture
def opened(make_napari_viewer, qtbot, checkpoint, expected):
    viewer = make_napari_viewer()
    dataset, raw = expected
    viewer.open(dataset, plugin=PLUGIN)  # the images and their labels
    widget = loaded_widget(viewer, qtbot, checkpoint)
    widget.score.setValue(SCORE)
    return viewer, widget, dataset, raw


def test_the_checkpoint_is_described_and_sets_the_starting_thresholds(make_napari_viewer, qtbot, checkpoint):
    viewer = make_napari_viewer()
    widget = PredictWidget(viewer)
    assert not widget.predict_button.isEnabled() and widget.predict() is None
    assert widget.status.text() == "load a checkpoint first"
    widget = loaded_widget(viewer, qtbot, checkpoint)
    text = widget.info.text()
    assert "3 classes: circle, square, triangle" in text and "epoch 0, step 2" in text
    assert "validation VOC mAP" in text and "resnet18_slim, heads v1, images resized to 64 px" in text
    assert text.splitlines()[-1].startswith("sees gray and RGB images as stored; 8-bit values divided by 255")
    assert (widget.score.value(), widget.nms.value()) == (0.5, 0.5)
    assert widget.predict_button.isEnabled()
    assert widget.predict() is None and widget.status.text() == "open an image (or a dataset folder) first"


def test_predict_the_whole_stack(opened, qtbot):
    viewer, widget, dataset, raw = opened
    images, labels = viewer.layers[0], viewer.layers[1]
    widget.target.setCurrentText(STACK)
    run(qtbot, widget)
    layer = viewer.layers[-1]
    assert layer is widget.layer and layer.name == "shapes predictions" and layer.ndim == 3
    assert layer.metadata[conventions.LAYER_ROLE] == conventions.PREDICTIONS
    assert layer.metadata[conventions.SOURCE_IMAGES] == images.metadata[conventions.SOURCE_IMAGES]  # saving: one file per image
    assert layer.metadata[conventions.THRESHOLDS] == Thresholds(SCORE, 0.5).to_dict()
    pages = prediction_pages(layer)
    for index, annotation in enumerate(raw):
        assert_same_detections(pages.raw[index], annotation)  # the raw detections are behind the layer
    colors = labels.metadata[conventions.CLASS_COLORS]
    assert layer.metadata[conventions.CLASS_COLORS] == colors  # the labels' colours
    for index in (0, 4):
        viewer.dims.set_current_step(0, index)
        kept = apply_thresholds(pages.raw[index], Thresholds(SCORE, 0.5))
        assert len(kept) > 0
        assert_shows(layer, kept)
        boxes, names, scores = shown(layer)
        np.testing.assert_allclose(layer.edge_color, box_colors.edge_colors(names, colors))  # colour by class
        assert list(layer.text.values) == [f"{name} {score:.2f}" for name, score in zip(names, scores)]
    total = sum(len(apply_thresholds(a, Thresholds(SCORE, 0.5))) for a in pages.raw)
    assert widget.status.text().startswith(f"6 images: {total:,} boxes pass score ≥ 0.2 and NMS 0.5")


def test_predict_the_current_image_of_a_stack(opened, qtbot):
    viewer, widget, dataset, raw = opened
    viewer.dims.set_current_step(0, 3)
    run(qtbot, widget)  # "current image" is the default
    layer = viewer.layers[-1]
    assert layer.name == "shapes 003 predictions" and layer.ndim == 3
    assert layer.metadata[conventions.SOURCE_IMAGES] == [str(dataset / "input" / "003.png")]
    assert tuple(layer.translate) == (3.0, 0.0, 0.0)  # on its slice of the stack
    pages = prediction_pages(layer)
    assert len(pages.raw) == 1
    assert_same_detections(pages.raw[0], raw[3])
    assert_shows(layer, apply_thresholds(pages.raw[0], Thresholds(SCORE, 0.5)))
    boxes, _ = rectangles_to_boxes(layer.data)
    assert len(boxes) and np.all(np.asarray(layer.data)[:, :, 0] == 0)  # data index 0, shown at slice 3


def test_predict_a_folder_adds_its_image_stack(make_napari_viewer, qtbot, checkpoint, expected, tmp_path):
    viewer = make_napari_viewer()
    _, raw = expected
    folder = write_synthetic_dataset(tmp_path / "other", 3, seed=3, height=64, width=80)  # the first 3 images again
    widget = loaded_widget(viewer, qtbot, checkpoint)
    widget.target.setCurrentText(FOLDER)
    assert widget.predict() is None and widget.status.text() == "choose a folder of images first"
    widget.folder.setText(str(folder))
    run(qtbot, widget)
    assert [layer.name for layer in viewer.layers] == ["other", "other predictions"]
    images, layer = viewer.layers
    assert images.data.shape == (3, 64, 80, 3) and images.metadata[conventions.DATASET_ROOT] == str(folder)
    assert layer.metadata[conventions.SOURCE_IMAGES] == [str(folder / "input" / f"{i:03d}.png") for i in range(3)]
    for index in range(3):
        assert_same_detections(prediction_pages(layer).raw[index], raw[index])
    run(qtbot, widget)  # again: the open image stack is used, not opened twice
    assert [layer.name for layer in viewer.layers] == ["other", "other predictions", "other predictions [1]"]


def test_tune_evaluate_and_save_work_on_the_result_without_running_the_model(opened, qtbot, tmp_path):
    viewer, widget, dataset, raw = opened
    model = widget.checkpoint.model
    calls = []
    forward = model.forward
    model.forward = lambda *args, **kwargs: calls.append(1) or forward(*args, **kwargs)
    widget.target.setCurrentText(STACK)
    widget.batch_size.setValue(4)
    run(qtbot, widget)
    assert len(calls) == 2  # 6 images in batches of 4
    layer = viewer.layers[-1]
    pages = prediction_pages(layer)

    tune = TunePredictionsWidget(viewer)
    viewer.window.add_dock_widget(tune)
    tune.predictions.set_layer(layer)
    assert tune.thresholds() == Thresholds(SCORE, 0.5)  # the sliders start where Predict left it
    viewer.dims.set_current_step(0, 2)
    tune.score.setSliderDown(True)
    tune.score.setValue(0.25)
    # the scores crowd near 0.25: compare with the very value the slider gives, not the literal
    dragged = tune.thresholds()
    assert abs(dragged.score_threshold - 0.25) < 1e-6 and dragged.nms_threshold == 0.5
    assert_shows(layer, apply_thresholds(pages.raw[2], dragged))
    tune.score.setSliderDown(False)
    tune.nms.setValue(0.3)
    chosen = tune.thresholds()
    assert_shows(layer, apply_thresholds(pages.raw[2], chosen))
    assert len(shown(layer)[0]) < len(apply_thresholds(pages.raw[2], Thresholds(SCORE, 0.5)))
    assert len(calls) == 2  # the sliders filtered the raw detections; the model did not run again

    evaluate = EvaluateWidget(viewer)
    evaluate.ground_truth.set_layer(viewer.layers[1])
    evaluate.predictions.set_layer(layer)
    assert evaluate.run() is not None
    qtbot.waitUntil(evaluate.run_button.isEnabled, timeout=60_000)  # finished (see load)
    assert evaluate.result is not None and evaluate.result.images == 6

    out = tmp_path / "saved"
    out.mkdir()
    viewer.layers.selection = {layer}
    viewer.layers.save(str(out / "x.pt"), selected=True, plugin=PLUGIN)
    assert sorted(path.name for path in out.iterdir()) == [*(f"{i:03d}.pt" for i in range(6)), THRESHOLDS_FILE]
    assert load_thresholds(out) == chosen
    for index in range(6):
        saved = load_annotation(out / f"{index:03d}.pt")
        assert saved.labels == apply_thresholds(pages.raw[index], chosen).labels


def test_cancel_keeps_the_images_predicted_so_far(make_napari_viewer, qtbot, checkpoint):
    viewer = make_napari_viewer()
    pictures = np.random.default_rng(0).integers(0, 256, (40, 64, 64, 3), dtype=np.uint8)
    viewer.add_image(pictures, rgb=True, name="frames")
    widget = loaded_widget(viewer, qtbot, checkpoint)
    model = widget.checkpoint.model
    own = DetectionSettings.of_model(model)
    forward = model.forward
    model.forward = lambda *args, **kwargs: time.sleep(0.05) or forward(*args, **kwargs)
    widget.target.setCurrentText(STACK)
    widget.batch_size.setValue(2)
    worker = widget.predict()
    assert widget.cancel_button.isEnabled() and not widget.predict_button.isEnabled()
    cancelled = []

    def cancel(record):  # once, from the second image on (this slot is connected after the worker started)
        if record.done >= 2 and not cancelled:
            cancelled.append(record.done)
            widget.cancel()

    worker.yielded.connect(cancel)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)  # aborted and cleaned up
    layer = viewer.layers[-1]
    count = len(prediction_pages(layer).raw)
    assert 2 <= cancelled[0] <= count < 40
    assert widget.status.text().startswith(f"cancelled after {count} of 40 images")
    assert layer.metadata[conventions.SOURCE_IMAGES] == [None] * count
    assert not [t for t in threading.enumerate() if t.name == "napari-faster-rcnn-read-ahead"]
    assert DetectionSettings.of_model(model) == own  # the raw settings were undone
    assert widget.predict_button.isEnabled() and not widget.cancel_button.isEnabled()


def test_a_checkpoint_that_would_run_code_is_refused_and_the_viewer_stays_usable(make_napari_viewer, qtbot,
                                                                                 checkpoint, tmp_path):
    from napari.utils.notifications import notification_manager

    viewer = make_napari_viewer()
    contents = torch.load(checkpoint, weights_only=True)
    marker = tmp_path / "pwned"
    contents["hyper_parameters"]["note"] = RunsCode(marker)
    tampered = tmp_path / "tampered.ckpt"
    torch.save(contents, tampered)
    widget = loaded_widget(viewer, qtbot, tampered)
    assert not marker.exists()  # nothing in the file ran
    assert widget.checkpoint is None and not widget.predict_button.isEnabled()
    assert widget.info.text().startswith(f"not loaded: {tampered}:")
    message = notification_manager.records[-1].message
    assert message.startswith(f"Predict: {tampered}:") and "os" in message  # names what it would import
    viewer.add_image(np.zeros((64, 64, 3), np.uint8), rgb=True)  # still usable: load a good one and predict
    widget.path.setText(str(checkpoint))
    load(qtbot, widget)
    run(qtbot, widget)
    assert viewer.layers[-1].metadata[conventions.LAYER_ROLE] == conventions.PREDICTIONS


def test_an_error_while_predicting_is_shown_and_the_widget_stays_usable(opened, qtbot):
    from napari.utils.notifications import notification_manager

    viewer, widget, dataset, raw = opened
    model = widget.checkpoint.model
    forward = model.forward

    def out_of_memory(*args, **kwargs):
        raise RuntimeError("CUDA out of memory (a test)")

    model.forward = out_of_memory
    layers = len(viewer.layers)
    run(qtbot, widget)
    assert widget.status.text() == "prediction failed: CUDA out of memory (a test)"
    assert notification_manager.records[-1].message == "Predict: CUDA out of memory (a test)"
    assert len(viewer.layers) == layers  # nothing half-made
    assert not [t for t in threading.enumerate() if t.name == "napari-faster-rcnn-read-ahead"]
    model.forward = forward
    assert widget.predict_button.isEnabled()
    run(qtbot, widget)
    assert len(viewer.layers) == layers + 1


def test_an_unreadable_image_is_left_out_of_the_progress_total(make_napari_viewer, qtbot, checkpoint, tmp_path):
    viewer = make_napari_viewer()
    dataset = write_synthetic_dataset(tmp_path / "three", 3, seed=3, height=64, width=80)
    viewer.open(dataset, plugin=PLUGIN)
    (dataset / "input" / "001.png").write_bytes(b"not a png any more")  # after the stack was opened
    widget = loaded_widget(viewer, qtbot, checkpoint)
    widget.target.setCurrentText(STACK)
    worker = run(qtbot, widget)
    # the bar ends full at the 2 images predicted: the unreadable one is not counted as work left
    assert (worker.pbar.n, worker.pbar.total) == (2, 2)
    assert widget.status.text().startswith("3 images: ") and "1 unreadable (no boxes)" in widget.status.text()


def test_predict_in_tiles(make_napari_viewer, qtbot, checkpoint):
    """An image larger than the tile: tiles from the checkpoint's training images, progress per tile,
    the merged raw detections behind the layer, as the core gives them."""
    from napari_faster_rcnn.core.prediction.tiles import Tiling, default_tiling

    viewer = make_napari_viewer()
    pixels = np.random.default_rng(0).integers(0, 256, (80, 112, 3), dtype=np.uint8)
    viewer.add_image(pixels, rgb=True, name="large")
    widget = loaded_widget(viewer, qtbot, checkpoint, tile=None)
    loaded = load_checkpoint(checkpoint)
    default = default_tiling(loaded.config, loaded.training_images)
    assert default.tile == 64  # trained on 64 x 64 images at 64 px
    assert (widget.tile.value(), widget.overlap.value()) == (default.tile, pytest.approx(default.overlap))
    widget.tile.setValue(48)
    widget.overlap.setValue(0.25)
    widget.batch_size.setValue(5)
    run(qtbot, widget)
    assert widget._done_passes == widget._total_passes == 6  # the progress bar counted the tiles
    expected, _ = predict_images(load_checkpoint(checkpoint).model, [pixels], loaded.classes,
                                 tiling=Tiling(48, 0.25))
    assert expected[0].tiles == 6
    assert_same_detections(prediction_pages(widget.layer).raw[0], expected[0].annotation)
    assert widget.status.text().startswith("1 image: ")

    widget.tile.setValue(5)
    assert widget.predict() is None
    assert widget.status.text() == "the tile size must be 0 (the whole image in one pass) or at least 16 pixels, got 5"


def test_predict_on_a_large_image_opened_as_multiscale_reads_its_file_in_tiles(make_napari_viewer, qtbot, checkpoint,
                                                                                tmp_path):
    """A tiled TIFF above the reader's large-image size opens multiscale; Predict works on its full
    resolution, read tile by tile from the file, as the core predicts the file."""
    import tifffile

    from napari_faster_rcnn.core.prediction.tiles import Tiling

    path = tmp_path / "mosaic.tif"
    pixels = np.random.default_rng(2).integers(0, 256, (4200, 4400), dtype=np.uint8)
    tifffile.imwrite(path, pixels, tile=(256, 256), photometric="minisblack", compression="zlib")
    viewer = make_napari_viewer()
    viewer.open(path, plugin=PLUGIN)
    image = viewer.layers[0]
    assert image.multiscale
    widget = loaded_widget(viewer, qtbot, checkpoint, tile=2048)
    widget.overlap.setValue(0.1)
    widget.image_layer.set_layer(image)
    run(qtbot, widget)
    assert widget._done_passes == widget._total_passes == Tiling(2048, 0.1).passes((4200, 4400))
    expected, _ = predict_images(load_checkpoint(checkpoint).model, [path], load_checkpoint(checkpoint).classes,
                                 tiling=Tiling(2048, 0.1))
    assert expected[0].image_size == (4200, 4400)
    assert_same_detections(prediction_pages(widget.layer).raw[0], expected[0].annotation)
