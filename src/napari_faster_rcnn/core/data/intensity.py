"""Intensity normalization: how an image's values become the detector's ``[0, 1]``.

One rule per data set, stored in the model config (``normalization``) and so in
the checkpoint, so that prediction repeats what training did. Written as a short
string (YAML, ``fit --model.normalization ...``, the Train detector form):

``"auto"`` (the default)
    8-bit images divided by 255, exactly as before; any other type (16-bit,
    32-bit integer, float) by per-image percentiles, 1st to 99.8th.
``"percentiles"`` or ``"percentiles:LOW,HIGH"``
    Per image and per channel, the ``LOW``-th percentile maps to 0 and the
    ``HIGH``-th to 1, clipped (default 1 and 99.8). A camera's exposure or gain
    then hardly changes what the detector sees. Percentiles come from a strided
    subsample of at most about 260,000 pixels of the *whole* image: every
    ``s``-th pixel of every ``s``-th row from the top left, ``s`` =
    ``ceil(sqrt(H * W / 262144))`` (:func:`sample_stride`), so that all tiles of
    an image are scaled alike. A large image read by region (tiled prediction,
    training tiles) takes that subsample by a strided read
    (:func:`~napari_faster_rcnn.core.data.regions.sampled_percentiles`, memory
    bounded by a block) and gets the same percentiles as the whole image decoded.
``"range:LOW,HIGH"``
    A fixed range for every image: ``LOW`` maps to 0 and ``HIGH`` to 1, clipped.
``"none"``
    The type's own scale, the rule before this option existed (uint8 / 255,
    uint16 / 65535; see :func:`~.image_tensors.image_to_unit_float`). Configs and
    checkpoints written before the option read as ``"none"`` so they predict as
    they were trained.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MODES = ("auto", "percentiles", "range", "none")
DEFAULT_PERCENTILES = (1.0, 99.8)
#: Pixels (per channel) the percentiles are computed on at most; larger images are subsampled with a stride.
SAMPLE_PIXELS = 1 << 18


@dataclass(frozen=True)
class Normalization:
    """A normalization rule (see the module docstring). ``low``/``high``: the range of ``"range"``;
    ``percentiles``: those of ``"percentiles"`` and ``"auto"``."""

    mode: str = "auto"
    low: float | None = None
    high: float | None = None
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"unknown normalization {self.mode!r}; choose one of {', '.join(MODES)}")
        low, high = (float(value) for value in self.percentiles)
        if not 0.0 <= low < high <= 100.0:
            raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {low:g}, {high:g}")
        object.__setattr__(self, "percentiles", (low, high))
        if self.mode == "range":
            if self.low is None or self.high is None:
                raise ValueError("a fixed range needs LOW and HIGH, as 'range:LOW,HIGH'")
            object.__setattr__(self, "low", float(self.low))
            object.__setattr__(self, "high", float(self.high))
            if not (np.isfinite(self.low) and np.isfinite(self.high) and self.low < self.high):
                raise ValueError(f"a fixed range needs finite LOW < HIGH, got {self.low:g}, {self.high:g}")

    # -- text form -------------------------------------------------------------------------

    @classmethod
    def parse(cls, text) -> Normalization:
        """A rule from its text (``"auto"``, ``"none"``, ``"percentiles[:LOW,HIGH]"``, ``"range:LOW,HIGH"``),
        a mapping as :meth:`to_dict` gives, or a :class:`Normalization`."""
        if isinstance(text, Normalization):
            return text
        if isinstance(text, dict):
            return cls.from_dict(text)
        if text is None:
            return cls("none")
        if not isinstance(text, str):
            raise ValueError(f"a normalization is text such as 'percentiles:1,99.8', got {text!r}")
        mode, _, numbers = text.strip().lower().partition(":")
        mode = mode.strip()
        values = ()
        if numbers.strip():
            try:
                values = tuple(float(part) for part in numbers.split(","))
            except ValueError:
                raise ValueError(f"normalization {text!r}: LOW,HIGH must be two numbers") from None
            if len(values) != 2:
                raise ValueError(f"normalization {text!r}: give two numbers, LOW,HIGH")
        if mode == "range":
            if not values:
                raise ValueError("a fixed range needs LOW and HIGH, as 'range:LOW,HIGH'")
            return cls("range", low=values[0], high=values[1])
        if mode in ("percentiles", "auto"):
            return cls(mode, percentiles=values or DEFAULT_PERCENTILES)
        if values:
            raise ValueError(f"normalization {text!r}: {mode!r} takes no numbers")
        return cls(mode)

    def to_text(self) -> str:
        """The short text form that :meth:`parse` reads back."""
        if self.mode == "range":
            return f"range:{self.low:g},{self.high:g}"
        if self.mode in ("percentiles", "auto") and self.percentiles != DEFAULT_PERCENTILES:
            return f"{self.mode}:{self.percentiles[0]:g},{self.percentiles[1]:g}"
        return self.mode

    def describe(self, kinds=None) -> str:
        """The rule in words, ending on its text: ``"values divided by 255 (normalization auto)"``.
        ``kinds``: the images' dtype names where known, so that ``auto`` says which way it scales them."""
        low, high = (_ordinal(value) for value in self.percentiles)
        per_image = f"scaled per image from its {low} to its {high} percentile"
        kinds = None if kinds is None else sorted(kinds)
        if self.mode == "percentiles":
            text = f"values {per_image}"
        elif self.mode == "range":
            text = f"values from {self.low:g} to {self.high:g} scaled to 0 to 1, clipped"
        elif self.mode == "none":
            text = "values on their type's own scale (8-bit / 255, 16-bit / 65535)"
        elif kinds == ["uint8"]:
            text = "values divided by 255"
        elif kinds is None or "uint8" in kinds:
            text = f"8-bit values divided by 255, others {per_image}"
        else:
            text = f"values {per_image}"
        return f"{text} (normalization {self.to_text()})"

    def to_dict(self) -> dict:
        return {"mode": self.mode, "low": self.low, "high": self.high, "percentiles": list(self.percentiles)}

    @classmethod
    def from_dict(cls, values: dict) -> Normalization:
        return cls(str(values.get("mode", "auto")), values.get("low"), values.get("high"),
                   tuple(values.get("percentiles", DEFAULT_PERCENTILES)))


def _ordinal(value: float) -> str:
    number = f"{value:g}"
    suffix = {"1": "st", "2": "nd", "3": "rd"}.get(number[-1], "th")
    return f"{number}{'th' if number.endswith(('11', '12', '13')) else suffix}"


def normalize_text(text) -> str:
    """``text`` checked and written in its short form (raises ``ValueError`` with the reason)."""
    return Normalization.parse(text).to_text()


def sample_stride(height: int, width: int) -> int:
    """The stride of the percentiles' subsample of an image of ``height x width`` (see the module docstring)."""
    return max(1, int(np.ceil(np.sqrt(int(height) * int(width) / SAMPLE_PIXELS))))


def needs_image_levels(rule, dtype) -> bool:
    """Whether ``rule`` scales an image of ``dtype`` by that image's percentiles (a tile of it then
    needs the whole image's: :func:`channel_percentiles`)."""
    mode = Normalization.parse(rule).mode
    return mode == "percentiles" or (mode == "auto" and np.dtype(dtype) != np.uint8)


def needs_levels(rule) -> bool:
    """Whether ``rule`` scales ``image`` by its own percentiles (so tiles of it need the whole image's)."""
    return Normalization.parse(rule).mode in ("auto", "percentiles")


def normalize(image: np.ndarray, rule=None, levels=None) -> np.ndarray:
    """``image`` (``(H, W)`` or ``(H, W, C)``) as float32 in ``[0, 1]`` by ``rule`` (a
    :class:`Normalization` or its text; None: ``"none"``).

    With ``"auto"`` and ``"none"``, a uint8 image is returned unchanged (uint8): the
    detector's input conversion divides it by 255, and augmentation works on it as before.
    ``levels``: the ``(low, high)`` percentiles to use (of the whole image, for a tile of it).
    """
    rule = Normalization.parse(rule)
    from napari_faster_rcnn.core.data.image_tensors import image_to_unit_float

    if rule.mode in ("auto", "none") and image.dtype == np.uint8:
        return image
    if rule.mode == "none":
        return image_to_unit_float(image)
    if rule.mode == "range":
        low, high = np.float64(rule.low), np.float64(rule.high)
        return _scale(image, low, high)
    low, high = levels if levels is not None else channel_percentiles(image, rule.percentiles)
    return _scale(image, low, high)


def channel_percentiles(image: np.ndarray, percentiles=DEFAULT_PERCENTILES,
                        stride: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The two percentiles of each channel (arrays of shape ``(C,)``, or scalars' shape ``()`` for a
    2-D image), over finite values of a strided subsample of at most :data:`SAMPLE_PIXELS` pixels
    (``stride``: that of the subsample, default :func:`sample_stride`; 1 for an image that is the
    subsample already)."""
    height, width = image.shape[:2]
    stride = sample_stride(height, width) if stride is None else max(1, int(stride))
    sample = np.asarray(image[::stride, ::stride], dtype=np.float64)
    flat = sample.reshape(-1, *sample.shape[2:])
    lows, highs = [], []
    columns = [flat] if flat.ndim == 1 else [flat[:, index] for index in range(flat.shape[1])]
    for index, values in enumerate(columns):
        if index and np.array_equal(values, columns[0]):  # a gray image repeated as RGB: computed once
            lows.append(lows[0])
            highs.append(highs[0])
            continue
        values = values[np.isfinite(values)]
        if values.size == 0:
            lows.append(0.0)
            highs.append(1.0)
            continue
        low, high = np.percentile(values, percentiles)
        lows.append(low)
        highs.append(high)
    if flat.ndim == 1:
        return np.float64(lows[0]), np.float64(highs[0])
    return np.asarray(lows), np.asarray(highs)


def _scale(image: np.ndarray, low, high) -> np.ndarray:
    """``(image - low) / (high - low)`` clipped to [0, 1], per channel, in place on one float32 copy; a
    flat channel (``high == low``) becomes 0 at or below its value and 1 above."""
    low = np.asarray(low, dtype=np.float64)
    span = np.asarray(high, dtype=np.float64) - low
    flat = span <= 0
    scale = (1.0 / np.where(flat, 1.0, span)).astype(np.float32)
    out = np.asarray(image).astype(np.float32)  # a copy: the caller's image is never changed
    out -= low.astype(np.float32)
    out *= scale
    if np.any(flat):
        if out.ndim == 3:
            out[..., flat] = (np.asarray(image)[..., flat] > low[flat]).astype(np.float32)
        else:
            out = (np.asarray(image) > low).astype(np.float32)
    if not np.issubdtype(out.dtype, np.integer) and not np.issubdtype(np.asarray(image).dtype, np.integer):
        np.nan_to_num(out, copy=False, nan=0.0, posinf=1.0, neginf=0.0)
    return np.clip(out, 0.0, 1.0, out=out)
