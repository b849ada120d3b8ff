"""Reading 2-D images as RGB arrays, and their sizes from the file header alone.

Large images are legitimate here (slides, aerial photographs, astronomy).
Pillow refuses to open an image of more than about 179 million pixels (its
decompression-bomb guard, ``PIL.Image.MAX_IMAGE_PIXELS``) and warns above 89
million. This module opens images without that check and leaves Pillow's
process-wide limit as it is, for the other code that napari hosts. What guards
the memory instead: sizes come from the headers, without decoding, whatever
the size; pixels are decoded only when they fit in the memory available, else
the image is an :class:`~.image_files.ImageReadError`, which commands list and
skip like any unreadable file.

TIFF files are read with tifffile where it can (grayscale or RGB pages of
numbers, uncompressed, deflate or LZMA, or any compression once imagecodecs is
installed), else with Pillow. A multi-page TIFF read as a 2-D image gives its
first page, with a warning (once per file) that names the file and says "page 1
of N"; a TIFF whose pages are a multichannel image's channels, or a Zarr store,
gives its first plane. Stacks (TIFF, OME-TIFF and Zarr with leading time or z
dimensions) are read as data, plane by plane, by :mod:`.stack_files`; many
images as one lazy stack for a viewer by :mod:`.image_stack`. Channels are
chosen by :func:`~.channels.select_channels`.
"""

from __future__ import annotations

import contextlib
import logging
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_faster_rcnn.core.data.channels import select_channels
from napari_faster_rcnn.core.data.image_files import TIFF_SUFFIXES, ImageReadError
from napari_faster_rcnn.core.data.stack_files import read_plane, series_layout

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageHeader:
    """What an image's header says, without decoding pixels.

    ``dtype`` is the one :func:`read_image` returns for the file; ``pages`` is
    more than 1 for a stack (a multi-page TIFF), of which :func:`read_image` reads only the first
    page (:mod:`.stack_files` reads its planes).
    """

    height: int
    width: int
    dtype: np.dtype
    pages: int = 1


def image_header(path: str | Path, note_pages: bool = True) -> ImageHeader:
    """Size, dtype and page count of an image from its header (see :class:`ImageHeader`).

    ``note_pages`` False: no note that a multi-page file is read as its first page (for a
    caller that opens a stack whole).

    Raises
    ------
    ImageReadError
        If the file is missing, a folder, or not a readable image.
    """
    path = Path(path)
    if path.is_dir():
        layout = series_layout(path)
        if layout is None or layout.dtype is None or layout.dtype.kind not in "biuf":
            raise ImageReadError(path, "is a folder, not an image file or a Zarr store of pixels")
        dtype = np.dtype(np.uint8) if layout.dtype.kind == "b" else layout.dtype.newbyteorder("=")
        return ImageHeader(*layout.size, dtype, int(np.prod(layout.leading)) if layout.leading else 1)
    tiff = _tiff_layout(path)
    if tiff is not None and tiff.tifffile_reads:
        header = ImageHeader(tiff.height, tiff.width, tiff.dtype, tiff.pages)
    else:
        with _pillow_image(path) as image:
            width, height = image.size
            dtype = _MODE_DTYPES.get(image.mode, np.dtype(np.uint8))
        header = ImageHeader(height, width, dtype, tiff.pages if tiff is not None else 1)
    if note_pages:
        _note_pages(path, header.pages)
    return header


def image_info(path: str | Path) -> tuple[int, int, np.dtype]:
    """``(height, width, dtype)`` from the file header, without decoding pixels.

    The dtype is the one :func:`read_image` returns for this file.
    """
    header = image_header(path)
    return header.height, header.width, header.dtype


def image_size(path: str | Path) -> tuple[int, int]:
    """``(height, width)`` from the file header, without decoding pixels."""
    header = image_header(path)
    return header.height, header.width


_MODE_DTYPES = {
    "I;16": np.dtype(np.uint16),
    "I;16B": np.dtype(np.uint16),
    "I;16L": np.dtype(np.uint16),
    "I": np.dtype(np.int32),
    "F": np.dtype(np.float32),
}


def read_image(path: str | Path, channels=None) -> np.ndarray:
    """Read an image as ``(H, W, 3)``: grayscale is repeated, alpha dropped, palettes expanded.

    Pixels are kept as stored (no EXIF rotation), so box coordinates refer to
    the stored pixel grid, as most annotation tools and torchvision read it.
    A multi-page TIFF gives its first page (with a warning, once per file); a
    multichannel TIFF or a Zarr store its first plane.

    ``channels`` chooses and orders the channels (see :mod:`.channels` and
    :func:`~.channels.select_channels`); None keeps the rule above. Values keep their type.

    Raises
    ------
    ImageReadError
        If the file cannot be read, or its pixels would not fit in the memory available,
        or it lacks a channel asked for.
    """
    path = Path(path)
    if path.is_dir():
        layout = series_layout(path)
        if layout is None:
            raise ImageReadError(path, "is a folder, not an image file or a Zarr store")
        return read_plane(path, (0,) * len(layout.leading), channels)
    tiff = _tiff_layout(path)
    if tiff is not None:
        _note_pages(path, tiff.pages)
        layout = series_layout(path) if tiff.pages > 1 else None  # channels on pages of their own
        if layout is not None and layout.channel_axis == "C":
            return read_plane(path, (0,) * len(layout.leading), channels)
        if tiff.tifffile_reads:
            _check_memory(path, tiff.height, tiff.width, tiff.dtype.itemsize)
            try:
                return select_channels(_read_tiff_page(path, tiff, keep_samples=channels is not None), channels,
                                       path)
            except ImageReadError:
                raise
            except MemoryError:
                raise ImageReadError(path, _no_memory(tiff.height, tiff.width)) from None
            except Exception:  # noqa: BLE001 - a codec tifffile lacks, odd data: Pillow tries, and names the problem
                pass
    return select_channels(_read_with_pillow(path, tiff is not None), channels, path)


# --- Pillow -------------------------------------------------------------------


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


def _read_with_pillow(path: Path, tiff: bool) -> np.ndarray:
    from PIL import Image

    with _pillow_image(path) as image:
        width, height = image.size
        dtype = _MODE_DTYPES.get(image.mode, np.dtype(np.uint8))
        _check_memory(path, height, width, dtype.itemsize)
        try:
            array = _pillow_pixels(image)
        except Image.DecompressionBombError:
            hint = "; install imagecodecs (pip install imagecodecs) so that tifffile reads it" if tiff else ""
            raise ImageReadError(path, f"{width} x {height} pixels: too large for Pillow to decode in this "
                                 f"format{hint}") from None
        except MemoryError:
            raise ImageReadError(path, _no_memory(height, width)) from None
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


# --- TIFF with tifffile -----------------------------------------------------------

# Compressions tifffile decodes without imagecodecs: none, deflate (Adobe's and the old code), LZMA.
_PLAIN_TIFF_COMPRESSIONS = (1, 8, 32946, 34925)
_MINISBLACK, _RGB, _SEPARATE = 1, 2, 2


@dataclass(frozen=True)
class _TiffLayout:
    height: int
    width: int
    dtype: np.dtype
    pages: int
    samples: int
    separate: bool
    tifffile_reads: bool


def _tiff_layout(path: Path) -> _TiffLayout | None:
    """The first page of a TIFF as tifffile sees it; None for other files and for
    TIFFs tifffile cannot parse (Pillow then tries, and names the problem)."""
    if path.suffix.lower() not in TIFF_SUFFIXES:
        return None
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            pages = len(tif.pages)
            if tif.is_imagej:  # ImageJ writes one page for a large stack, and says how many images it holds
                pages = max(pages, int((tif.imagej_metadata or {}).get("images", 1)))
            dtype = np.dtype(page.dtype) if page.dtype is not None else None
            photometric, samples = int(page.photometric), int(page.samplesperpixel)
            separate = int(page.planarconfig) == _SEPARATE and samples > 1
            height, width, depth, compression = page.imagelength, page.imagewidth, page.imagedepth, page.compression
    except (FileNotFoundError, IsADirectoryError):
        return None  # Pillow's opening says which
    except Exception:  # noqa: BLE001 - not a TIFF tifffile can parse: Pillow's turn
        return None
    readable = (
        dtype is not None
        and dtype.kind in "biuf"
        and depth == 1
        and (photometric == _MINISBLACK and samples in (1, 2, 3, 4) or photometric == _RGB and samples >= 3)
        and (int(compression) in _PLAIN_TIFF_COMPRESSIONS or _has_imagecodecs())
    )
    if dtype is not None:
        dtype = np.dtype(np.uint8) if dtype.kind == "b" else dtype.newbyteorder("=")
    return _TiffLayout(int(height), int(width), dtype, max(1, pages), samples, separate, readable)


def _has_imagecodecs() -> bool:
    try:
        import imagecodecs  # noqa: F401
    except ImportError:
        return False
    return True


def _read_tiff_page(path: Path, layout: _TiffLayout, keep_samples: bool = False) -> np.ndarray:
    """The first page as stored (``H, W[, S]``); ``keep_samples`` False: gray and alpha as gray,
    extra samples after RGB dropped."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        array = tif.pages[0].asarray()
    if layout.separate and array.ndim == 3:
        array = np.moveaxis(array, 0, -1)
    if array.dtype.kind == "b":  # 1-bit, as Pillow reads it: 0 and 255
        array = np.where(array, np.uint8(255), np.uint8(0))
    if keep_samples:
        pass
    elif array.ndim == 3 and array.shape[2] == 2:  # gray and alpha
        array = array[:, :, :1]
    elif array.ndim == 3 and array.shape[2] > 4:  # RGB and extra samples
        array = array[:, :, :3]
    return array.astype(layout.dtype, copy=False)


# --- the first-page note and memory --------------------------------------------

_NOTED_STACKS: set[tuple[str, int]] = set()
_NOTED_LOCK = threading.Lock()


def _note_pages(path: Path, pages: int) -> None:
    """Say, once per file, that a stack is read as its first page."""
    if pages <= 1:
        return
    key = (str(path.resolve()), pages)
    with _NOTED_LOCK:
        if key in _NOTED_STACKS:
            return
        _NOTED_STACKS.add(key)
    layout = series_layout(path)
    if layout is not None and not layout.leading:  # the pages are a multichannel image's channels
        return
    logger.warning("%s", first_page_note(path, pages))


def first_page_note(path: str | Path, pages: int) -> str:
    """The warning for a stack of ``pages`` pages read as its first page."""
    return f"{path}: a stack of {pages} pages; read page 1 of {pages} (stacks are not supported yet)"


# Below this, decoding an image is not worth asking the system about memory (most images).
_MEMORY_CHECK_BYTES = 256 * 2**20


def _check_memory(path: Path, height: int, width: int, itemsize: int) -> None:
    """Refuse to decode pixels that would not fit: the decoded image and its RGB copy."""
    needed = 2 * int(height) * int(width) * 3 * int(itemsize)
    if needed < _MEMORY_CHECK_BYTES:
        return
    from napari_faster_rcnn.core.data.memory import available_memory

    available = available_memory()
    if available is not None and needed > available:
        raise ImageReadError(
            path, f"{width} x {height} pixels need about {needed / 2**30:.1f} GiB to decode, more than the "
            f"{available / 2**30:.1f} GiB of memory available"
        )


def _no_memory(height: int, width: int) -> str:
    return f"{width} x {height} pixels: not enough memory to decode them"
