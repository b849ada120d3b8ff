"""Validation metrics of a training run: the epoch's detections against its ground truth.

Every validation step adds the model's detections and the batch's targets to a
:class:`ValidationCollector`; at the end of the epoch :meth:`~ValidationCollector.compute`
turns them into Pascal VOC AP at the IoU threshold (the tutorial's metric) and
COCO mAP@[.5:.95] (faster-coco-eval), overall and per class, through
:func:`.metrics.evaluate`, the same code ``napari-faster-rcnn evaluate`` runs.

**As predict**: the detections come raw (the box head without NMS, predict's raw cap; the training module and
:func:`predict_dataset` run it so) and the per-class NMS at the model's ``box_nms_thresh``
(:attr:`ValidationCollector.nms_threshold`) runs here, on each whole image: the metrics are those of
``predict --score 0.01`` then ``evaluate``, also where an image has more objects than the box head's
``box_detections_per_img`` (its cap comes after its NMS; predict's raw cap of 1,000 before it).

**Tiles**: validation on tiles (:class:`~.tile_dataset.TileDataset`, images larger than a tile)
measures whole images, as ``evaluate`` measures the files of ``predict``: each tile's detections are
shifted back to their image and the tiles of an image merged by tiled prediction's own merge
(:func:`~napari_faster_rcnn.core.prediction.tile_merge.merge_tile_detections`: an object cut by a
tile's border is one box), then compared with the image's own boxes. As ``predict`` does, the tiles'
detections are raw (the training module runs the box head without NMS on tiles) and the per-class NMS
at the model's ``box_nms_thresh`` (:attr:`ValidationCollector.nms_threshold`) runs on the merged
image: the metrics are those of ``predict --score 0.01`` then ``evaluate``. Each tile evaluated
alone, its cut boxes clipped, would count a cut object once in every tile it is in.

Under DDP each process sees a part of the validation set, so the parts are
gathered first with ``torch.distributed.all_gather_object`` (the images have
different numbers of boxes, which ``all_gather`` of tensors cannot carry).
Lightning's distributed sampler pads the parts to equal length by repeating
images; every image is kept once, by its ``image_id``, and the images are
ranked by it, so that the metrics equal those of one process on the same set.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch

from napari_faster_rcnn.core.data.annotations import Annotation
from napari_faster_rcnn.core.evaluation.metrics import evaluate

logger = logging.getLogger(__name__)

#: The metric best checkpoints and early stopping watch (higher is better).
MONITOR = "val/voc_map"


class ValidationCollector:
    """Detections and ground truth of one validation epoch, by image id."""

    def __init__(self, classes, nms_threshold: float = 0.5):
        self.classes = list(classes)
        self.nms_threshold = float(nms_threshold)  # on a tiled image's merged detections
        self._images: dict[int, tuple] = {}

    def __len__(self) -> int:
        return len(self._images)

    def reset(self) -> None:
        self._images = {}

    def add(self, detections, targets) -> None:
        """Keep a batch: torchvision's output dicts and the batch's target dicts (a tile's with where it
        is, see :class:`~.tile_dataset.TileDataset`)."""
        for detection, target in zip(detections, targets):
            image_id = int(target["image_id"])
            entry = (
                target["boxes"].detach().cpu().numpy().astype(np.float64),
                target["labels"].detach().cpu().numpy(),
                detection["boxes"].detach().float().cpu().numpy().astype(np.float64),
                detection["labels"].detach().cpu().numpy(),
                detection["scores"].detach().float().cpu().numpy().astype(np.float64),
            )
            if "source" not in target:  # a whole image: its detections after the NMS, now (the raw ones can be 1,000)
                keep = self._kept(*entry[2:])
                entry = (entry[0], entry[1], entry[2][keep], entry[3][keep], entry[4][keep])
            else:  # a tile: its image, its place, and (its first tile) the image's own boxes
                place = {key: target[key] for key in ("source", "tile", "offset", "image_size", "tile_side", "overlap")}
                if "image_boxes" in target:
                    place["image_boxes"] = target["image_boxes"].detach().cpu().numpy().astype(np.float64)
                    place["image_labels"] = target["image_labels"].detach().cpu().numpy()
                entry = (*entry, place)
            self._images[image_id] = entry

    def gather(self) -> None:
        """Merge the images of every process (under ``torch.distributed``) into each process's collector."""
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return
        world = torch.distributed.get_world_size()
        if world == 1:
            return
        parts = [None] * world
        torch.distributed.all_gather_object(parts, self._images)
        merged: dict[int, tuple] = {}
        for part in parts:
            merged.update(part)
        self._images = merged

    def annotations(self) -> tuple[list[Annotation], list[Annotation]]:
        """``(ground_truths, predictions)`` by increasing image id, labels as class names."""
        names = np.array(["__background__", *self.classes], dtype=object)
        ground_truths, predictions = [], []
        for gt_boxes, gt_labels, boxes, labels, scores in self._whole_images():
            ground_truths.append(Annotation(gt_boxes, list(names[gt_labels]), classes=self.classes))
            predictions.append(Annotation(boxes, list(names[labels]), scores))
        return ground_truths, predictions

    def _whole_images(self) -> list[tuple]:
        """``(gt boxes, gt labels, boxes, labels, scores)`` per image, by increasing image id: a tiled
        image's tiles merged as tiled prediction merges them, at the place of its first tile."""
        from napari_faster_rcnn.core.prediction.tile_merge import merge_tile_detections
        from napari_faster_rcnn.core.prediction.tiles import tile_grid

        images, tiled, positions = [], {}, {}
        for image_id in sorted(self._images):
            entry = self._images[image_id]
            if len(entry) == 5:  # a whole image (its NMS done as it was added)
                images.append(entry)
                continue
            source = entry[5]["source"]
            if source not in tiled:
                tiled[source], positions[source] = [], len(images)
                images.append(None)  # (the merged image, below)
            tiled[source].append(entry)
        for source, tiles in tiled.items():
            place = tiles[0][5]
            truth = next((entry[5] for entry in tiles if "image_boxes" in entry[5]), None)
            if truth is None:  # only part of the image's tiles were validated (a limit on validation batches)
                logger.warning("validation saw %d tiles of image %s but not its first, which carries its boxes: "
                               "the image is left out of the metrics", len(tiles), source)
                images[positions[source]] = None
                continue
            height, width = (int(side) for side in place["image_size"])
            grid = tile_grid(height, width, int(place["tile_side"]), float(place["overlap"]))
            offsets = [np.tile(np.asarray(entry[5]["offset"], np.float64), 2) for entry in tiles]
            boxes = np.concatenate([entry[2] + offset for entry, offset in zip(tiles, offsets)]).reshape(-1, 4)
            scores = np.concatenate([entry[4] for entry in tiles])
            labels = np.concatenate([entry[3] for entry in tiles]).astype(np.int64)
            tile_ids = np.concatenate([np.full(len(entry[2]), int(entry[5]["tile"])) for entry in tiles])
            merged = merge_tile_detections(grid, boxes, scores, labels, tile_ids)
            keep = self._kept(merged.boxes, merged.labels, merged.scores)
            whole = (truth["image_boxes"].reshape(-1, 4), truth["image_labels"], merged.boxes[keep],
                     merged.labels[keep], merged.scores[keep])
            images[positions[source]] = whole
        return [image for image in images if image is not None]

    def _kept(self, boxes: np.ndarray, labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Indices of the detections predict's own NMS (Tune predictions' and thresholds.json's) keeps at
        :attr:`nms_threshold`, every score kept."""
        from napari_faster_rcnn.core.prediction.thresholds import filter_detections

        annotation = Annotation(boxes.reshape(-1, 4), [str(label) for label in labels], scores)
        return filter_detections(annotation, score_threshold=-math.inf, nms_threshold=self.nms_threshold)

    def compute(self, iou_threshold: float = 0.5) -> dict[str, float]:
        """The epoch's metrics: ``val/voc_map``, ``val/coco_map``, ``val/coco_map50``,
        ``val/coco_map75``, ``val/ap/<class>`` (VOC AP) and ``val/coco_ap/<class>``.

        NaN where there is nothing to average (a class without ground truth).
        """
        ground_truths, predictions = self.annotations()
        if not any(len(annotation) for annotation in ground_truths):
            logger.warning("the validation images have no boxes: their AP is not defined (NaN)")
        result = evaluate(ground_truths, predictions, iou_threshold, classes=self.classes)
        metrics = {
            MONITOR: result.voc.map,
            "val/coco_map": result.coco.map,
            "val/coco_map50": result.coco.map50,
            "val/coco_map75": result.coco.map75,
        }
        for name in self.classes:
            metrics[f"val/ap/{name}"] = result.voc.ap.get(name, math.nan)
            metrics[f"val/coco_ap/{name}"] = result.coco.per_class.get(name, math.nan)
        return {key: float(value) for key, value in metrics.items()}


def predict_dataset(model, dataset, score_threshold: float | None = 0.01, batch_size: int = 8, progress=None):
    """A :class:`ValidationCollector` of ``model``'s detections on every item of ``dataset``, as ``predict``
    with ``--score score_threshold`` makes them: raw detections (no NMS, predict's raw cap), then the model's
    NMS (in the collector).

    Runs in eval mode without gradients, on the model's device, with the box
    head's score threshold set to ``score_threshold`` for the run (None: the
    model's own). ``progress(done, total)`` is called after each batch.
    """
    from napari_faster_rcnn.core.prediction.settings import DetectionSettings, raw_detection_settings
    from napari_faster_rcnn.core.training.dataset import collate_detections

    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_detections)
    device = next(model.parameters()).device
    own = DetectionSettings.of_model(model)
    collector = ValidationCollector(dataset.classes, nms_threshold=own.nms_thresh)
    score = own.score_thresh if score_threshold is None else float(score_threshold)
    cap = max(raw_detection_settings().detections_per_img, own.detections_per_img)  # (predict's raw cap)
    previous = DetectionSettings(score, 1.0, cap).apply(model)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for images, targets in loader:
                collector.add(model([image.to(device) for image in images]), targets)
                if progress is not None:
                    progress(len(collector), len(dataset))
    finally:
        previous.apply(model)
        model.train(was_training)
    return collector
