"""Reading images as RGB arrays, and their sizes from the file header alone."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")


class ImageReadError(ValueError):
    """An image that cannot be read; ``str()`` names the file and the reason."""

    def __init__(self, path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def is_image_file(path: str | Path) -> bool:
    path = Path(path)
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def _open(path: Path):
    from PIL import Image, UnidentifiedImageError

    try:
        return Image.open(path)
    except FileNotFoundError:
        raise ImageReadError(path, "file not found") from None
    except (UnidentifiedImageError, OSError) as error:
        raise ImageReadError(path, f"not a readable image ({error})") from None


def image_info(path: str | Path) -> tuple[int, int, np.dtype]:
    """``(height, width, dtype)`` from the file header, without decoding pixels.

    The dtype is the one :func:`read_image` returns for this file.
    """
    path = Path(path)
    with _open(path) as image:
        width, height = image.size
        mode = image.mode
    return height, width, _MODE_DTYPES.get(mode, np.dtype(np.uint8))


_MODE_DTYPES = {
    "I;16": np.dtype(np.uint16),
    "I;16B": np.dtype(np.uint16),
    "I;16L": np.dtype(np.uint16),
    "I": np.dtype(np.int32),
    "F": np.dtype(np.float32),
}


def image_size(path: str | Path) -> tuple[int, int]:
    """``(height, width)`` from the file header, without decoding pixels."""
    height, width, _ = image_info(path)
    return height, width


def read_image(path: str | Path) -> np.ndarray:
    """Read an image as ``(H, W, 3)``: grayscale is repeated, alpha dropped, palettes expanded.

    Pixels are kept as stored (no EXIF rotation), so box coordinates refer to
    the stored pixel grid, as most annotation tools and torchvision read it.
    """
    path = Path(path)
    with _open(path) as image:
        try:
            if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                array = np.asarray(image)
                if image.mode.startswith("I;16"):
                    array = array.astype(np.uint16)
            elif image.mode in ("RGB", "L"):
                array = np.asarray(image)
            else:  # palette, RGBA, LA, CMYK, 1-bit, ...
                array = np.asarray(image.convert("RGB"))
        except (OSError, ValueError, SyntaxError) as error:
            raise ImageReadError(path, f"image data is damaged ({error})") from None
    return as_rgb(array)


def as_rgb(array: np.ndarray) -> np.ndarray:
    """Make ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)`` an ``(H, W, 3)`` array."""
    if array.ndim == 2:
        return np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim == 3 and array.shape[2] == 1:
        return np.repeat(array, 3, axis=2)
    if array.ndim == 3 and array.shape[2] == 4:
        return np.ascontiguousarray(array[:, :, :3])
    if array.ndim == 3 and array.shape[2] == 3:
        return array
    raise ValueError(f"expected a 2-D gray or RGB(A) image, got shape {array.shape}")


def read_padded(path: str | Path, height: int, width: int, dtype) -> np.ndarray:
    """Read an image into the top-left of a zero ``(height, width, 3)`` canvas.

    Padding at the bottom and right keeps every pixel at its own coordinates.
    """
    image = read_image(path)
    canvas = np.zeros((height, width, 3), dtype=dtype)
    rows, cols = min(height, image.shape[0]), min(width, image.shape[1])
    canvas[:rows, :cols] = image[:rows, :cols]
    return canvas


def lazy_image_stack(paths, sizes, dtype=np.uint8, on_error=None):
    """A lazy dask ``(N, H, W, 3)`` stack of images padded to the largest size.

    Each image is one chunk, read only when napari (or anyone) asks for it.
    Building the stack costs the same for 10 or 10,000 images: one blockwise
    graph layer, no per-image task objects.

    Parameters
    ----------
    paths : sequence of paths
    sizes : sequence of (height, width)
        From :func:`image_size` (headers only).
    dtype
        The stack's dtype; images are cast to it.
    on_error : callable, optional
        Called with the :class:`ImageReadError` of an image that became
        unreadable after the stack was built; the slice shows zeros.
    """
    import dask.array as da

    paths = [Path(p) for p in paths]
    height = max(int(h) for h, _ in sizes)
    width = max(int(w) for _, w in sizes)
    dtype = np.dtype(dtype)

    def load(block_info=None):
        index = block_info[None]["chunk-location"][0]
        try:
            image = read_padded(paths[index], height, width, dtype)
        except ImageReadError as error:
            if on_error is not None:
                on_error(error)
            image = np.zeros((height, width, 3), dtype=dtype)
        return image[None]

    chunks = ((1,) * len(paths), (height,), (width,), (3,))
    # A name from the paths saves dask hashing the closure; same files, same name.
    name = "images-" + hashlib.sha1("\n".join(map(str, paths)).encode()).hexdigest()
    return da.map_blocks(load, chunks=chunks, dtype=dtype, meta=np.empty((0, 0, 0, 0), dtype=dtype), name=name)
