"""Prediction with a tiny trained checkpoint: raw detections, batches, read-ahead, errors, cancelling."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from PIL import Image

from napari_faster_rcnn.core.data.images import read_image
from napari_faster_rcnn.core.data.synthetic import write_synthetic_dataset
from napari_faster_rcnn.core.model.checkpoints import load_checkpoint
from napari_faster_rcnn.core.prediction.reading import read_image_tensor
from napari_faster_rcnn.core.prediction.run import iter_predictions, predict_images
from napari_faster_rcnn.core.prediction.settings import (
    DetectionSettings,
    raw_detection_settings,
    resolve_device,
    starting_thresholds,
)
from napari_faster_rcnn.core.prediction.thresholds import Thresholds, apply_thresholds
from tests.checkpoint_data import assert_same_detections, tiny_checkpoint

READER = "napari-faster-rcnn-read-ahead"


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    return load_checkpoint(tiny_checkpoint(tmp_path_factory))


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Five 64 x 64 synthetic PNG images."""
    dataset = write_synthetic_dataset(tmp_path_factory.mktemp("images") / "shapes", 5, seed=9, height=64, width=64)
    return sorted((dataset / "input").glob("*.png"))


def reader_threads():
    return [thread for thread in threading.enumerate() if thread.name == READER]


def threshold_between_scores(scores, quantile: float) -> float:
    """A score threshold near ``quantile`` of ``scores`` that lies well between two of them.

    torchvision keeps scores above its threshold (compared in float32), we keep
    those at least ours: a threshold on a score, or within float32 rounding of
    one, would tell them apart. The untrained model's scores lie close together.
    """
    unique = np.unique(scores)
    middle = int(quantile * len(unique))
    window = np.arange(max(middle - 20, 0), min(middle + 20, len(unique) - 1))
    best = window[np.argmax(unique[window + 1] - unique[window])]
    assert unique[best + 1] - unique[best] > 1e-6
    return float((unique[best] + unique[best + 1]) / 2)


def test_raw_settings_relax_the_box_head_for_the_run_and_restore_it(loaded, images):
    config = loaded.config
    raw = raw_detection_settings(config)
    assert raw == DetectionSettings(score_thresh=0.01, nms_thresh=1.0, detections_per_img=1000)
    assert raw_detection_settings(config.replace(box_score_thresh=0.001, box_detections_per_img=1500)) == \
        DetectionSettings(0.001, 1.0, 1500)
    model = loaded.model
    own = DetectionSettings.of_model(model)
    assert own == DetectionSettings(config.box_score_thresh, config.box_nms_thresh, config.box_detections_per_img)

    generator = iter_predictions(model, images, loaded.classes, batch_size=2)
    first = next(generator)
    assert DetectionSettings.of_model(model) == raw  # while it runs
    assert len(first.annotation) > config.box_detections_per_img  # more than the model's own cap
    for _ in generator:
        pass
    assert DetectionSettings.of_model(model) == own  # afterwards, as loaded


def test_thresholds_on_raw_detections_give_what_the_model_gives_with_those_settings(loaded, images):
    """Per-class NMS and a score threshold after the run equal the box head's own post-processing."""
    raw, _ = predict_images(loaded.model, images, loaded.classes, batch_size=1)
    score = threshold_between_scores(np.concatenate([record.annotation.scores for record in raw]), 0.7)
    for nms in (0.5, 0.3):
        settings = DetectionSettings(score_thresh=score, nms_thresh=nms, detections_per_img=300)
        direct, _ = predict_images(loaded.model, images, loaded.classes, batch_size=1, settings=settings)
        for record, expected in zip(raw, direct):
            tuned = apply_thresholds(record.annotation, Thresholds(score, nms))
            assert len(expected.annotation) > 0
            assert_same_detections(tuned, expected.annotation)


def test_batched_output_equals_one_by_one(loaded, images):
    one, _ = predict_images(loaded.model, images, loaded.classes, batch_size=1)
    batched, summary = predict_images(loaded.model, images, loaded.classes, batch_size=3, read_ahead=1)
    assert [r.index for r in batched] == list(range(5)) and [r.done for r in batched] == [1, 2, 3, 4, 5]
    for single, together in zip(one, batched):
        assert_same_detections(single.annotation, together.annotation)
    assert summary.images == 5 and summary.boxes == sum(len(r.annotation) for r in batched)


def test_reading_in_the_calling_thread_gives_the_same_records(loaded, images, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png at all")
    inputs = [images[0], broken, *images[1:3]]
    ahead, _ = predict_images(loaded.model, inputs, loaded.classes, batch_size=2)
    generator = iter_predictions(loaded.model, inputs, loaded.classes, batch_size=2, read_ahead=0)
    inline = [next(generator)]
    assert reader_threads() == []  # no helper thread
    inline += list(generator)
    assert [(r.index, r.error) for r in inline] == [(r.index, r.error) for r in ahead]
    for first, second in zip(ahead, inline):
        if first.annotation is not None:
            assert_same_detections(first.annotation, second.annotation)


def test_labels_are_class_names_with_scores_and_the_class_list(loaded, images):
    records, _ = predict_images(loaded.model, images[:2], loaded.classes)
    for record, path in zip(records, images):
        annotation = record.annotation
        assert record.source == path and record.image_size == (64, 64) and record.error is None
        assert set(annotation.labels) <= set(loaded.classes) and len(set(annotation.labels)) > 1
        assert annotation.classes == loaded.classes
        assert annotation.scores is not None and len(annotation.scores) == len(annotation)
        assert np.all(np.diff(annotation.scores) <= 0)  # the model's order: best first
        assert annotation.boxes.min() >= 0 and annotation.boxes[:, 2:].max() <= 64


def test_an_unreadable_image_is_reported_and_the_rest_predicted(loaded, images, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png at all")
    missing = tmp_path / "gone.jpg"
    inputs = [images[0], broken, images[1], missing, images[2]]
    records, summary = predict_images(loaded.model, inputs, loaded.classes, batch_size=2)
    assert [r.index for r in records] == [0, 1, 2, 3, 4]
    assert [r.annotation is None for r in records] == [False, True, False, True, False]
    assert records[1].error.startswith(f"{broken}: not a readable image")
    assert records[3].error == f"{missing}: file not found"
    assert summary.images == 3
    assert [name for name, _ in summary.skipped] == [str(broken), str(missing)]
    # the unreadable images are left out of the progress: it ends at the 3 images predicted, of 3
    assert [(r.done, r.total) for r in records] == [(1, 5), (1, 4), (2, 4), (2, 3), (3, 3)]
    alone, _ = predict_images(loaded.model, [images[1]], loaded.classes)
    assert_same_detections(records[2].annotation, alone[0].annotation)


def test_arrays_predict_as_their_files_do(loaded, images, tmp_path):
    pixels = read_image(images[0])
    gray_path = tmp_path / "gray.png"
    Image.fromarray(pixels[:, :, 0]).save(gray_path)
    wide = np.zeros((64, 64, 3), np.uint16) + (pixels.astype(np.uint16) * 257)  # 16-bit: the same picture
    inputs = [pixels, pixels[:, :, 0], np.dstack([pixels, np.full((64, 64), 255, np.uint8)]), wide,
              np.zeros((2, 3, 4, 5))]
    records, summary = predict_images(loaded.model, inputs, loaded.classes, batch_size=2)
    from_file, _ = predict_images(loaded.model, [images[0], gray_path], loaded.classes)
    assert all(record.source is None for record in records)
    assert_same_detections(records[0].annotation, from_file[0].annotation)
    assert_same_detections(records[1].annotation, from_file[1].annotation)
    assert_same_detections(records[2].annotation, from_file[0].annotation)  # alpha dropped
    # the same picture in 16 bits: under "auto" scaled by its percentiles, so compare under "none"
    model_config = loaded.model.config
    try:
        loaded.model.config = model_config.replace(normalization="none")
        (wide_record,), _ = predict_images(loaded.model, [wide], loaded.classes)
    finally:
        loaded.model.config = model_config
    assert_same_detections(wide_record.annotation, from_file[0].annotation, atol=1e-2)
    assert records[4].annotation is None and "expected a 2-D gray or RGB(A) image" in records[4].error
    assert summary.skipped == [("image 4", records[4].error.split(": ", 1)[1])]
    torch.testing.assert_close(read_image_tensor(images[0]), read_image_tensor(pixels))
    assert read_image_tensor(images[0]).dtype == torch.float32 and read_image_tensor(images[0]).shape == (3, 64, 64)


def test_closing_the_generator_stops_the_reader_thread_and_restores_the_model(loaded):
    assert reader_threads() == []
    pictures = [np.full((64, 64, 3), value, np.uint8) for value in range(0, 200, 10)]
    own = DetectionSettings.of_model(loaded.model)
    generator = iter_predictions(loaded.model, pictures, loaded.classes, batch_size=1, read_ahead=1)
    next(generator)
    assert len(reader_threads()) == 1  # reading ahead, and soon waiting for room in its queue
    generator.close()
    assert reader_threads() == []
    assert DetectionSettings.of_model(loaded.model) == own


def test_dropping_an_unfinished_generator_stops_its_reader(loaded):
    import gc

    generator = iter_predictions(loaded.model, [np.zeros((64, 64, 3), np.uint8)] * 8, loaded.classes, batch_size=1,
                                 read_ahead=1)
    next(generator)
    del generator
    gc.collect()
    assert reader_threads() == []


def test_devices_and_starting_thresholds(loaded):
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            resolve_device("cuda")
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    assert starting_thresholds(loaded.config) == Thresholds(0.5, 0.5)  # torchvision's 0.05 is for mAP
    assert starting_thresholds(loaded.config.replace(box_score_thresh=0.3, box_nms_thresh=0.4)) == Thresholds(0.3, 0.4)
    with pytest.raises(ValueError, match="batch_size must be at least 1 and read_ahead at least 0"):
        next(iter_predictions(loaded.model, [], loaded.classes, batch_size=0))


def test_prediction_repeats_the_models_normalization(loaded, images):
    """A 16-bit picture at two exposures reaches the network as the same input under percentiles (the
    default for 16 bits) and gives the same detections; under the type's own scale (what every
    16-bit image got before) the brighter one reaches it four times as bright."""
    pixels = read_image(images[0]).astype(np.uint16)
    dim, bright = pixels * 16 + 100, pixels * 64 + 400  # a 12-bit camera at two exposures
    seen = []
    hook = loaded.model.transform.register_forward_pre_hook(
        lambda module, args: seen.extend(image.detach().clone() for image in args[0]))
    model_config = loaded.model.config
    assert model_config.normalization == "auto"
    try:
        (dim_record, bright_record), _ = predict_images(loaded.model, [dim, bright], loaded.classes)
        loaded.model.config = model_config.replace(normalization="none")
        predict_images(loaded.model, [dim, bright], loaded.classes)
    finally:
        loaded.model.config = model_config
        hook.remove()
    assert_same_detections(dim_record.annotation, bright_record.annotation, atol=1e-2)
    torch.testing.assert_close(seen[0], seen[1], atol=2e-3, rtol=0)
    assert float(seen[0].max()) == pytest.approx(1.0) and float(seen[0].min()) == 0.0
    assert float(seen[3].max()) > 3.5 * float(seen[2].max()) and float(seen[2].max()) < 0.07
