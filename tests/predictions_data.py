"""Raw detections for a dataset: clusters of scored boxes around the true objects, plus false ones."""

from __future__ import annotations

import numpy as np

from napari_faster_rcnn.core.data.annotations import Annotation, load_annotation, save_annotation


def raw_detections_for(truth: Annotation, seed: int, per_object: int = 6, false: int = 3, height=64, width=80):
    """What a model with NMS and score threshold off might give for an image with ``truth``."""
    rng = np.random.default_rng(seed)
    boxes, labels, scores = [], [], []
    for box, label in zip(truth.boxes, truth.labels):
        size = np.array([box[2] - box[0], box[3] - box[1]] * 2)
        for _ in range(per_object):
            boxes.append(box + rng.normal(0, 0.08, 4) * size)
            labels.append(label if rng.random() < 0.85 else "circle")
            scores.append(rng.uniform(0.05, 1.0))
    for _ in range(false):
        x, y = rng.uniform(0, width - 12), rng.uniform(0, height - 12)
        boxes.append([x, y, x + rng.uniform(5, 12), y + rng.uniform(5, 12)])
        labels.append("square")
        scores.append(rng.uniform(0.05, 0.6))
    boxes = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    # inside the image, as a model's boxes are (and as the reader clips them)
    limits = np.array([width, height])
    boxes[:, :2] = np.clip(boxes[:, :2], 0, limits - 1)
    boxes[:, 2:] = np.clip(np.maximum(boxes[:, 2:], boxes[:, :2] + 1), 0, limits)
    return Annotation(boxes, labels, np.array(scores))


def write_predictions(dataset, name="predictions", seed=0) -> list[Annotation]:
    """Write raw detections for every image of a tutorial-layout ``dataset`` into ``dataset/../name``
    (a sibling of ``input/``, so the reader finds the images); return them in file-name order."""
    raw = []
    for index, path in enumerate(sorted((dataset / "target").glob("*.pt"))):
        annotation = raw_detections_for(load_annotation(path), seed + index)
        save_annotation(dataset / name / path.name, annotation)
        raw.append(annotation)
    return raw
