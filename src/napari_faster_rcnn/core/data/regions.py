"""Reading large images region by region, with memory that follows the region.

:func:`open_regions` gives an :class:`ImageRegions`: the image's size and dtype
from its header, and :meth:`ImageRegions.read` of a region ``(y0, y1, x0, x1)``
as ``(h, w, 3)``, with the same pixels as the same slice of
:func:`~napari_faster_rcnn.core.data.images.read_image`.

How each format is read:

- **TIFF and OME-TIFF**, tiled or striped: a region decodes only the tiles or
  strips it touches (tifffile decodes each one's bytes straight into the
  region; samples in separate planes and 1-bit pages go through tifffile's
  zarr view). Uncompressed pixels stored in one piece are memory-mapped (a
  region reads only its rows). A TIFF stored as one compressed strip, or with a
  compression tifffile cannot decode, is decoded whole once, as PNG is. The
  first page is read, as :func:`~napari_faster_rcnn.core.data.images.read_image`
  reads it (its levels are made in :mod:`~napari_faster_rcnn.core.data.region_sources`).
- **Zarr** (a ``.zarr`` folder holding an array, a group with an array ``0``,
  or an OME-NGFF multiscale group): a region reads only its chunks.
- **PNG, JPEG and the other formats** cannot be read by region: the image is
  decoded once, on the first read, and regions are slices of it.

:meth:`ImageRegions.read` with ``step`` gives every ``step``-th pixel (a
strided view for display), reading the image in blocks of at most
:data:`BLOCK` pixels a side so that memory stays bounded;
:attr:`ImageRegions.level_shapes` lists the file's own pyramid (OME-TIFF
SubIFDs, NGFF levels). The lazy dask levels of a multiscale display are built
from these reads in :mod:`~napari_faster_rcnn.core.data.display_levels`.
"""

from __future__ import annotations

import threading
from functools import partial
from pathlib import Path

import numpy as np

from napari_faster_rcnn.core.data.channels import as_rgb, select_channels
from napari_faster_rcnn.core.data.image_files import TIFF_SUFFIXES, ImageReadError
from napari_faster_rcnn.core.data.images import image_header, read_image
from napari_faster_rcnn.core.data.region_sources import SourceLevel, axis_getter, tiff_level, tiff_pyramid, yx_chunks
from napari_faster_rcnn.core.data.stack_files import zarr_arrays

#: Largest block, in pixels a side, that a strided read decodes at once.
BLOCK = 2048


def is_zarr_folder(path: str | Path) -> bool:
    """Whether ``path`` is a Zarr store on disk (a folder named ``*.zarr``, or holding zarr metadata)."""
    path = Path(path)
    if not path.is_dir():
        return False
    if path.suffix.lower() == ".zarr":
        return True
    return any((path / name).is_file() for name in ("zarr.json", ".zarray", ".zgroup"))


class ImageRegions:
    """An image read by region; make one with :func:`open_regions`.

    Attributes
    ----------
    path : Path
    height, width : int
    dtype : numpy.dtype
        That of :func:`~napari_faster_rcnn.core.data.images.read_image` for this file.
    by_region : bool
        True when a region decodes only the data it needs; False when the image
        is decoded whole on the first read (PNG, JPEG, some TIFFs).
    level_shapes : list of (height, width)
        The full resolution first, then the file's own lower resolutions (its pyramid).
    """

    def __init__(self, path: Path, height: int, width: int, dtype, levels, by_region: bool, closer=None,
                 microscope: bool = False):
        self.path = Path(path)
        self.microscope = microscope  # levels give a microscope's channels (C): composed by the channels rule
        self.channels = 0  # how many (C), for a read that keeps them all (display: a layer per channel)
        self.height = int(height)
        self.width = int(width)
        self.dtype = np.dtype(dtype)
        self.by_region = by_region
        self._levels = levels  # [SourceLevel]
        self._closer = closer
        self._lock = threading.Lock()  # one file handle: reads one at a time (dask reads chunks from threads)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, 3)

    @property
    def level_shapes(self) -> list[tuple[int, int]]:
        return [(level.height, level.width) for level in self._levels]

    def read(self, y0: int, y1: int, x0: int, x1: int, *, step: int = 1, level: int = 0,
             keep_channels: bool = False, channels=None) -> np.ndarray:
        """The region ``[y0:y1:step, x0:x1:step]`` of pyramid ``level`` as ``(h, w, 3)`` of :attr:`dtype`
        (``keep_channels``, for an image of a microscope's channels: ``(h, w, C)``, every channel as stored).
        ``channels``: the channels the detector sees (:mod:`~napari_faster_rcnn.core.data.channels`; None:
        the rule for none), as :func:`~napari_faster_rcnn.core.data.images.read_image` takes them.

        The region is clipped to the image. With ``step`` above 1 the image is
        read in blocks of at most :data:`BLOCK` pixels (whole tiles when larger)
        that hold the pixels wanted, so memory follows the result, not the region.
        """
        source = self._levels[level]
        y0, y1 = max(0, int(y0)), min(source.height, int(y1))
        x0, x1 = max(0, int(x0)), min(source.width, int(x1))
        step = max(1, int(step))
        rows, cols = max(0, -(-(y1 - y0) // step)), max(0, -(-(x1 - x0) // step))
        keep = keep_channels and self.microscope
        out = np.empty((rows, cols, self.channels if keep else 3), dtype=self.dtype)  # every pixel written below
        if rows == 0 or cols == 0:
            return out
        fill = _keep if keep else self._fill if channels is None else partial(self._fill_channels, channels)
        try:
            with self._lock:
                if step == 1 or not source.chunked:
                    fill(out, source.get(slice(y0, y1, step), slice(x0, x1, step)))
                    return out
                row_spans = _spans(y0, y1, step, source.chunks[0])
                col_spans = _spans(x0, x1, step, source.chunks[1])
                for ra, rb in row_spans:
                    for ca, cb in col_spans:
                        block = source.get(slice(ra, rb, step), slice(ca, cb, step))
                        oy, ox = (ra - y0) // step, (ca - x0) // step
                        fill(out[oy:oy + block.shape[0], ox:ox + block.shape[1]], block)
        except ImageReadError:
            raise
        except MemoryError:
            raise ImageReadError(self.path, f"not enough memory to read the region {y0}:{y1}, {x0}:{x1}") from None
        except Exception as error:  # noqa: BLE001 - a damaged tile, a codec missing: name the file
            raise ImageReadError(self.path, f"cannot read the region {y0}:{y1}, {x0}:{x1} ({error})") from None
        return out

    def _fill(self, out: np.ndarray, array: np.ndarray) -> None:
        if self.microscope:  # 1 to 3 channels in order, more refused: as read_image takes them
            out[...] = select_channels(array, None, self.path, axis="C")
        else:
            _fill(out, array)

    def _fill_channels(self, channels, out: np.ndarray, array: np.ndarray) -> None:
        if array.dtype.kind == "b":  # 1-bit: 0 and 255, as read_image gives it
            array = np.where(array, np.uint8(255), np.uint8(0))
        out[...] = select_channels(array, channels, self.path, axis="C" if self.microscope else "S")

    def read_all(self) -> np.ndarray:
        """The whole image (as :func:`~napari_faster_rcnn.core.data.images.read_image` gives it)."""
        return self.read(0, self.height, 0, self.width)

    def close(self) -> None:
        if self._closer is not None:
            self._closer()
            self._closer = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return f"ImageRegions({str(self.path)!r}, {self.height} x {self.width}, {self.dtype}, by_region={self.by_region})"


def open_regions(path: str | Path) -> ImageRegions:
    """An :class:`ImageRegions` of ``path`` (TIFF, OME-TIFF, Zarr folder, or any image file).

    Only the header is read here; pixels are read by :meth:`ImageRegions.read`.

    Raises
    ------
    ImageReadError
        If the file is missing or not a readable image.
    """
    path = Path(path)
    if path.is_dir():
        if is_zarr_folder(path):
            return _open_zarr(path)
        raise ImageReadError(path, "is a folder, not an image file or a Zarr store")
    if path.suffix.lower() in TIFF_SUFFIXES:
        regions = _open_tiff(path)
        if regions is not None:
            return regions
    return _open_decoded(path)


# --- sources ------------------------------------------------------------------


def _open_decoded(path: Path) -> ImageRegions:
    header = image_header(path)
    cache: dict = {}

    def get(rows, cols):
        if "image" not in cache:
            cache["image"] = read_image(path)
        return cache["image"][rows, cols]

    level = SourceLevel(header.height, header.width, get)
    return ImageRegions(path, header.height, header.width, header.dtype, [level], by_region=False,
                        closer=cache.clear)


def _open_tiff(path: Path) -> ImageRegions | None:
    """A tifffile reader of the first page, or None when tifffile cannot read it by region."""
    import tifffile

    try:
        header = image_header(path)
    except ImageReadError:
        return None  # Pillow's reading names the problem
    try:
        tif = tifffile.TiffFile(path)
    except Exception:  # noqa: BLE001 - not for tifffile: decoded whole
        return None
    if header.channels:  # a microscope's channels on pages of their own: the series read through zarr
        return _open_tiff_channels(path, tif, header)
    try:
        page = tif.pages[0]
        if page.imagedepth != 1 or (page.imagelength, page.imagewidth) != (header.height, header.width):
            tif.close()
            return None
        levels = [tiff_level(tif, page, path)]
        levels += tiff_pyramid(tif, page, path)
        regions = ImageRegions(path, header.height, header.width, header.dtype, levels,
                               by_region=levels[0].chunked or levels[0].memmap, closer=tif.close)
        if not regions.by_region:  # one compressed strip: decoded whole, as PNG is
            tif.close()
            return None
        regions.read(0, 1, 0, 1)  # a codec tifffile lacks shows here, not in the viewer
        return regions
    except Exception:  # noqa: BLE001 - a codec tifffile lacks, odd layouts: decoded whole, as read_image does
        tif.close()
        return None


def _open_tiff_channels(path: Path, tif, header) -> ImageRegions | None:
    """A TIFF whose pages are the channels of one image (OME-TIFF, ImageJ: axes ``CYX``), every
    resolution of its first series through tifffile's zarr view, a region reading its chunks."""
    try:
        import zarr

        series = tif.series[0]
        levels = []
        for index, level in enumerate(series.levels):
            array = zarr.open(series.aszarr(level=index), mode="r")
            axes = str(level.axes)
            levels.append(SourceLevel(array.shape[axes.index("Y")], array.shape[axes.index("X")],
                                      axis_getter(array, axes), yx_chunks(array.chunks, axes)))
        regions = ImageRegions(path, header.height, header.width, header.dtype, levels, by_region=True,
                               closer=tif.close, microscope=True)
        regions.channels = int(header.channels)
        regions.read(0, 1, 0, 1, keep_channels=True)  # a codec tifffile lacks shows here
        return regions
    except ImageReadError:
        tif.close()
        raise
    except Exception:  # noqa: BLE001 - a layout tifffile's zarr view does not cover: decoded whole
        tif.close()
        return None


def _open_zarr(path: Path) -> ImageRegions:
    try:
        import zarr

        node = zarr.open(str(path), mode="r")
    except Exception as error:  # noqa: BLE001 - not a zarr store zarr can read
        raise ImageReadError(path, f"not a readable Zarr store ({error})") from None
    arrays, axes = zarr_arrays(node, path)
    levels = []
    for array in arrays:
        height, width = array.shape[axes.index("Y")], array.shape[axes.index("X")]
        levels.append(SourceLevel(height, width, axis_getter(array, axes), yx_chunks(array.chunks, axes)))
    dtype = np.dtype(arrays[0].dtype)
    if dtype.kind not in "biuf":
        raise ImageReadError(path, f"holds {dtype} values, not image pixels")
    dtype = np.dtype(np.uint8) if dtype.kind == "b" else dtype.newbyteorder("=")
    channel = next((axis for axis in "SC" if axis in axes), None)
    if channel is not None and arrays[0].shape[axes.index(channel)] > 4 and "C" != channel:
        raise ImageReadError(path, f"shape {arrays[0].shape} is not an image (axes {axes})")
    regions = ImageRegions(path, levels[0].height, levels[0].width, dtype, levels, by_region=True,
                           microscope=channel == "C")
    regions.channels = int(arrays[0].shape[axes.index("C")]) if channel == "C" else 0
    return regions


def _keep(out: np.ndarray, array: np.ndarray) -> None:
    out[...] = array.reshape(out.shape)  # (a microscope's channels, as stored)


def _fill(out: np.ndarray, array: np.ndarray) -> None:
    """Write pixels as stored (``h, w[, s]``) into ``out`` (``h, w, 3``) as read_image gives them:
    gray repeated, alpha and extra samples dropped, 1-bit as 0 and 255; one pass, no temporaries."""
    if array.dtype.kind == "b":  # 1-bit: 0 and 255
        array = np.where(array, np.uint8(255), np.uint8(0))
    if array.ndim == 3 and array.shape[2] in (1, 2):  # gray, gray and alpha
        array = array[:, :, 0]
    if array.ndim == 2:
        out[...] = array[:, :, None]
    elif array.shape[2] >= 3:
        out[...] = array[:, :, :3]
    else:
        out[...] = as_rgb(array)


def _spans(start: int, stop: int, step: int, chunk: int) -> list[tuple[int, int]]:
    """Spans ``[a, b)`` of ``range(start, stop)`` that together hold every ``step``-th index
    from ``start``, each inside one window of whole chunks at most :data:`BLOCK` long (one chunk
    when chunks are longer), and each starting at a wanted index."""
    window = max(int(chunk), (BLOCK // int(chunk)) * int(chunk)) if chunk else BLOCK
    wanted = np.arange(start, stop, step)
    groups = wanted // window
    cuts = np.flatnonzero(np.diff(groups)) + 1
    return [(int(part[0]), int(part[-1]) + 1) for part in np.split(wanted, cuts)]


def region_image_info(path: str | Path) -> tuple[int, int, np.dtype]:
    """``(height, width, dtype)`` of an image file (:func:`~napari_faster_rcnn.core.data.images.image_info`)
    or of a Zarr folder's full resolution, from headers and metadata only."""
    if is_zarr_folder(path):
        with open_regions(path) as regions:
            return regions.height, regions.width, regions.dtype
    from napari_faster_rcnn.core.data.images import image_info

    return image_info(path)


def read_whole(path: str | Path) -> np.ndarray:
    """The whole image as ``(H, W, 3)``: :func:`~napari_faster_rcnn.core.data.images.read_image` of a
    file, the full resolution of a Zarr folder."""
    if is_zarr_folder(path):
        with open_regions(path) as regions:
            return regions.read_all()
    return read_image(path)


def sampled_percentiles(regions: ImageRegions, percentiles=None, channels=None) -> tuple[np.ndarray, np.ndarray]:
    """The per-channel percentiles of the whole image that :func:`~napari_faster_rcnn.core.data.intensity.normalize`
    takes (:func:`~napari_faster_rcnn.core.data.intensity.channel_percentiles`), from a strided read of
    the same subsample (every :func:`~napari_faster_rcnn.core.data.intensity.sample_stride`-th pixel):
    the same values, with memory bounded by :data:`BLOCK`, not by the image. ``channels``: those the
    detector sees (see :meth:`ImageRegions.read`)."""
    from napari_faster_rcnn.core.data.intensity import DEFAULT_PERCENTILES, channel_percentiles, sample_stride

    stride = sample_stride(regions.height, regions.width)
    sample = regions.read(0, regions.height, 0, regions.width, step=stride, channels=channels)
    return channel_percentiles(sample, DEFAULT_PERCENTILES if percentiles is None else percentiles, stride=1)
