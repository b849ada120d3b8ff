"""What the anchor tools read: the image and boxes as the model sees them, a folder's boxes,
and anchor settings typed as text.

- :func:`transform_image` resizes and pads an image exactly as torchvision's
  ``GeneralizedRCNNTransform`` does (bilinear ``interpolate`` with the same
  scale factor, then padding at the bottom and right to a multiple of 32). The
  model pads *after* normalizing, with zeros, which is the mean colour in pixel
  values; the padding is filled with that colour, so the picture is what the
  network gets.
- :func:`transform_boxes` scales boxes as torchvision's ``resize_boxes`` does.
- :func:`iter_folder_items` reads a dataset folder's image sizes (headers only)
  and annotations, for a ``thread_worker``.
- :func:`parse_anchor_text` and :func:`anchor_settings` turn what a person types,
  ``"(16, 32), (64,)"`` or one line per map, into a checked :class:`.ModelConfig`.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from napari_faster_rcnn.core.data.annotations import Annotation
from napari_faster_rcnn.core.data.channels import as_rgb
from napari_faster_rcnn.core.data.folders import discover_dataset
from napari_faster_rcnn.core.model.config import ModelConfig
from napari_faster_rcnn.core.model.config_rules import ConfigError
from napari_faster_rcnn.core.model.detector import padded_image_size, resized_image_size
from napari_faster_rcnn.core.statistics.folders import read_sample  # the same reading, and skipping, as the statistics

__all__ = [
    "FolderItems",
    "anchor_settings",
    "format_anchor_text",
    "iter_folder_items",
    "parse_anchor_text",
    "transform_boxes",
    "transform_image",
    "transform_scale",
]


# --- the model's view ---------------------------------------------------------------------


def transform_scale(config: ModelConfig, image_size: tuple[int, int]) -> tuple[float, float]:
    """``(x, y)`` factors from an image's pixels to the resized image's: new size / old size per
    axis, as torchvision's ``resize_boxes`` scales boxes."""
    height, width = image_size
    new_height, new_width = resized_image_size(config, image_size)
    return new_width / width, new_height / height


def transform_boxes(config: ModelConfig, image_size: tuple[int, int], boxes) -> np.ndarray:
    """xyxy boxes of an image, cut at its border (as training cuts them), on the resized image."""
    scale_x, scale_y = transform_scale(config, image_size)
    height, width = image_size
    boxes = np.clip(np.asarray(boxes, dtype=np.float64).reshape(-1, 4), 0.0, [width, height, width, height])
    return boxes * [scale_x, scale_y, scale_x, scale_y]


def transform_image(config: ModelConfig, image: np.ndarray) -> np.ndarray:
    """The image as the model's batch holds it: resized, padded, as ``(H, W, 3)`` of its own dtype.

    Gray and RGBA images become RGB. The padding is ``config.image_mean`` in the
    image's value range (255 for 8 bits, the type's maximum for other integers, 1
    for floats): what the zero padding of the normalized batch is in pixels.
    """
    import torch

    image = as_rgb(np.asarray(image))
    height, width = image.shape[:2]
    scale = min(config.min_size / min(height, width), config.max_size / max(height, width))
    tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None]
    with torch.no_grad():
        resized = torch.nn.functional.interpolate(tensor, scale_factor=scale, mode="bilinear",
                                                  recompute_scale_factor=True, align_corners=False)[0]
    resized = resized.permute(1, 2, 0).numpy()
    if resized.shape[:2] != resized_image_size(config, (height, width)):  # pragma: no cover - a torch change
        raise RuntimeError(f"interpolate gave {resized.shape[:2]} for {(height, width)} at scale {scale}")
    integer = np.issubdtype(image.dtype, np.integer)
    top = float(np.iinfo(image.dtype).max) if integer else 1.0
    padded = np.empty((*padded_image_size(config, (height, width)), 3), dtype=image.dtype)
    mean = np.asarray(config.image_mean) * top
    padded[...] = np.rint(mean) if integer else mean
    if integer:
        resized = np.clip(np.rint(resized), np.iinfo(image.dtype).min, top)
    padded[:resized.shape[0], :resized.shape[1]] = resized
    return padded


# --- a dataset folder -----------------------------------------------------------------------


@dataclass(eq=False)
class FolderItems:
    """A dataset folder's images with their sizes and boxes.

    ``items`` holds ``((height, width), Annotation)`` per readable image (an
    image without an annotation file has no boxes); ``images`` its file, ``names``
    its stem; ``skipped`` the ``(file, reason)`` of what could not be read.
    A stack (time, z) gives one item per LABELED plane (``names`` ``stem[t]``,
    ``planes`` its leading coordinates, None for a 2-D image); a stack without
    a labeled plane gives none: an unlabeled plane is never an image without objects.
    """

    root: Path
    names: list[str]
    images: list[Path]
    items: list[tuple[tuple[int, int], Annotation]]
    classes: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    planes: list[tuple[int, ...] | None] = field(default_factory=list)


def iter_folder_items(folder: str | Path, workers: int = 8, report_every: int = 25) -> Iterator[tuple[int, int]]:
    """Read a dataset folder's image sizes (headers only) and annotations, yielding progress.

    A generator for a ``thread_worker``: yields ``(images done, images in all)``
    and returns :class:`FolderItems`.

    Raises
    ------
    DatasetError
        When the folder is not a dataset.
    """
    root = Path(folder)
    dataset = discover_dataset(root)
    total = len(dataset.samples)
    result = FolderItems(root, [], [], [], skipped=[(str(path), reason) for path, reason in dataset.skipped])
    yield 0, total
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for done, (sample, (size, annotation, problems)) in enumerate(
            zip(dataset.samples, pool.map(read_sample, dataset.samples)), start=1
        ):
            result.skipped.extend((str(path), reason) for path, reason in problems)
            if size is not None:
                annotation = annotation if annotation is not None else Annotation()
                result.classes.extend(name for name in annotation.classes or () if name not in result.classes)
                planes = annotation.labeled_planes.tolist() if annotation.is_stack else [None]
                for plane in planes:
                    result.items.append((size, annotation if plane is None else annotation.on_plane(plane)))
                    result.images.append(sample.image)
                    result.names.append(sample.name if plane is None else f"{sample.name}[{','.join(map(str, plane))}]")
                    result.planes.append(None if plane is None else tuple(plane))
            if done % report_every == 0 or done == total:
                yield done, total
    for _, annotation in result.items:
        result.classes.extend(label for label in annotation.labels if label not in result.classes)
    return result


# --- settings typed as text ----------------------------------------------------------------


def parse_anchor_text(text: str, field: str = "anchor_sizes") -> tuple[tuple[float, ...], ...] | None:
    """Anchor sizes or aspect ratios as typed: ``"(16, 32), (64,)"`` (torchvision's tuple of
    tuples, with or without the outer brackets) or one line per map (``"16, 32"`` then ``"64"``;
    ``;`` also ends a map). One flat tuple is one map. Empty text: None (the defaults).

    Raises
    ------
    ConfigError
        Naming ``field``, for text that is not numbers in that form.
    """
    text = text.strip()
    if not text:
        return None
    if re.search(r"[()\[\]]", text):
        try:
            value = ast.literal_eval(text)  # literals only: nothing in the text can run
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            raise ConfigError(f"cannot read {text!r}: write one tuple per feature map, e.g. (16, 32), (64,)",
                              field) from None
        if _is_number(value) or (isinstance(value, (tuple, list)) and all(_is_number(v) for v in value)):
            value = (value,)
        if not isinstance(value, (tuple, list)) or not value:
            raise ConfigError(f"cannot read {text!r}: expected numbers in tuples, one per feature map", field)
        maps = []
        for entry in value:
            entry = (entry,) if _is_number(entry) else entry
            if not isinstance(entry, (tuple, list)) or not entry or not all(_is_number(v) for v in entry):
                raise ConfigError(f"cannot read {entry!r} in {text!r}: each feature map needs a tuple of numbers",
                                  field)
            maps.append(tuple(float(v) for v in entry))
        return tuple(maps)
    maps = []
    for line in re.split(r"[\n;]", text):
        words = [word for word in re.split(r"[,\s]+", line.strip()) if word]
        if not words:
            continue
        try:
            maps.append(tuple(float(word) for word in words))
        except ValueError:
            raise ConfigError(f"cannot read {line.strip()!r}: expected numbers, e.g. 16, 32", field) from None
    return tuple(maps) or None


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def format_anchor_text(values) -> str:
    """The text :func:`parse_anchor_text` reads back: ``"(16, 32), (64,)"``, whole numbers without ``.0``."""
    def number(value: float) -> str:
        return str(int(value)) if float(value).is_integer() else f"{float(value):g}"

    return ", ".join("(" + ", ".join(map(number, entry)) + ("," if len(entry) == 1 else "") + ")"
                     for entry in values)


def anchor_settings(base: ModelConfig, sizes_text: str = "", ratios_text: str = "", **changes) -> ModelConfig:
    """``base`` with ``changes`` (backbone, fpn, min_size, ...) and anchors from text.

    Empty text keeps the backbone's default; one tuple of ratios applies to every
    feature map. A change of backbone or FPN without ``returned_layers`` resets
    them to the new backbone's default.

    Raises
    ------
    ConfigError
        Naming the field: unreadable text, or a count of tuples that does not
        match the feature maps.
    """
    if ("backbone" in changes or "fpn" in changes) and "returned_layers" not in changes:
        if changes.get("backbone", base.backbone) != base.backbone or changes.get("fpn", base.fpn) != base.fpn:
            changes["returned_layers"] = None
    sizes = parse_anchor_text(sizes_text, "anchor_sizes")
    ratios = parse_anchor_text(ratios_text, "aspect_ratios")
    shape = base.replace(**changes, anchor_sizes=None, aspect_ratios=None)
    if ratios is not None and len(ratios) == 1:
        ratios = ratios * shape.feature_map_count
    return base.replace(**changes, anchor_sizes=sizes, aspect_ratios=ratios)
