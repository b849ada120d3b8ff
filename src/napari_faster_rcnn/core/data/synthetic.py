"""A synthetic detection dataset: circles, squares and triangles on a textured background.

Every image is a pure function of ``(seed, index)``, so a dataset of 10 images is
the first 10 images of a dataset of 1,000 with the same seed. Boxes are the
exact pixel extent of each drawn shape (``x2 = last column + 1``).
"""

from __future__ import annotations

import colorsys
from pathlib import Path

import numpy as np

from napari_faster_rcnn.core.data.annotations import Annotation, save_annotation
from napari_faster_rcnn.core.data.boxes import box_iou

SHAPE_CLASSES = ("circle", "square", "triangle")


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    from PIL import Image

    tint = np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.05, 0.25), rng.uniform(0.35, 0.75)))
    coarse = rng.normal(0.0, 0.18, size=(max(2, height // 24), max(2, width // 24), 3))
    coarse = np.clip((tint + coarse) * 255, 0, 255).astype(np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BILINEAR), dtype=np.float32)
    grain = rng.normal(0.0, 9.0, size=(height, width, 1)).astype(np.float32)
    return smooth + grain


def _shape_mask(kind: str, rows: np.ndarray, cols: np.ndarray, top: int, left: int, size: int, rng) -> np.ndarray:
    if kind == "circle":
        radius = size / 2
        return (rows - (top + radius - 0.5)) ** 2 + (cols - (left + radius - 0.5)) ** 2 <= radius**2
    if kind == "square":
        return (rows >= top) & (rows < top + size) & (cols >= left) & (cols < left + size)
    # An upright triangle whose apex wanders a little left or right.
    apex_col = left + size * rng.uniform(0.3, 0.7)
    bottom = top + size
    depth = (rows - top) / max(size, 1)
    left_edge = apex_col - depth * (apex_col - left)
    right_edge = apex_col + depth * (left + size - apex_col)
    return (rows >= top) & (rows < bottom) & (cols >= left_edge) & (cols < right_edge)


def make_synthetic_sample(
    seed: int,
    index: int,
    height: int = 128,
    width: int = 128,
    objects: tuple[int, int] = (1, 5),
    sizes: tuple[int, int] = (14, 40),
    classes=SHAPE_CLASSES,
) -> tuple[np.ndarray, Annotation]:
    """One ``(height, width, 3)`` uint8 image and its annotation, from ``(seed, index)``."""
    rng = np.random.default_rng([seed, index])
    image = _background(rng, height, width)
    rows, cols = np.mgrid[0:height, 0:width]
    boxes, labels = [], []
    wanted = int(rng.integers(objects[0], objects[1] + 1))
    for _ in range(wanted * 20):
        if len(boxes) == wanted:
            break
        size = int(rng.integers(sizes[0], min(sizes[1], height, width) + 1))
        top = int(rng.integers(0, height - size + 1))
        left = int(rng.integers(0, width - size + 1))
        kind = classes[int(rng.integers(len(classes)))]
        mask = _shape_mask(kind, rows, cols, top, left, size, rng)
        if mask.sum() < 16:
            continue
        mask_rows, mask_cols = np.nonzero(mask)
        box = np.array([mask_cols.min(), mask_rows.min(), mask_cols.max() + 1, mask_rows.max() + 1], dtype=np.float64)
        if boxes and box_iou(box[None], np.array(boxes)).max() > 0.0:
            continue  # keep shapes apart so every box stays fully visible
        hue = rng.random()
        colour = np.array(colorsys.hsv_to_rgb(hue, rng.uniform(0.6, 1.0), rng.uniform(0.55, 1.0))) * 255
        shade = 1.0 + 0.15 * (cols[mask] - cols[mask].mean()) / max(size, 1)
        image[mask] = colour[None, :] * shade[:, None]
        boxes.append(box)
        labels.append(kind)
    image = np.clip(image, 0, 255).astype(np.uint8)
    annotation = Annotation(boxes=np.array(boxes).reshape(-1, 4), labels=labels, classes=list(classes))
    return image, annotation


def make_synthetic_dataset(n_images: int = 16, seed: int = 0, **options) -> list[tuple[np.ndarray, Annotation]]:
    """``n_images`` synthetic images with their annotations (see :func:`make_synthetic_sample`)."""
    return [make_synthetic_sample(seed, index, **options) for index in range(n_images)]


def write_synthetic_dataset(folder: str | Path, n_images: int = 16, seed: int = 0, **options) -> Path:
    """Write a synthetic dataset as ``folder/input/NNNN.png`` + ``folder/target/NNNN.pt``."""
    from PIL import Image

    folder = Path(folder)
    (folder / "input").mkdir(parents=True, exist_ok=True)
    (folder / "target").mkdir(parents=True, exist_ok=True)
    digits = max(3, len(str(n_images - 1)))
    for index in range(n_images):
        image, annotation = make_synthetic_sample(seed, index, **options)
        name = f"{index:0{digits}d}"
        Image.fromarray(image).save(folder / "input" / f"{name}.png")
        save_annotation(folder / "target" / f"{name}.pt", annotation)
    return folder
