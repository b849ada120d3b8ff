"""Where the pixels of one resolution of an image come from, for :mod:`~napari_faster_rcnn.core.data.regions`.

A :class:`SourceLevel` is one resolution: its size, ``get(rows, cols)`` giving
its pixels as stored (axes Y, X[, S]), and the chunks a strided read goes by.
:func:`tiff_level` and :func:`tiff_pyramid` make them for a TIFF page and the
lower resolutions of its series (tiles or strips decoded by tifffile straight
into the region, uncompressed pixels memory-mapped, other layouts through
tifffile's zarr view); :func:`axis_getter` and :func:`yx_chunks` read a Zarr
array (or tifffile's zarr view) by its axes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class SourceLevel:
    """One resolution of an image: ``get(rows, cols)`` gives its pixels as stored, axes Y, X[, S]."""

    def __init__(self, height, width, get, chunks=None, memmap: bool = False):
        self.height, self.width = int(height), int(width)
        self.get = get
        self.chunked = chunks is not None  # (rows, cols) of the stored chunks: strided reads go chunk-wise
        self.chunks = chunks
        self.memmap = memmap  # read in place: any region reads only its own rows


def tiff_level(tif, page, path: Path) -> SourceLevel:
    """The full resolution of the first ``page`` of ``tif`` (``path``): memory-mapped when its
    pixels are uncompressed and stored in one piece, else read tile by tile or strip by strip."""
    axes = page.axes
    if page.is_memmappable and int(page.compression) == 1:
        import tifffile

        array = tifffile.memmap(path, page=0, mode="r")
        return SourceLevel(page.imagelength, page.imagewidth, axis_getter(array, axes), memmap=True)
    return _segment_level(tif, page)


def _segment_level(tif, page) -> SourceLevel:
    """A level read tile by tile (or strip by strip): each segment's bytes decoded by tifffile
    straight into the region, the least work there is. Layouts it does not cover (samples in
    separate planes, 1-bit) go through tifffile's zarr view of the page."""
    tiled = bool(page.is_tiled)
    contiguous = int(page.planarconfig) == 1 or int(page.samplesperpixel) == 1
    if not contiguous or page.dtype is None or np.dtype(page.dtype).kind == "b" or int(page.bitspersample) < 8:
        import zarr

        array = zarr.open(page.aszarr(), mode="r")
        chunks = yx_chunks(array.chunks, page.axes)
        whole = chunks[0] >= page.imagelength and chunks[1] >= page.imagewidth
        return SourceLevel(page.imagelength, page.imagewidth, axis_getter(array, page.axes), None if whole else chunks)
    height, width = int(page.imagelength), int(page.imagewidth)
    seg_rows = int(page.tilelength) if tiled else min(int(page.rowsperstrip), height)
    seg_cols = int(page.tilewidth) if tiled else width
    across = -(-width // seg_cols)
    samples = int(page.samplesperpixel)
    dtype = np.dtype(page.dtype)
    handle = tif.filehandle
    offsets, counts = page.dataoffsets, page.databytecounts

    def get(rows: slice, cols: slice) -> np.ndarray:
        y0, y1, x0, x1 = rows.start, rows.stop, cols.start, cols.stop
        out = np.zeros((y1 - y0, x1 - x0, samples), dtype=dtype)
        for sy in range(y0 // seg_rows, -(-y1 // seg_rows)):
            for sx in range(x0 // seg_cols, -(-x1 // seg_cols)):
                index = sy * across + sx
                if index >= len(offsets) or not counts[index]:
                    continue  # a segment not written: zeros
                handle.seek(offsets[index])
                data = handle.read(counts[index])
                segment = page.decode(data, index, jpegtables=page.jpegtables)[0]
                if segment is None:
                    continue
                segment = segment.reshape(segment.shape[-3:])
                top, left = sy * seg_rows, sx * seg_cols
                r0, r1 = max(y0, top), min(y1, top + segment.shape[0])
                c0, c1 = max(x0, left), min(x1, left + segment.shape[1])
                if r1 > r0 and c1 > c0:
                    out[r0 - y0:r1 - y0, c0 - x0:c1 - x0] = segment[r0 - top:r1 - top, c0 - left:c1 - left]
        out = out[::rows.step or 1, ::cols.step or 1]
        return out[:, :, 0] if samples == 1 else out

    whole = seg_rows >= height and seg_cols >= width
    return SourceLevel(height, width, get, None if whole else (seg_rows, seg_cols))


def tiff_pyramid(tif, page, path: Path) -> list[SourceLevel]:
    """The lower resolutions of the first series when its full resolution is the first page."""
    try:
        series = tif.series[0]
        if len(series.levels) < 2 or series.keyframe.offset != page.offset:
            return []
        levels = []
        for low in series.levels[1:]:
            key = low.keyframe
            if key.axes != page.axes or key.imagedepth != 1:
                break
            levels.append(_segment_level(tif, key))
        return levels
    except Exception:  # noqa: BLE001 - a pyramid tifffile cannot follow: the full resolution alone
        return []


def yx_chunks(chunks, axes: str) -> tuple[int, int]:
    """The ``(rows, cols)`` of an array's ``chunks`` along its ``Y`` and ``X`` ``axes``."""
    return int(chunks[axes.index("Y")]), int(chunks[axes.index("X")])


def axis_getter(array, axes: str):
    """``get(rows, cols)`` of an array with axes such as ``YX``, ``YXS``, ``SYX``, ``CYX``, ``TCZYX``:
    other axes at their first index, samples (``S``, ``C``) kept, as ``(h, w[, s])``."""
    channel = next((axis for axis in "SC" if axis in axes), None)

    def get(rows, cols):
        index = []
        for axis in axes:
            if axis == "Y":
                index.append(rows)
            elif axis == "X":
                index.append(cols)
            elif axis == channel:
                index.append(slice(None))
            else:
                index.append(0)
        kept = [axis for axis in axes if axis in ("Y", "X") or axis == channel]
        pixels = np.asarray(array[tuple(index)])
        order = [kept.index("Y"), kept.index("X")] + ([kept.index(channel)] if channel else [])
        return np.transpose(pixels, order)

    return get
