"""Images opened with Pillow, without its decompression-bomb guard.

Large images are legitimate here (slides, aerial photographs, astronomy). Pillow
refuses to open an image of more than about 179 million pixels (its
decompression-bomb guard, ``PIL.Image.MAX_IMAGE_PIXELS``) and warns above 89
million. This module identifies and opens images as ``PIL.Image.open`` does but
without that check, and leaves Pillow's process-wide limit as it is, for the other
code that napari hosts; the memory guard (:func:`~.memory.check_decode_memory`)
refuses pixels that would not fit instead. :mod:`.images` reads with Pillow what
tifffile does not.
"""

from __future__ import annotations

import contextlib
import struct
from pathlib import Path

import numpy as np

from napari_faster_rcnn.core.data.image_files import ImageReadError
from napari_faster_rcnn.core.data.memory import check_decode_memory, no_memory_reason

_MODE_DTYPES = {
    "I;16": np.dtype(np.uint16),
    "I;16B": np.dtype(np.uint16),
    "I;16L": np.dtype(np.uint16),
    "I": np.dtype(np.int32),
    "F": np.dtype(np.float32),
}


def pillow_header(path: Path) -> tuple[int, int, np.dtype]:
    """``(height, width, dtype)`` of ``path`` as Pillow identifies it, without decoding pixels; the
    dtype is the one :func:`read_with_pillow` gives."""
    with _pillow_image(path) as image:
        width, height = image.size
        return height, width, _MODE_DTYPES.get(image.mode, np.dtype(np.uint8))


@contextlib.contextmanager
def _pillow_image(path: Path):
    """The Pillow image of ``path``, identified as ``PIL.Image.open`` does but without
    its decompression-bomb check (see the module docstring); the file is closed on exit."""
    from PIL import Image

    try:
        file = open(path, "rb")  # noqa: SIM115 - closed below, after the image
    except FileNotFoundError:
        raise ImageReadError(path, "file not found") from None
    except IsADirectoryError:
        raise ImageReadError(path, "is a folder, not an image file") from None
    except OSError as error:
        raise ImageReadError(path, f"cannot be read ({error.strerror or error})") from None
    with file:
        image = _identify(file, path, Image)
        try:
            yield image
        finally:
            image.close()


def _identify(file, path: Path, Image):
    prefix = file.read(16)
    tried: set[str] = set()
    for load_plugins in (Image.preinit, Image.init):
        load_plugins()
        for name in list(Image.ID):
            if name in tried:
                continue
            tried.add(name)
            factory, accept = Image.OPEN[name]
            if accept is not None:
                verdict = accept(prefix)
                if not verdict or isinstance(verdict, str):  # a string: the format, but unsupported
                    continue
            file.seek(0)
            try:
                return factory(file, str(path))
            except (SyntaxError, IndexError, TypeError, struct.error):  # what Image.open takes as "not this format"
                continue
            except Image.DecompressionBombError:  # a plugin that checks while opening (MPO, ICO, ...)
                raise ImageReadError(path, "too large for Pillow to open in this format") from None
            except (OSError, ValueError) as error:
                raise ImageReadError(path, f"not a readable image ({error})") from None
    raise ImageReadError(path, f"not a readable image (cannot identify image file {str(path)!r})")


def read_with_pillow(path: Path, tiff: bool) -> np.ndarray:
    """The pixels of ``path`` as Pillow decodes them (see :func:`_pillow_pixels`), after the memory
    guard; ``tiff``: the file is a TIFF (the error then suggests imagecodecs)."""
    from PIL import Image

    with _pillow_image(path) as image:
        width, height = image.size
        dtype = _MODE_DTYPES.get(image.mode, np.dtype(np.uint8))
        check_decode_memory(path, height, width, dtype.itemsize)
        try:
            array = _pillow_pixels(image)
        except Image.DecompressionBombError:
            hint = "; install imagecodecs (pip install imagecodecs) so that tifffile reads it" if tiff else ""
            raise ImageReadError(path, f"{width} x {height} pixels: too large for Pillow to decode in this "
                                 f"format{hint}") from None
        except MemoryError:
            raise ImageReadError(path, no_memory_reason(height, width)) from None
        except (OSError, ValueError, SyntaxError) as error:
            raise ImageReadError(path, f"image data is damaged ({error})") from None
    return array


def _pillow_pixels(image) -> np.ndarray:
    """The pixels as numpy, one byte a value where the file has them so: :func:`~.channels.as_rgb` repeats
    gray to RGB once, rather than Pillow converting to its 4-byte RGB first (a 14000 x 14000
    1-bit PNG: 11 s and 2.1 GB through ``convert("RGB")``; see NOTES)."""
    mode = image.mode
    if mode in _MODE_DTYPES:
        array = np.asarray(image)
        return array.astype(np.uint16) if mode.startswith("I;16") else array
    if mode in ("RGB", "L", "RGBA"):  # as_rgb drops the alpha
        return np.asarray(image)
    if mode == "1":
        # numpy's view of Pillow's 1-bit pixels may hold 255 for True: test truth, not bytes
        return np.where(np.asarray(image), np.uint8(255), np.uint8(0))
    if mode == "LA":
        return np.asarray(image)[:, :, 0]
    if mode == "P":
        palette = image.getpalette("RGB")
        if palette is not None:  # indices past the palette are black, as Pillow converts them
            table = np.zeros((256, 3), dtype=np.uint8)
            colours = np.asarray(palette[: 256 * 3], dtype=np.uint8).reshape(-1, 3)
            table[: len(colours)] = colours
            return table[np.asarray(image)]
    return np.asarray(image.convert("RGB"))  # CMYK, YCbCr, PA, ...
