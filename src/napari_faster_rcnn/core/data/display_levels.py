"""Lazy multiscale dask levels of large images, for a napari multiscale display.

:func:`region_levels` gives the levels of one image, :func:`region_stack_levels`
those of a stack of images of different sizes. Every chunk of a level is one
:meth:`~napari_faster_rcnn.core.data.regions.ImageRegions.read` (every
``step``-th pixel on the lower levels), so memory follows the chunk, not the
image; the file's own pyramid (OME-TIFF SubIFDs, NGFF levels) is used where it
has one. Nothing here imports napari: the levels are plain dask arrays.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from napari_faster_rcnn.core.data.image_files import ImageReadError
from napari_faster_rcnn.core.data.regions import ImageRegions, open_regions

#: Side of the chunks of the lazy display levels, in pixels.
DISPLAY_CHUNK = 1024
#: Bytes of a multichannel level's blocks kept for its other channels' layers (see ``_RecentBlocks``).
RECENT_BLOCK_BYTES = 64 * 2**20
#: Downsampled display levels are added until the longest side is at most this.
SMALLEST_LEVEL_SIDE = 1024


def level_steps(height: int, width: int, smallest: int = SMALLEST_LEVEL_SIDE) -> list[int]:
    """Downsampling steps 1, 2, 4, ... until the longest side is at most ``smallest``."""
    steps = [1]
    while max(math.ceil(height / steps[-1]), math.ceil(width / steps[-1])) > smallest:
        steps.append(steps[-1] * 2)
    return steps


def region_levels(regions: ImageRegions, *, chunk: int = DISPLAY_CHUNK,
                  smallest: int = SMALLEST_LEVEL_SIDE, keep_channels: bool = False) -> list:
    """Lazy dask ``(H_k, W_k, 3)`` levels of an image, for a multiscale display (``keep_channels``, for
    an image of a microscope's channels: ``(H_k, W_k, C)``, for a layer per channel).

    The full resolution and the file's own pyramid come first; below the last
    of those, levels halve (every other pixel) until the longest side is at
    most ``smallest``. Each chunk is one
    :meth:`~napari_faster_rcnn.core.data.regions.ImageRegions.read`.
    """
    levels = []
    shapes = regions.level_shapes
    for index, (height, width) in enumerate(shapes):
        if levels and max(height, width) < smallest // 2:
            break
        levels.append(_dask_level(regions, index, 1, height, width, chunk, keep_channels))
    base = len(levels) - 1
    height, width = shapes[base]
    for step in level_steps(height, width, smallest)[1:]:
        levels.append(_dask_level(regions, base, step, -(-height // step), -(-width // step), chunk, keep_channels))
    return levels


def _chunks(size: int, chunk: int) -> tuple[int, ...]:
    full, rest = divmod(int(size), chunk)
    return (chunk,) * full + ((rest,) if rest else ())


def _token(*parts) -> str:
    return hashlib.sha1("\n".join(map(str, parts)).encode()).hexdigest()


def _stamp(path: Path):
    try:
        stat = path.stat()
        return (stat.st_mtime_ns, stat.st_size)
    except OSError:
        return None


def _dask_level(regions: ImageRegions, level: int, step: int, height: int, width: int, chunk: int,
                keep_channels: bool = False):
    import dask.array as da

    keep = keep_channels and regions.microscope
    recent = _RecentBlocks() if keep else None  # napari's layer per channel asks for each block once per channel

    def load(block_info=None):
        location = block_info[None]["array-location"]
        (r0, r1), (c0, c1) = location[0], location[1]
        if recent is not None:
            block = recent.get((r0, c0))
            if block is not None:
                return block
        block = regions.read(r0 * step, r1 * step, c0 * step, c1 * step, step=step, level=level, keep_channels=keep)
        if recent is not None:
            recent.put((r0, c0), block)
        return block

    chunks = (_chunks(height, chunk), _chunks(width, chunk), (regions.channels if keep else 3,))
    name = "regions-" + _token(regions.path, _stamp(regions.path), level, step, chunk, *(["channels"] if keep else []))
    return da.map_blocks(load, chunks=chunks, dtype=regions.dtype,
                         meta=np.empty((0, 0, 0), dtype=regions.dtype), name=name)


class _RecentBlocks:
    """The blocks of one level read last, up to :data:`RECENT_BLOCK_BYTES`: napari splits a multichannel
    level into a layer per channel, and each layer asks for the same blocks, one after the other."""

    def __init__(self, limit: int | None = None):
        self.limit = RECENT_BLOCK_BYTES if limit is None else int(limit)
        self._blocks: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            block = self._blocks.get(key)
            if block is not None:
                self._blocks.move_to_end(key)
            return block

    def put(self, key, block: np.ndarray) -> None:
        with self._lock:
            self._blocks[key] = block
            while len(self._blocks) > 1 and sum(b.nbytes for b in self._blocks.values()) > self.limit:
                self._blocks.popitem(last=False)


class _OpenFiles:
    """The last few :class:`~napari_faster_rcnn.core.data.regions.ImageRegions` opened, kept open (and decoded images kept) for the next chunk."""

    def __init__(self, size: int = 4):
        self.size = size
        self._open: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: Path) -> ImageRegions:
        with self._lock:
            regions = self._open.get(path)
            if regions is not None:
                self._open.move_to_end(path)
                return regions
        regions = open_regions(path)
        with self._lock:
            self._open[path] = regions
            while len(self._open) > self.size:
                _, old = self._open.popitem(last=False)
                old.close()
        return regions


def region_stack_levels(paths, sizes, dtype=np.uint8, on_error=None, *, chunk: int = DISPLAY_CHUNK,
                        smallest: int = SMALLEST_LEVEL_SIDE) -> list:
    """Lazy dask ``(N, H_k, W_k, 3)`` levels of a stack of images of different sizes, for a multiscale display.

    ``H`` and ``W`` are the largest height and width; each image sits at the
    top-left with zeros beyond it, and those zeros are made per chunk, never
    for a whole image. A chunk reads only its region of its image (every
    ``step``-th pixel on the lower levels), so memory follows the chunk.

    Parameters are those of :func:`~napari_faster_rcnn.core.data.image_stack.lazy_image_stack`.
    """
    import dask.array as da

    paths = [Path(p) for p in paths]
    sizes = [(int(h), int(w)) for h, w in sizes]
    height = max(h for h, _ in sizes)
    width = max(w for _, w in sizes)
    dtype = np.dtype(dtype)
    files = _OpenFiles()
    levels = []
    for step in level_steps(height, width, smallest):
        def load(block_info=None, step=step):
            location = block_info[None]["array-location"]
            index = location[0][0]
            (r0, r1), (c0, c1) = location[1], location[2]
            out = np.zeros((1, r1 - r0, c1 - c0, 3), dtype=dtype)
            image_height, image_width = sizes[index]
            if r0 * step >= image_height or c0 * step >= image_width:
                return out
            try:
                region = files.get(paths[index]).read(r0 * step, r1 * step, c0 * step, c1 * step, step=step)
            except ImageReadError as error:
                if on_error is not None:
                    on_error(error)
                return out
            out[0, : region.shape[0], : region.shape[1]] = region
            return out

        level_height, level_width = -(-height // step), -(-width // step)
        chunks = ((1,) * len(paths), _chunks(level_height, chunk), _chunks(level_width, chunk), (3,))
        name = "region-stack-" + _token(*paths, step, chunk, height, width)
        levels.append(da.map_blocks(load, chunks=chunks, dtype=dtype,
                                    meta=np.empty((0, 0, 0, 0), dtype=dtype), name=name))
    return levels

