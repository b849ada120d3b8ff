"""What a training run does with its images' pixels, in one line at its start: their types and
channels, the channels the detector sees, and how their values become ``[0, 1]``.

A run on 16-bit or float data (a microscope's stains, optical densities from colour deconvolution)
should say what it did with them: the ``fit`` command prints :func:`pixels_line` after the data
split, and the "Train detector" widget shows it in its log. Headers only: no pixels are read.

    pixels: float32, 3 channels (C); the detector sees channel 0 (as gray); values scaled per image
    from its 1st to its 99.8th percentile (normalization auto)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from napari_faster_rcnn.core.data.channels import check_channels
from napari_faster_rcnn.core.data.intensity import Normalization
from napari_faster_rcnn.core.data.stack_files import series_layout

__all__ = ["dataset_pixels_line", "pixels_line"]

#: Image files whose headers are looked at for their channels (a folder's first ones).
LOOKED_AT = 20


def pixels_line(images: Sequence[Path], dtypes: Sequence, normalization, channels) -> str:
    """The line for training images ``images`` of types ``dtypes`` (one per image), trained with the
    rule ``normalization`` and the ``channels`` choice of the model's config."""
    kinds = sorted({np.dtype(dtype).name for dtype in dtypes}) or ["no images"]
    counts = sorted({_channel_count(path) for path in dict.fromkeys(Path(p) for p in images[:LOOKED_AT])})
    stored = ", ".join(kinds)
    microscope = [count for count in counts if count]
    if microscope:
        stored += f", {'/'.join(map(str, microscope))} channels (C)"
    rule = Normalization.parse(normalization)
    return f"pixels: {stored}; the detector sees {_seen(check_channels(channels), microscope)}; {_scaled(rule, kinds)}"


def dataset_pixels_line(dataset, config=None) -> str:
    """:func:`pixels_line` of a :class:`~.dataset.DetectionDataset` (its images, their types from their
    headers) trained by the model ``config`` (its normalization and channels, which the data module gives
    the dataset when training starts; None: the dataset's own)."""
    source = config if config is not None else dataset
    return pixels_line([sample.image for sample in dataset.samples], dataset.image_dtypes, source.normalization,
                       source.channels)


def _channel_count(path: Path) -> int:
    layout = series_layout(path)
    if layout is None or layout.channel_axis != "C":
        return 0
    return int(layout.shape[layout.axes.index("C")])


def _seen(channels, microscope: list[int]) -> str:
    if channels is None:
        if not microscope:
            return "gray and RGB images as stored"
        if max(microscope) > 3:
            return "no channels yet: more than 3 need a choice (the model's channels)"
        channels = tuple(range(max(microscope)))
    if len(channels) == 1:
        return f"channel {channels[0]} (as gray)"
    if len(channels) == 2:
        return f"channels {channels[0]} and {channels[1]} (a third of zeros)"
    return f"channels {', '.join(map(str, channels))} in that order"


def _scaled(rule: Normalization, kinds: list[str]) -> str:
    low, high = (f"{value:g}" for value in rule.percentiles)
    per_image = f"scaled per image from its {_ordinal(low)} to its {_ordinal(high)} percentile"
    if rule.mode == "percentiles":
        text = f"values {per_image}"
    elif rule.mode == "range":
        text = f"values from {rule.low:g} to {rule.high:g} scaled to 0 to 1, clipped"
    elif rule.mode == "none":
        text = "values on their type's own scale (8-bit / 255, 16-bit / 65535)"
    elif kinds == ["uint8"]:
        text = "values divided by 255"
    elif "uint8" in kinds:
        text = f"8-bit values divided by 255, others {per_image}"
    else:
        text = f"values {per_image}"
    return f"{text} (normalization {rule.to_text()})"


def _ordinal(number: str) -> str:
    if number.endswith("1") and not number.endswith("11"):
        return f"{number}st"
    if number.endswith("2") and not number.endswith("12"):
        return f"{number}nd"
    if number.endswith("3") and not number.endswith("13"):
        return f"{number}rd"
    return f"{number}th"
