"""Shared by bench_ranking.py and bench_active_loop.py: synthetic shapes in several styles, a plain
training loop for the ``cpu`` preset, AP@0.5 on held-out images, and AUROC.

Styles (all from :func:`make_synthetic_sample`, then changed as a whole image):

- ``plain``: the shapes as the synthetic dataset draws them (what the model is trained on);
- ``inverted``: every colour inverted (255 - value);
- ``faint``: contrast cut to 30% around the image's mean, as a dim, hazy image;
- ``noisy``: heavy Gaussian noise (sigma 45 grey levels);
- ``small``: shapes of 7-11 px instead of 12-28 px.
"""

from __future__ import annotations

import numpy as np
import torch

from napari_faster_rcnn.core.data.synthetic import SHAPE_CLASSES, make_synthetic_sample
from napari_faster_rcnn.core.evaluation.metrics import voc_evaluation
from napari_faster_rcnn.core.model.config import preset
from napari_faster_rcnn.core.model.detector import build_model
from napari_faster_rcnn.core.prediction.run import predict_images

UNSEEN = ("inverted", "faint", "noisy", "small")
SIZE = 64
CLASSES = list(SHAPE_CLASSES)


def styled_sample(seed: int, index: int, style: str, size: int = SIZE):
    """One ``(image, annotation)`` of ``style`` (see the module docstring)."""
    sizes = (7, 11) if style == "small" else (12, 28)
    image, annotation = make_synthetic_sample(seed, index, height=size, width=size, objects=(1, 4), sizes=sizes)
    image = image.astype(np.float32)
    rng = np.random.default_rng([seed, index, 7])
    if style == "inverted":
        image = 255.0 - image
    elif style == "faint":
        image = image.mean() + 0.3 * (image - image.mean())
    elif style == "noisy":
        image = image + rng.normal(0.0, 45.0, image.shape)
    elif style not in ("plain", "small"):
        raise ValueError(style)
    return np.clip(image, 0, 255).astype(np.uint8), annotation


def new_model(seed: int):
    torch.manual_seed(seed)
    return build_model(preset("cpu", CLASSES, min_size=SIZE, max_size=SIZE))


def train(model, samples, steps: int, seed: int, batch_size: int = 8, learning_rate: float = 1e-3):
    """``steps`` AdamW steps on ``samples`` (random batches, random horizontal flips)."""
    rng = np.random.default_rng(seed)
    ids = {name: k + 1 for k, name in enumerate(CLASSES)}
    optimizer = torch.optim.AdamW(model.parameters(), learning_rate, weight_decay=1e-4)
    model.train()
    for _ in range(steps):
        images, targets = [], []
        for index in rng.integers(0, len(samples), min(batch_size, len(samples))):
            image, annotation = samples[index]
            tensor = torch.from_numpy(image).permute(2, 0, 1).float() / 255.0
            boxes = torch.tensor(np.asarray(annotation.boxes), dtype=torch.float32).reshape(-1, 4)
            if rng.random() < 0.5:
                tensor = tensor.flip(-1)
                boxes = torch.stack([SIZE - boxes[:, 2], boxes[:, 1], SIZE - boxes[:, 0], boxes[:, 3]], dim=1)
            images.append(tensor)
            targets.append({"boxes": boxes, "labels": torch.tensor([ids[name] for name in annotation.labels],
                                                                   dtype=torch.int64)})
        loss = sum(model(images, targets).values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    model.eval()
    return model


def ap50(model, samples) -> float:
    """VOC mAP at IoU 0.5 of ``model`` on ``samples`` (the model's own score floor and NMS)."""
    records, _ = predict_images(model, [image for image, _ in samples], CLASSES, batch_size=16, raw=False,
                                read_ahead=0)
    result = voc_evaluation([annotation for _, annotation in samples], [r.annotation for r in records], 0.5, CLASSES)
    return float(result.map)


def auroc(scores, positive) -> float:
    """P(score of a positive > score of a negative), ties counting half (Mann-Whitney)."""
    scores, positive = np.asarray(scores, float), np.asarray(positive, bool)
    pos, neg = scores[positive], scores[~positive]
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))
