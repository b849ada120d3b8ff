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
"""

from __future__ import annotations

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
