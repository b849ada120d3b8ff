"""Many images as one lazy stack: a dataset folder's one image layer.

:func:`lazy_image_stack` makes 2-D images (:mod:`.images`) and the planes of stacks
(:mod:`.stack_files`) one lazy dask ``(N, H, W, 3)`` array, each image padded at the bottom
and right to the largest size (:func:`read_padded`), so that every pixel keeps its own
coordinates. An image is read only when its slice is asked for, or just before, when the
pages next to the one shown are read ahead (:mod:`.read_ahead`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from napari_faster_rcnn.core.data.image_files import ImageReadError
from napari_faster_rcnn.core.data.images import read_image
from napari_faster_rcnn.core.data.stack_files import open_stack_array, read_plane, series_layout


def read_padded(path: str | Path, height: int, width: int, dtype) -> np.ndarray:
    """Read an image into the top-left of a zero ``(height, width, 3)`` canvas.

    Padding at the bottom and right keeps every pixel at its own coordinates.
    """
    return _padded(read_image(path), height, width, dtype)


def _padded(image: np.ndarray, height: int, width: int, dtype, channels: int = 3) -> np.ndarray:
    if image.shape[:2] == (height, width) and image.dtype == np.dtype(dtype) and image.shape[2:] == (channels,):
        return image  # (already the canvas's size: no copy of a large plane)
    if image.ndim != 3 or image.shape[2] != channels:
        raise ImageReadError("image", f"{image.shape[-1] if image.ndim == 3 else 1} channels, the other images "
                                      f"of its folder {channels}")
    canvas = np.zeros((height, width, channels), dtype=dtype)
    rows, cols = min(height, image.shape[0]), min(width, image.shape[1])
    canvas[:rows, :cols] = image[:rows, :cols]
    return canvas


def lazy_image_stack(paths, sizes, dtype=np.uint8, on_error=None, planes=None, channels: int | None = None):
    """A lazy dask ``(N, H, W, 3)`` stack of images padded to the largest size.

    Each image is one chunk, read only when napari (or anyone) asks for it.
    Building the stack costs the same for 10 or 10,000 images: one blockwise
    graph layer, no per-image task objects.

    Parameters
    ----------
    paths : sequence of paths
    sizes : sequence of (height, width)
        From :func:`~.images.image_size` (headers only).
    dtype
        The stack's dtype; images are cast to it.
    on_error : callable, optional
        Called with the :class:`~.image_files.ImageReadError` of an image that cannot be
        read (it became unreadable after the stack was built, or its pixels do
        not fit in memory); the slice shows zeros.
    planes : sequence, optional
        Per image: None for a 2-D image, or a plane's leading coordinates when the path is a stack
        (time, z): that plane is read (:func:`~.stack_files.read_plane`), only when its slice is shown.
    channels : int, optional
        For 2-D images with a microscope's channels (axes ``CYX``, this many at most): the stack is
        ``(N, H, W, channels)``, each image with all its channels as stored, for a layer per channel (an
        image with fewer has zeros in the channels it lacks).
        The page read last is kept, so that the channels' layers of one page read its file once.
    """
    import dask.array as da

    from napari_faster_rcnn.core.data.read_ahead import PageReadAhead, register

    paths = [Path(p) for p in paths]
    planes = list(planes) if planes is not None else [None] * len(paths)
    opened: dict = {}  # a stack's lazy array and layout, opened once for all its planes
    height = max(int(h) for h, _ in sizes)
    width = max(int(w) for _, w in sizes)
    dtype = np.dtype(dtype)

    depth = 3 if channels is None else int(channels)
    recent: list = [None]  # (index, page) read last: a page's channel layers ask for it one after another

    def read(index: int) -> np.ndarray:
        if channels is not None:
            last = recent[0]
            if last is not None and last[0] == index:
                return last[1]
            try:
                pixels = np.asarray(open_stack_array(paths[index]))
                if pixels.ndim == 3 and pixels.shape[2] < depth:  # fewer channels than the folder's most: zeros
                    missing = np.zeros((*pixels.shape[:2], depth - pixels.shape[2]), pixels.dtype)
                    pixels = np.concatenate([pixels, missing], axis=2)
                page = _padded(pixels, height, width, dtype, depth)
            except ImageReadError as error:
                raise ImageReadError(paths[index], error.reason) from None
            recent[0] = (index, page)
            return page
        if planes[index] is None:
            return read_padded(paths[index], height, width, dtype)
        path = paths[index]
        if path not in opened:
            opened[path] = (open_stack_array(path), series_layout(path))
        stack, layout = opened[path]
        return _padded(read_plane(path, planes[index], stack=stack, layout=layout), height, width, dtype)

    def load(block_info=None):
        index = block_info[None]["chunk-location"][0]
        image = ahead.take(index)  # (read while the page before was shown, see read_ahead)
        if image is None:
            try:
                image = read(index)
            except ImageReadError as error:
                if on_error is not None:
                    on_error(error)
                image = np.zeros((height, width, depth), dtype=dtype)
        return image[None]

    chunks = ((1,) * len(paths), (height,), (width,), (depth,))
    # A name from the paths saves dask hashing the closure; same files, same name.
    keys = [str(p) if plane is None else f"{p}[{','.join(map(str, plane))}]" for p, plane in zip(paths, planes)]
    if channels is not None:
        keys.append(f"channels {depth}")
    name = "images-" + hashlib.sha1("\n".join(keys).encode()).hexdigest()
    ahead = PageReadAhead(read, len(paths), height * width * depth * dtype.itemsize)
    register(name, ahead)
    return da.map_blocks(load, chunks=chunks, dtype=dtype, meta=np.empty((0, 0, 0, 0), dtype=dtype), name=name)
