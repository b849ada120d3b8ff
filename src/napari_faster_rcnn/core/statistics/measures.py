"""Dataset statistics: image and box sizes before and after the model's transform.

Choosing ``min_size``, ``max_size`` and anchors starts from what the data looks
like: how large the images are, how many boxes each holds, how wide, tall and
large the boxes are, per class, and what those become once torchvision's
``GeneralizedRCNNTransform`` has resized each image (short side to
``min_size`` unless the long side would then pass ``max_size``; then padded to
a multiple of 32). The anchors see the transformed boxes, not the stored ones.

Everything is vectorized: one array per quantity over all images or all boxes,
so 1,000 images with 20,000 boxes cost milliseconds once their sizes and
annotations are read. Reading them from a dataset folder is in :mod:`.folders`,
plots are in :mod:`.plots`; this module needs only numpy.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np

from napari_faster_rcnn.core.data.annotations import Annotation, class_list

#: torchvision's defaults for Faster R-CNN (``fasterrcnn_resnet50_fpn``)
DEFAULT_MIN_SIZE = 800
DEFAULT_MAX_SIZE = 1333
SIZE_DIVISIBLE = 32

#: The quantities, in the order of tables and plots (the tutorial's statistics).
QUANTITIES = ("image_height", "image_width", "boxes_per_image", "box_width", "box_height", "box_area")
IMAGE_QUANTITIES = QUANTITIES[:3]
BOX_QUANTITIES = QUANTITIES[3:]
LABELS = {
    "image_height": "image height (px)",
    "image_width": "image width (px)",
    "boxes_per_image": "boxes per image",
    "box_width": "box width (px)",
    "box_height": "box height (px)",
    "box_area": "box area (px²)",
}


def transformed_sizes(height, width, min_size: int = DEFAULT_MIN_SIZE, max_size: int = DEFAULT_MAX_SIZE):
    """Image sizes after ``GeneralizedRCNNTransform``'s resize (evaluation mode).

    The scale is ``min(min_size / short side, max_size / long side)`` and each
    side becomes ``floor(side * scale)`` in double precision, as
    ``torch.nn.functional.interpolate`` computes it; so a short side of 97 px
    becomes 799, not 800 (``800 / 97 * 97`` is 799.99...).

    Returns
    -------
    (resized height, resized width, scale) : int64, int64, float64 arrays
    """
    height = np.asarray(height, dtype=np.float64)
    width = np.asarray(width, dtype=np.float64)
    scale = np.minimum(min_size / np.minimum(height, width), max_size / np.maximum(height, width))
    return np.floor(height * scale).astype(np.int64), np.floor(width * scale).astype(np.int64), scale


def padded_sizes(height, width, size_divisible: int = SIZE_DIVISIBLE):
    """The size of the batch tensor of one resized image: each side up to a multiple of ``size_divisible``."""
    height, width = np.asarray(height), np.asarray(width)
    return (-(-height // size_divisible) * size_divisible, -(-width // size_divisible) * size_divisible)


class SummaryRow(NamedTuple):
    """One line of :meth:`DatasetStatistics.summary` (NaN where there are no values)."""

    quantity: str
    class_name: str | None  # None: all classes
    transformed: bool
    count: int
    minimum: float
    median: float
    mean: float
    maximum: float


@dataclass(eq=False)
class DatasetStatistics:
    """Per-image and per-box arrays of a dataset, as stored and after the model's transform.

    Boxes are measured cut at their image's border, as the reader shows them
    and training uses them. ``box_image`` and ``box_class`` index ``names``
    and ``classes``.
    """

    names: list[str]
    classes: list[str]
    image_height: np.ndarray  # (I,) int64
    image_width: np.ndarray
    box_image: np.ndarray  # (B,) int64
    box_class: np.ndarray  # (B,) int64
    box_width: np.ndarray  # (B,) float64
    box_height: np.ndarray
    min_size: int = DEFAULT_MIN_SIZE
    max_size: int = DEFAULT_MAX_SIZE
    clipped_boxes: int = 0
    unlabeled_images: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self):
        check_transform(self.min_size, self.max_size)
        self.transformed_height, self.transformed_width, self.scale = transformed_sizes(
            self.image_height, self.image_width, self.min_size, self.max_size
        )
        self.padded_height, self.padded_width = padded_sizes(self.transformed_height, self.transformed_width)
        # torchvision scales boxes by new / old size per axis (resize_boxes), not by the scale itself
        ratio_height = self.transformed_height / np.maximum(self.image_height, 1)
        ratio_width = self.transformed_width / np.maximum(self.image_width, 1)
        self.transformed_box_width = self.box_width * ratio_width[self.box_image]
        self.transformed_box_height = self.box_height * ratio_height[self.box_image]

    def with_transform(self, min_size: int, max_size: int) -> DatasetStatistics:
        """The same data under other ``min_size`` / ``max_size`` (nothing is read again)."""
        return replace(self, min_size=int(min_size), max_size=int(max_size))

    # --- counts -------------------------------------------------------------

    @property
    def images(self) -> int:
        return len(self.names)

    @property
    def boxes(self) -> int:
        return len(self.box_image)

    @property
    def boxes_per_image(self) -> np.ndarray:
        return np.bincount(self.box_image, minlength=self.images)

    @property
    def images_without_boxes(self) -> int:
        return int((self.boxes_per_image == 0).sum())

    @property
    def class_counts(self) -> dict[str, int]:
        """Boxes per class, in class order (classes without boxes count 0)."""
        counts = np.bincount(self.box_class, minlength=len(self.classes))
        return {name: int(count) for name, count in zip(self.classes, counts)}

    @property
    def class_image_counts(self) -> dict[str, int]:
        """Images holding at least one box of each class."""
        pairs = np.unique(self.box_class * max(self.images, 1) + self.box_image)
        counts = np.bincount(pairs // max(self.images, 1), minlength=len(self.classes))
        return {name: int(count) for name, count in zip(self.classes, counts)}

    # --- values -------------------------------------------------------------

    def class_mask(self, classes: Iterable[str] | str | None) -> np.ndarray:
        """Which boxes belong to ``classes`` (a name, several, or None for all)."""
        if classes is None:
            return np.ones(self.boxes, dtype=bool)
        wanted = [classes] if isinstance(classes, str) else list(classes)
        unknown = [name for name in wanted if name not in self.classes]
        if unknown:
            raise ValueError(f"unknown class {unknown[0]!r}; the classes are {', '.join(self.classes) or 'none'}")
        return np.isin(self.box_class, [self.classes.index(name) for name in wanted])

    def values(self, quantity: str, transformed: bool = False, classes=None) -> np.ndarray:
        """One quantity's values: per image (sizes, box counts) or per box.

        With ``classes``, box quantities keep those classes' boxes and
        ``boxes_per_image`` counts only their boxes (over every image); the image
        sizes stay those of all images.
        """
        if quantity == "image_height":
            return self.transformed_height if transformed else self.image_height
        if quantity == "image_width":
            return self.transformed_width if transformed else self.image_width
        if quantity == "boxes_per_image":
            mask = self.class_mask(classes)
            return np.bincount(self.box_image[mask], minlength=self.images)
        mask = self.class_mask(classes)
        width = self.transformed_box_width if transformed else self.box_width
        height = self.transformed_box_height if transformed else self.box_height
        if quantity == "box_width":
            return width[mask]
        if quantity == "box_height":
            return height[mask]
        if quantity == "box_area":
            return width[mask] * height[mask]
        raise ValueError(f"unknown quantity {quantity!r}; choose from {', '.join(QUANTITIES)}")

    def summary(self, per_class: bool = True) -> list[SummaryRow]:
        """Count, min, median, mean and max of every quantity before and after the transform;
        with ``per_class``, also of each class's boxes and boxes per image."""
        rows = []
        groups = [None] + (list(self.classes) if per_class else [])
        for class_name in groups:
            for quantity in QUANTITIES if class_name is None else ("boxes_per_image", *BOX_QUANTITIES):
                for transformed in (False, True):
                    values = self.values(quantity, transformed, class_name)
                    rows.append(SummaryRow(quantity, class_name, transformed, len(values), *_describe(values)))
        return rows

    def to_dict(self) -> dict:
        """A JSON-ready summary: counts, settings, per-quantity and per-class figures, skipped files."""

        def figures(row: SummaryRow) -> dict:
            names = ("minimum", "median", "mean", "maximum")
            return {"count": row.count, **{name: _json_number(getattr(row, name)) for name in names}}

        summary: dict = {}
        per_class: dict = {name: {} for name in self.classes}
        for row in self.summary():
            target = summary if row.class_name is None else per_class[row.class_name]
            target.setdefault(row.quantity, {})["after" if row.transformed else "before"] = figures(row)
        counts, image_counts = self.class_counts, self.class_image_counts
        return {
            "images": self.images,
            "boxes": self.boxes,
            "min_size": self.min_size,
            "max_size": self.max_size,
            "images_without_boxes": self.images_without_boxes,
            "unlabeled_images": self.unlabeled_images,
            "clipped_boxes": self.clipped_boxes,
            "classes": {name: {"boxes": counts[name], "images": image_counts[name]} for name in self.classes},
            "summary": summary,
            "per_class": per_class,
            "skipped": [{"file": str(path), "reason": reason} for path, reason in self.skipped],
        }


def _describe(values: np.ndarray) -> tuple[float, float, float, float]:
    if len(values) == 0:
        return (math.nan,) * 4
    values = np.asarray(values, dtype=np.float64)
    return float(values.min()), float(np.median(values)), float(values.mean()), float(values.max())


def _json_number(value: float):
    return None if value != value else (int(value) if float(value).is_integer() else round(value, 4))


def check_transform(min_size: int, max_size: int) -> None:
    if int(min_size) < 1 or int(max_size) < 1:
        raise ValueError(f"min_size and max_size must be positive, got {min_size} and {max_size}")


def dataset_statistics(
    items: Iterable[tuple[tuple[int, int], Annotation]],
    min_size: int = DEFAULT_MIN_SIZE,
    max_size: int = DEFAULT_MAX_SIZE,
    *,
    names: Sequence[str] | None = None,
    classes: Sequence[str] = (),
    skipped: Sequence[tuple] = (),
    unlabeled_images: int = 0,
) -> DatasetStatistics:
    """Statistics of images given as ``((height, width), Annotation)`` pairs.

    Parameters
    ----------
    items
        One pair per image; an image without boxes has an empty annotation.
    min_size, max_size
        The model's transform (torchvision's defaults 800 and 1333).
    names
        A name per image (default ``"0"``, ``"1"``, ...).
    classes
        Class names to list first and to count even without boxes (a layer's
        or a dataset's class list); labels not in it follow as first seen.
    skipped, unlabeled_images
        Carried into the result for reports: ``(file, reason)`` pairs of files
        not read, and how many images have no annotation file.
    """
    check_transform(min_size, max_size)
    items = list(items)
    sizes = np.array([(int(size[0]), int(size[1])) for size, _ in items], dtype=np.int64).reshape(-1, 2)
    if len(sizes) and (sizes <= 0).any():
        bad = int(np.flatnonzero((sizes <= 0).any(axis=1))[0])
        raise ValueError(f"image {bad} has the size {tuple(sizes[bad])}; heights and widths must be positive")
    annotations = [annotation for _, annotation in items]
    class_names = class_list(annotations, known=classes)
    lookup = {name: position for position, name in enumerate(class_names)}
    counts = np.array([len(a) for a in annotations], dtype=np.int64)
    box_image = np.repeat(np.arange(len(annotations), dtype=np.int64), counts)
    boxes = np.concatenate([a.boxes for a in annotations]) if counts.sum() else np.zeros((0, 4))
    box_class = np.array([lookup[label] for a in annotations for label in a.labels], dtype=np.int64)
    # cut at each image's border (as core.boxes.clip_boxes does per image); count the boxes that reach outside
    height, width = sizes[box_image, 0], sizes[box_image, 1]
    limits = np.stack([width, height, width, height], axis=1).astype(np.float64)
    clipped = np.clip(boxes, 0.0, limits)
    clipped_count = int((np.abs(clipped - boxes) > 1e-9).any(axis=1).sum()) if len(boxes) else 0
    return DatasetStatistics(
        names=list(names) if names is not None else [str(i) for i in range(len(items))],
        classes=class_names,
        image_height=sizes[:, 0].copy(),
        image_width=sizes[:, 1].copy(),
        box_image=box_image,
        box_class=box_class.reshape(-1),
        box_width=clipped[:, 2] - clipped[:, 0],
        box_height=clipped[:, 3] - clipped[:, 1],
        min_size=int(min_size),
        max_size=int(max_size),
        clipped_boxes=clipped_count,
        unlabeled_images=int(unlabeled_images),
        skipped=[(str(path), str(reason)) for path, reason in skipped],
    )
