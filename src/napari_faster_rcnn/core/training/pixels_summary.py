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

from napari_faster_rcnn.core.data.channels import channels_seen, check_channels
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
    return (f"pixels: {stored}; the detector sees {channels_seen(check_channels(channels), microscope)}; "
            f"{rule.describe(kinds)}")


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
