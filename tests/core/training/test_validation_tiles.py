"""Validation on tiles measures whole images as tiled prediction and ``evaluate`` do: a run's
"best epoch's validation" is the figure a person gets from ``predict`` then ``evaluate``."""

import numpy as np
import pytest
from PIL import Image

from napari_faster_rcnn.core.data.synthetic import make_synthetic_sample
from napari_faster_rcnn.core.evaluation.metrics import evaluate
from napari_faster_rcnn.core.model.checkpoints import load_checkpoint
from napari_faster_rcnn.core.prediction.run import predict_images
from napari_faster_rcnn.core.prediction.settings import raw_detection_settings
from napari_faster_rcnn.core.prediction.thresholds import Thresholds, apply_thresholds
from napari_faster_rcnn.core.prediction.tiles import DEFAULT_OVERLAP, Tiling
from napari_faster_rcnn.core.training.dataset import DetectionDataset
from napari_faster_rcnn.core.training.tile_dataset import TileDataset
from napari_faster_rcnn.core.training.validation import ValidationCollector
from tests.checkpoint_data import assert_same_detections, tiny_checkpoint


@pytest.fixture(scope="module")
def mosaic(tmp_path_factory):
    """A 200 x 330 mosaic of the synthetic shapes: objects across the borders of 96 px tiles."""
    folder = tmp_path_factory.mktemp("mosaic")
    image, annotation = make_synthetic_sample(7, 0, height=200, width=330, objects=(14, 18), sizes=(14, 40))
    Image.fromarray(image).save(folder / "mosaic.png")
    return folder / "mosaic.png", annotation


def test_validation_on_tiles_equals_evaluate_of_tiled_prediction(tmp_path_factory, mosaic):
    path, truth = mosaic
    loaded = load_checkpoint(tiny_checkpoint(tmp_path_factory))
    model, classes = loaded.model.eval(), loaded.classes

    # validation, as the training module runs it on tiles: raw detections tile by tile into the collector,
    # which merges an image's tiles and runs the model's NMS on them
    tiles = TileDataset(DetectionDataset([(path, truth)], classes, normalization=loaded.config.normalization),
                        96, train=False)
    assert len(tiles) > 4
    collector = ValidationCollector(classes, nms_threshold=0.5)
    previous = raw_detection_settings(loaded.config, score_threshold=0.01).apply(model)
    for image, target in tiles:
        collector.add(model([image]), [target])
    previous.apply(model)
    ground_truths, predictions = collector.annotations()
    assert len(ground_truths) == 1 and len(ground_truths[0]) == len(truth)
    validation = collector.compute()

    # the reference: predict's tiled prediction of the whole image (raw, merged; then --score 0.01 --nms 0.5
    # as predict applies them), then evaluate's metrics
    records, _ = predict_images(model, [path], classes, tiling=Tiling(96, overlap=DEFAULT_OVERLAP))
    predicted = apply_thresholds(records[0].annotation, Thresholds(0.01, 0.5))
    result = evaluate([truth], [predicted], 0.5, classes=classes)
    np.testing.assert_allclose(predictions[0].boxes, predicted.boxes, atol=1e-3)
    assert validation["val/voc_map"] == pytest.approx(result.voc.map, abs=1e-6)
    assert validation["val/coco_map"] == pytest.approx(result.coco.map, abs=1e-6)


def test_an_image_validated_without_its_first_tile_is_left_out_with_a_warning(tmp_path_factory, mosaic, caplog):
    """A limit on validation batches can cut an image's tiles; its boxes ride on its first tile, so an image
    seen without that tile is left out of the metrics (and said so), not measured against no boxes."""
    path, truth = mosaic
    loaded = load_checkpoint(tiny_checkpoint(tmp_path_factory))
    model, classes = loaded.model.eval(), loaded.classes
    base = DetectionDataset([(path, truth), (path, truth)], classes, normalization=loaded.config.normalization)
    tiles = TileDataset(base, 96, train=False)
    per_image = len(tiles) // 2
    collector = ValidationCollector(classes, nms_threshold=0.5)
    for index in [*range(per_image), *range(per_image + 1, len(tiles))]:  # image 1 without its first tile
        image, target = tiles[index]
        collector.add(model([image]), [target])
    with caplog.at_level("WARNING"):
        ground_truths, predictions = collector.annotations()
    assert len(ground_truths) == len(predictions) == 1 and len(ground_truths[0]) == len(truth)
    assert "image 1 but not its first" in caplog.text


def test_validation_of_whole_images_is_evaluate_of_predict_beyond_the_box_heads_cap(tmp_path_factory, mosaic):
    """Whole images are validated as predict makes its files too: raw detections, then the NMS; the box head's
    own cap (after its NMS) would cut an image with more objects than it keeps."""
    from napari_faster_rcnn.core.data.annotations import Annotation
    from napari_faster_rcnn.core.training.validation import predict_dataset

    path, _ = mosaic
    loaded = load_checkpoint(tiny_checkpoint(tmp_path_factory))
    model, classes = loaded.model.eval(), loaded.classes
    model.roi_heads.detections_per_img = 5  # fewer than the image's objects below

    records, _ = predict_images(model, [path], classes)  # whole, raw: predict's files with --raw
    predicted = apply_thresholds(records[0].annotation, Thresholds(0.01, 0.5))  # then --score 0.01 --nms 0.5
    assert len(predicted) > 100
    # objects where the (untrained) model's boxes are, at every rank of its scores: an AP a cap would change
    order = np.argsort(-predicted.scores)[::10]
    truth = Annotation(predicted.boxes[order], [predicted.labels[i] for i in order])
    result = evaluate([truth], [predicted], 0.5, classes=classes)
    assert result.voc.map > 0.05

    dataset = DetectionDataset([(path, truth)], classes, normalization=loaded.config.normalization)
    collector = predict_dataset(model, dataset, score_threshold=0.01)
    assert model.roi_heads.detections_per_img == 5 and model.roi_heads.nms_thresh == 0.5  # (restored)
    _, (validated,) = collector.annotations()
    assert_same_detections(validated, predicted)
    validation = collector.compute()
    assert validation["val/voc_map"] == pytest.approx(result.voc.map, abs=1e-6)
    assert validation["val/coco_map"] == pytest.approx(result.coco.map, abs=1e-6)
