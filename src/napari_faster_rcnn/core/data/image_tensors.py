"""Decoded images as the detector's float input.

:func:`~.images.read_image` keeps pixels in the file's own type: uint8 for most
files, uint16 for 16-bit ones (microscopy, some TIFFs and PNGs), int32 or
float32 for a few. Integer images are divided by the largest value of their
type, so a 16-bit image is not read as 256 times too bright; 32-bit integer
images whose values fit 16 bits (how Pillow reads some 16-bit files) count as
16-bit. Float images already in ``[0, 1]`` are kept; other float images and
integer images with negative values are stretched from their minimum to their
maximum, as nothing else says what their range means.
"""

from __future__ import annotations

import numpy as np
import torch


def image_to_unit_float(image: np.ndarray) -> np.ndarray:
    """An image as float32 in ``[0, 1]`` (see the module docstring for the scaling)."""
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    if image.dtype == np.uint16:
        return image.astype(np.float32) / 65535.0
    if image.dtype == np.bool_:
        return image.astype(np.float32)
    if np.issubdtype(image.dtype, np.integer):
        low, high = int(image.min(initial=0)), int(image.max(initial=0))
        if low >= 0:
            top = 65535 if high <= 65535 else np.iinfo(image.dtype).max
            return (image.astype(np.float64) / top).astype(np.float32)
        return _stretch(image)
    image = image.astype(np.float32, copy=False)
    finite = image[np.isfinite(image)]
    if finite.size and finite.min() >= 0 and finite.max() <= 1:
        return np.nan_to_num(image, nan=0.0, posinf=1.0, neginf=0.0)
    return _stretch(image)


def _stretch(image: np.ndarray) -> np.ndarray:
    values = image.astype(np.float64)
    finite = np.isfinite(values)
    if not finite.any():
        return np.zeros(image.shape, dtype=np.float32)
    low, high = values[finite].min(), values[finite].max()
    scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
    return np.clip(np.nan_to_num(scaled, nan=0.0), 0.0, 1.0).astype(np.float32)


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """A uint8 ``(H, W, 3)`` image, or a float one already in ``[0, 1]`` (from
    :func:`image_to_unit_float`), as a float32 ``(3, H, W)`` tensor in ``[0, 1]``."""
    # Channels first while still one byte a value, then one pass to float, in
    # numpy: torch would spread this over its intra-op threads, which costs
    # more than it saves on an image and stalls when the CPUs are busy.
    channels_first = np.ascontiguousarray(image.transpose(2, 0, 1))
    if image.dtype == np.uint8:
        return torch.from_numpy(np.divide(channels_first, np.float32(255.0), dtype=np.float32))
    # augmentation of float images may step a little outside [0, 1]
    return torch.from_numpy(np.clip(channels_first, 0.0, 1.0, dtype=np.float32))
