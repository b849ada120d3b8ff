"""Channels: which of an image's channels the detector sees, and in which order.

The backbone takes three channels. A model's ``channels`` (in its config, so in
its checkpoint, and prediction repeats it) chooses them from the image's channel
axis: the samples of a pixel (red 0, green 1, blue 2 of an RGB image) or the
``C`` axis of a multichannel TIFF, OME-TIFF or Zarr (channel ``0`` is the
first). Written as a tuple of indices or the text ``"0,2"``:

``None`` (the default)
    Gray images repeated to three channels, RGB as it is, RGBA without its
    alpha, exactly as before the option. A multichannel image (a ``C`` axis)
    with 2 or 3 channels uses them in order, as ``(0, 1)`` or ``(0, 1, 2)``. One
    with **more than 3 channels is refused**, with an error naming the file and
    its channel count and asking for ``channels``: in fluorescence the channels
    are stains (DAPI, GFP, a membrane dye, brightfield), and silently taking
    the first three would train a model on whichever stains happen to come
    first, with no sign of it until it predicts badly.
``(i,)``
    Channel ``i`` alone, repeated to the three channels (as a gray image is).
``(i, j)``
    Channels ``i`` and ``j`` as the first two channels and **zeros as the
    third**: each channel keeps its own information and its own place (as a
    two-colour overlay shows them in red and green), where their mean would
    blur the two stains into one.
``(i, j, k)``
    The three channels in that order.

Selecting channels only picks values: 16-bit and float pixels keep their type
and values until :func:`~.intensity.normalize` scales them (per channel).

:func:`select_channels` applies the rule to an image's pixels for every reader
(2-D images and the planes of stacks); :func:`as_rgb` and :func:`gray_to_rgb`
make the three channels of gray and RGB(A) pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_faster_rcnn.core.data.image_files import ImageReadError

#: The channels the backbone takes.
BACKBONE_CHANNELS = 3


def check_channels(value) -> tuple[int, ...] | None:
    """``value`` (None, ``""``, ``"none"``, ``"0,2"``, or a sequence of integers) as a tuple of one
    to three distinct non-negative channel indices, or None; ``ValueError`` with the reason."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip().strip("()[]").strip()
        if text.lower() in ("", "none", "all", "auto"):
            return None
        parts = [part.strip() for part in text.replace(";", ",").replace(" ", ",").split(",") if part.strip()]
        try:
            value = [int(part) for part in parts]
        except ValueError:
            raise ValueError(f"channels {value!r}: give one to three channel numbers, e.g. '0' or '0,2'") from None
    try:
        items = list(value)
    except TypeError:
        items = [value]
    indices = []
    for item in items:
        if isinstance(item, bool) or not float(item).is_integer():
            raise ValueError(f"channels must be whole numbers (channel indices from 0), got {item!r}")
        indices.append(int(item))
    if not 1 <= len(indices) <= BACKBONE_CHANNELS:
        raise ValueError(f"channels: choose one to three channels (the backbone takes three), got {len(indices)}")
    if any(index < 0 for index in indices):
        raise ValueError(f"channels count from 0, got {indices}")
    if len(set(indices)) != len(indices):
        raise ValueError(f"channels must differ from each other, got {indices}")
    return tuple(indices)


def channels_text(channels) -> str:
    """The short text of :func:`check_channels`' value: ``"0,2"``, or ``""`` for None."""
    channels = check_channels(channels)
    return "" if channels is None else ",".join(str(index) for index in channels)


def channels_seen(channels, microscope=()) -> str:
    """What the detector sees of an image by the ``channels`` rule, in words (``"channel 0 (as gray)"``);
    ``microscope``: the channel counts of the images' ``C`` axes, where known (none: gray or RGB)."""
    channels = check_channels(channels)
    counts = [int(count) for count in microscope if count]
    if channels is None:
        if not counts:
            return "gray and RGB images as stored"
        if max(counts) > BACKBONE_CHANNELS:
            return "no channels yet: more than 3 need a choice (the model's channels)"
        channels = tuple(range(max(counts)))
    if len(channels) == 1:
        return f"channel {channels[0]} (as gray)"
    if len(channels) == 2:
        return f"channels {channels[0]} and {channels[1]} (a third of zeros)"
    return f"channels {', '.join(map(str, channels))} in that order"


def select_channels(array: np.ndarray, channels=None, path: str | Path = "image", axis: str = "S") -> np.ndarray:
    """``(H, W)`` or ``(H, W, C)`` pixels as ``(H, W, 3)`` by the ``channels`` rule (the module docstring).

    ``axis``: ``"S"`` for the samples of a pixel (gray, RGB, RGBA: None keeps the rule of
    :func:`as_rgb`; gray and alpha gives the gray, extra samples are dropped), ``"C"`` for
    a microscope's channel axis (None: 1 to 3 channels in order, more refused). Values
    keep their type; a third channel made up for two is zeros of that type.

    Raises
    ------
    ImageReadError
        Naming ``path``, for a channel the image lacks or more than 3 channels without ``channels``.
    """
    try:
        channels = check_channels(channels)
    except ValueError as error:
        raise ImageReadError(path, str(error)) from None
    if array.ndim not in (2, 3):
        raise ImageReadError(path, f"expected (height, width[, channels]) pixels, got shape {array.shape}")
    pixels = array if array.ndim == 3 else array.reshape(*array.shape[:2], 1)
    count = pixels.shape[2]
    if channels is None:
        if axis != "C":
            if count == 2:  # gray and alpha
                pixels = pixels[:, :, :1]
            elif count > 4:  # RGB and extra samples
                pixels = pixels[:, :, :3]
            return as_rgb(pixels)
        if count > 3:
            raise ImageReadError(
                path, f"{count} channels, and no rule says which three the detector sees: choose one to three "
                "with the model's channels (for example 'fit --model.channels 0,2' or Channels in Train detector)")
        channels = tuple(range(count))
    missing = [index for index in channels if index >= count]
    if missing:
        raise ImageReadError(
            path, f"has {count} channel{'s' if count != 1 else ''} (0 to {count - 1}), but the channels "
            f"{list(channels)} ask for {', '.join(map(str, missing))}")
    picked = pixels[:, :, list(channels)]
    if len(channels) == 1:
        return gray_to_rgb(picked[:, :, 0])
    if len(channels) == 2:
        return np.concatenate([picked, np.zeros_like(picked[:, :, :1])], axis=2)
    return np.ascontiguousarray(picked)


def gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    """``(H, W)`` as ``(H, W, 3)``, the value in each channel: one plain copy per channel (two to three
    times faster than ``np.repeat``, which interleaves value by value: 9 against 4 ms for 2048 x 2048)."""
    rgb = np.empty(gray.shape + (3,), dtype=gray.dtype)
    for channel in range(3):
        rgb[:, :, channel] = gray
    return rgb


def as_rgb(array: np.ndarray) -> np.ndarray:
    """Make ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)`` an ``(H, W, 3)`` array."""
    if array.ndim == 2:
        return gray_to_rgb(array)
    if array.ndim == 3 and array.shape[2] == 1:
        return gray_to_rgb(array[:, :, 0])
    if array.ndim == 3 and array.shape[2] == 4:
        return np.ascontiguousarray(array[:, :, :3])
    if array.ndim == 3 and array.shape[2] == 3:
        return array
    raise ValueError(f"expected a 2-D gray or RGB(A) image, got shape {array.shape}")
