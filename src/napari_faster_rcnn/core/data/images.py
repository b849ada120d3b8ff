"""Reading 2-D images as RGB arrays, and their sizes from the file header alone.

Large images are legitimate here (slides, aerial photographs, astronomy).
Pillow's decompression-bomb guard does not apply (images are opened with Pillow
through :mod:`.pillow_images`, which leaves Pillow's process-wide limit as it
is). What guards the memory instead: sizes come from the headers, without
decoding, whatever the size; pixels are decoded only when they fit in the memory
available (:func:`~.memory.check_decode_memory`), else the image is an
:class:`~.image_files.ImageReadError`, which commands list and skip like any
unreadable file.

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

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_faster_rcnn.core.data.channels import select_channels
from napari_faster_rcnn.core.data.image_files import TIFF_SUFFIXES, ImageReadError
from napari_faster_rcnn.core.data.memory import check_decode_memory, no_memory_reason
from napari_faster_rcnn.core.data.pillow_images import pillow_header, read_with_pillow
from napari_faster_rcnn.core.data.stack_files import SeriesLayout, read_plane, series_layout

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageHeader:
    """What an image's header says, without decoding pixels.

    ``dtype`` is the one :func:`read_image` returns for the file; ``pages`` is
    more than 1 for a stack (a multi-page TIFF), of which :func:`read_image` reads only the first
    page (:mod:`.stack_files` reads its planes); ``channels`` is the number of a microscope's channels
    of a 2-D image whose pages are its channels (axes ``CYX``, then ``pages`` is 1), else 0.
    """

    height: int
    width: int
    dtype: np.dtype
    pages: int = 1
    channels: int = 0


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
    one_image = None if tiff is None else _one_image_pages(path, tiff.pages)
    pages = 1 if tiff is None or one_image is not None else tiff.pages
    channels = one_image.shape[one_image.axes.index("C")] if one_image is not None and "C" in one_image.axes else 0
    if tiff is not None and tiff.tifffile_reads:
        header = ImageHeader(tiff.height, tiff.width, tiff.dtype, pages, channels)
    else:
        height, width, dtype = pillow_header(path)
        header = ImageHeader(height, width, dtype, pages, channels)
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
            check_decode_memory(path, tiff.height, tiff.width, tiff.dtype.itemsize)
            try:
                return select_channels(_read_tiff_page(path, tiff, keep_samples=channels is not None), channels,
                                       path)
            except ImageReadError:
                raise
            except MemoryError:
                raise ImageReadError(path, no_memory_reason(tiff.height, tiff.width)) from None
            except Exception:  # noqa: BLE001 - a codec tifffile lacks, odd data: Pillow tries, and names the problem
                pass
    return select_channels(read_with_pillow(path, tiff is not None), channels, path)


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


# --- the first-page note -------------------------------------------------------

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
    if _one_image_pages(path, pages) is not None:
        return
    logger.warning("%s", first_page_note(path, pages))


def _one_image_pages(path: Path, pages: int) -> SeriesLayout | None:
    """The layout of a TIFF whose ``pages`` (more than one) are one 2-D image's, not planes (the channels of
    an OME-TIFF or ImageJ file of axes ``CYX``): the image is then one picture, not a stack. None otherwise."""
    if pages <= 1:
        return None
    layout = series_layout(path)
    return layout if layout is not None and not layout.leading else None


def first_page_note(path: str | Path, pages: int) -> str:
    """The warning for a file of ``pages`` pages read as a 2-D image, its first page (a stack read as
    data gives every plane: :mod:`~napari_faster_rcnn.core.data.stack_files`)."""
    return f"{path}: a file of {pages} pages; read page 1 of {pages} as a 2-D image"
