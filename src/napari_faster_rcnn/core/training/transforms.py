"""Augmentation of training images and their boxes with albumentations.

:class:`AugmentationConfig` holds plain values, so it saves to YAML and into a
checkpoint as a dict; :func:`build_transform` turns it into an albumentations
``Compose`` that moves the boxes with the pixels (``BboxParams`` in
``pascal_voc`` format, the labels as a label field).

Boxes follow the project's convention (see :mod:`.boxes`): continuous pixel
coordinates, the image spanning ``[0, W] x [0, H]``. albumentations'
``pascal_voc`` is the same, so a horizontal flip maps ``[x1, x2]`` to
``[W - x2, W - x1]`` (tested), to float32 precision: albumentations normalizes
the boxes to ``[0, 1]`` in float32 on the way.

**Scale** is a zoom inside a canvas of the same size (``Affine`` with
``keep_ratio``), not a resize of the whole image: torchvision's detector
resizes every image to its ``min_size`` anyway, which would undo a plain resize
and leave the objects' size relative to the image unchanged. Zooming in pushes
objects near the border partly out of the image; their boxes are cut at the
border (a box keeping less than ``min_visibility`` of its area is dropped).
Zooming out pads with black.

**Brightness and contrast** change pixels only, on the normalized ``[0, 1]``
values (:mod:`napari_faster_rcnn.core.data.intensity`): contrast multiplies
the values and brightness adds a fraction of the image's mean (not of 1), so a dim
image is never pushed to black with its boxes still attached. Boxes that the input already
had outside the image are clipped by the dataset before any transform (see
:mod:`.sample_boxes`), where they are counted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

#: The label field that carries class ids through albumentations.
LABEL_FIELD = "labels"


@dataclass(frozen=True)
class AugmentationConfig:
    """Which random augmentations training applies, and how strongly.

    Attributes
    ----------
    horizontal_flip_probability, vertical_flip_probability : float
        Chance of mirroring an image left-right and top-bottom. Photos have an
        up, so the vertical flip is off by default; turn it on for microscopy
        or aerial images.
    scale_range : (float, float)
        Zoom factors drawn uniformly from this range (1 = unchanged).
    scale_probability : float
        Chance of zooming at all.
    brightness_limit, contrast_limit : float
        Brightness and contrast change by a factor drawn from ``[-limit, limit]``.
    brightness_contrast_probability : float
        Chance of changing brightness and contrast.
    min_visibility : float
        After a zoom, a box keeping less than this fraction of its area inside
        the image is dropped (0 keeps every box with any area left).
    """

    horizontal_flip_probability: float = 0.5
    vertical_flip_probability: float = 0.0
    scale_range: tuple[float, float] = (0.8, 1.2)
    scale_probability: float = 0.5
    brightness_limit: float = 0.2
    contrast_limit: float = 0.2
    brightness_contrast_probability: float = 0.5
    min_visibility: float = 0.0

    def __post_init__(self):
        for name in _FRACTIONS:
            object.__setattr__(self, name, _number(name, getattr(self, name), 0.0, 1.0))
        object.__setattr__(self, "scale_range", _scale_range(self.scale_range))

    @classmethod
    def none(cls) -> AugmentationConfig:
        """No augmentation: every image and box passes unchanged."""
        return cls(
            horizontal_flip_probability=0.0,
            vertical_flip_probability=0.0,
            scale_range=(1.0, 1.0),
            scale_probability=0.0,
            brightness_limit=0.0,
            contrast_limit=0.0,
            brightness_contrast_probability=0.0,
        )

    @property
    def is_identity(self) -> bool:
        """True when no setting can change an image."""
        return not (
            self.horizontal_flip_probability
            or self.vertical_flip_probability
            or (self.scale_probability and self.scale_range != (1.0, 1.0))
            or (self.brightness_contrast_probability and (self.brightness_limit or self.contrast_limit))
        )

    def to_dict(self) -> dict:
        """Plain values (lists, not tuples) for YAML and checkpoints."""
        data = asdict(self)
        data["scale_range"] = list(self.scale_range)
        return data

    @classmethod
    def from_dict(cls, data: Mapping) -> AugmentationConfig:
        """Build from :meth:`to_dict`'s output; missing keys take their defaults.

        Raises
        ------
        ValueError
            For an unknown key or a bad value, naming the field.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"augmentation settings must be a mapping, got {type(data).__name__}")
        known = [f.name for f in fields(cls)]
        unknown = [key for key in data if key not in known]
        if unknown:
            raise ValueError(f"unknown augmentation setting {unknown[0]!r} (known: {', '.join(known)})")
        return cls(**dict(data))


_FRACTIONS = (
    "horizontal_flip_probability",
    "vertical_flip_probability",
    "scale_probability",
    "brightness_contrast_probability",
    "brightness_limit",
    "contrast_limit",
    "min_visibility",
)


def _number(name: str, value, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"augmentation {name} must be a number in [{low:g}, {high:g}], got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"augmentation {name} must be in [{low:g}, {high:g}], got {value!r}")
    return float(value)


def _scale_range(value) -> tuple[float, float]:
    try:
        low, high = value
    except (TypeError, ValueError):
        raise ValueError(f"augmentation scale_range must be two numbers (low, high), got {value!r}") from None
    low = _number("scale_range", low, 0.05, 20.0)
    high = _number("scale_range", high, 0.05, 20.0)
    if low > high:
        raise ValueError(f"augmentation scale_range must be (low, high) with low <= high, got {value!r}")
    return (low, high)


def build_transform(config: AugmentationConfig | None, train: bool, seed: int | None = None):
    """An albumentations ``Compose`` for images with ``bboxes`` and ``labels``.

    Parameters
    ----------
    config : AugmentationConfig or None
        None means no augmentation.
    train : bool
        False (validation, test, prediction) gives the identity transform,
        whatever ``config`` says.
    seed : int, optional
        Seeds the transform's own random state: two transforms built with the
        same seed give the same sequence of augmentations. (Inside DataLoader
        workers the dataset reseeds it per worker; see :mod:`.dataset`.)

    Returns
    -------
    albumentations.Compose
        Called as ``transform(image=HWC array, bboxes=(N, 4) pascal_voc,
        labels=(N,) ints)``.
    """
    import albumentations as A

    steps = []
    if train and config is not None:
        steps = _training_steps(A, config)
    if not any(isinstance(step, A.DualTransform) for step in steps):
        # albumentations warns about box parameters without a transform that
        # moves boxes; NoOp is such a transform that changes nothing
        steps.insert(0, A.NoOp())
    bbox_params = A.BboxParams(
        format="pascal_voc",
        label_fields=[LABEL_FIELD],
        min_visibility=config.min_visibility if (train and config is not None) else 0.0,
        # The dataset clips and drops bad boxes (counting them) before this runs;
        # these two only absorb float rounding at the border, so nothing crashes.
        clip=True,
        filter_invalid_bboxes=True,
    )
    return A.Compose(steps, bbox_params=bbox_params, seed=seed)


def _training_steps(A, config: AugmentationConfig) -> list:
    import cv2

    steps = []
    if config.horizontal_flip_probability:
        steps.append(A.HorizontalFlip(p=config.horizontal_flip_probability))
    if config.vertical_flip_probability:
        steps.append(A.VerticalFlip(p=config.vertical_flip_probability))
    if config.scale_probability and config.scale_range != (1.0, 1.0):
        steps.append(
            A.Affine(
                scale=config.scale_range,
                keep_ratio=True,
                fit_output=False,
                border_mode=cv2.BORDER_CONSTANT,
                fill=0,
                p=config.scale_probability,
            )
        )
    if config.brightness_contrast_probability and (config.brightness_limit or config.contrast_limit):
        steps.append(
            A.RandomBrightnessContrast(
                brightness_limit=config.brightness_limit,
                contrast_limit=config.contrast_limit,
                # brightness as a fraction of the image's mean, not of the type's maximum: a dim
                # image (a 12-bit signal under "none" normalization ends at 0.06) is never shifted to black
                brightness_by_max=False,
                p=config.brightness_contrast_probability,
            )
        )
    return steps
