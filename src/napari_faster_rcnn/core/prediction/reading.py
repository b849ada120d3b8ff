"""Reading a run's images into the detector's inputs, ahead of the model in a helper thread.

:func:`read_image_tensor` (and :func:`read_image_array`) read one image file, plane of a stack
(:class:`.stacks.StackPlane`) or array as the model takes it: float32 ``(3, H, W)`` in ``[0, 1]``,
normalized by the model's rule (:mod:`~napari_faster_rcnn.core.data.intensity`) and its channels.

:class:`ImageReader` reads the images of a run in order, one entry per image, into a bounded queue
that a helper thread fills (``read_ahead`` batches ahead of the model; a thread rather than
DataLoader worker processes: see :mod:`.run`), or in the caller's thread when the model is ready for
the next one. An entry is ``(index, tensor, None)`` for an image predicted whole,
``(index, TileSource, None)`` for an image to tile (:class:`TileSource`: read by region where its
format allows, else kept as read, its tiles normalized one by one alike), ``(index, None, reason)``
for an image that cannot be read, then :data:`END`; an exception raised while reading is put in the
queue as the entry, to be raised where the caller sees it.

The prediction loop (:func:`.run.iter_predictions`) turns the entries into the model's inputs
(:func:`.pending.model_inputs`).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from napari_faster_rcnn.core.data.image_files import ImageReadError
from napari_faster_rcnn.core.data.regions import ImageRegions
from napari_faster_rcnn.core.prediction.stacks import StackPlane
from napari_faster_rcnn.core.prediction.tiles import Tiling

__all__ = ["END", "ImageReader", "TileSource", "read_image_array", "read_image_tensor"]


def read_image_tensor(item, normalization="auto", channels=None):
    """An image file or array as the detector's input: float32 ``(3, H, W)`` in ``[0, 1]``.

    Arrays may be ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)`` of
    any type (a dask array is computed); scaled as the training dataset scales
    them (:func:`~napari_faster_rcnn.core.data.image_tensors.image_to_unit_float`).

    Raises
    ------
    ImageReadError
        For a file that cannot be read; ``ValueError`` for an array of another shape.
    """
    from napari_faster_rcnn.core.data.image_tensors import image_to_tensor

    return image_to_tensor(read_image_array(item, normalization, channels))


def read_image_array(item, normalization="auto", channels=None) -> np.ndarray:
    """An image file or array as ``(H, W, 3)``, normalized by the model's rule
    (:func:`~napari_faster_rcnn.core.data.intensity.normalize`: uint8 as read under "auto" and
    "none", anything else float32 in ``[0, 1]``) over the whole image, so that its tiles are scaled
    alike; see :func:`read_image_tensor`. ``channels``: the model's (see
    :mod:`~napari_faster_rcnn.core.data.channels`); an array's channels are its last axis."""
    from napari_faster_rcnn.core.data.channels import as_rgb, select_channels
    from napari_faster_rcnn.core.data.images import read_image
    from napari_faster_rcnn.core.data.intensity import normalize

    if isinstance(item, StackPlane):  # one plane of a stack, normalized alone as training reads its planes
        image = item.read(channels)
    elif isinstance(item, (str, Path)):
        image = read_image(item, channels)
    else:
        image = as_rgb(np.asarray(item)) if channels is None else select_channels(np.asarray(item), channels)
    return normalize(image, normalization)


END = object()  # the entry after the last image


def _read_ahead(items: Sequence, buffer: queue.Queue, stop: threading.Event, tiling: Tiling | None,
                normalization="auto", channels=None) -> None:
    """The reader thread: ``(index, tensor or None, reason or None)`` per item, then ``END``."""

    def put(entry) -> bool:
        while not stop.is_set():
            try:
                buffer.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    try:
        for index, item in enumerate(items):
            if stop.is_set() or not put(_read_one(index, item, tiling, normalization, channels)):
                return
    except BaseException as error:  # anything else ends the run, raised where the caller sees it
        put(error)
        return
    put(END)


def _read_one(index: int, item, tiling: Tiling | None, normalization="auto", channels=None) -> tuple:
    """``(index, tensor, None)``; ``(index, TileSource, None)`` for an image to tile; ``(index, None, reason)``."""
    from napari_faster_rcnn.core.data.image_tensors import image_to_tensor

    try:
        regions = _tile_regions(item, tiling)
        if regions is not None:  # read tile by tile when the model gets to it: memory follows the tile
            return (index, TileSource(regions, normalization, channels), None)
        if tiling is not None:
            image = _read_as_stored(item, channels)
            if tiling.tiles_image(image.shape[:2]):  # kept as read; its tiles normalized one by one
                return (index, TileSource(image, normalization), None)
            return (index, image_to_tensor(_normalize(image, normalization)), None)
        return (index, image_to_tensor(read_image_array(item, normalization, channels)), None)
    except ImageReadError as error:
        return (index, None, error.reason)
    except ValueError as error:  # an array of the wrong shape
        return (index, None, str(error))


def _read_as_stored(item, channels=None) -> np.ndarray:
    """An image file, a stack's plane or an array as ``(H, W, 3)`` of its own type (see :func:`read_image_array`)."""
    from napari_faster_rcnn.core.data.channels import as_rgb, select_channels
    from napari_faster_rcnn.core.data.images import read_image

    if isinstance(item, StackPlane):
        return item.read(channels)
    if isinstance(item, (str, Path)):
        return read_image(item, channels)
    return as_rgb(np.asarray(item)) if channels is None else select_channels(np.asarray(item), channels)


def _normalize(image: np.ndarray, normalization, levels=None) -> np.ndarray:
    from napari_faster_rcnn.core.data.intensity import normalize

    return normalize(image, normalization, levels)


class TileSource:
    """An image to tile: read by region (:class:`ImageRegions`) or held as read, with the percentiles
    of the whole image where the model's normalization needs them, so that every tile is scaled alike."""

    def __init__(self, pixels, normalization, channels=None):
        from napari_faster_rcnn.core.data.intensity import Normalization, channel_percentiles, needs_image_levels
        from napari_faster_rcnn.core.data.regions import sampled_percentiles

        self.pixels, self.normalization = pixels, normalization
        self.channels = channels  # (read by region: taken from each tile as it is read)
        if isinstance(pixels, ImageRegions):
            self.size = (pixels.height, pixels.width)
        else:
            self.size = (int(pixels.shape[0]), int(pixels.shape[1]))
        self.levels = None
        if needs_image_levels(normalization, pixels.dtype):
            rule = Normalization.parse(normalization)
            try:  # the same subsample either way: the same percentiles
                self.levels = (sampled_percentiles(pixels, rule.percentiles, channels)
                               if isinstance(pixels, ImageRegions)
                               else channel_percentiles(pixels, rule.percentiles))
            except BaseException:
                self.close()
                raise

    def tile(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """The pixels ``[y0:y1, x0:x1]``, normalized as the whole image would be."""
        if isinstance(self.pixels, ImageRegions):
            pixels = self.pixels.read(y0, y1, x0, x1, channels=self.channels)
        else:
            pixels = self.pixels[y0:y1, x0:x1]
        return _normalize(pixels, self.normalization, self.levels)

    def close(self) -> None:
        """Close the file read by region (nothing to do for pixels held as read)."""
        if isinstance(self.pixels, ImageRegions):
            self.pixels.close()


def _tile_regions(item, tiling: Tiling | None):
    """An :class:`~napari_faster_rcnn.core.data.regions.ImageRegions` for a file to tile that can be
    read by region (a tiled or striped TIFF, OME-TIFF, Zarr), of any type, else None.

    Other images are decoded whole (PNG and JPEG cannot be read by region). Images of more than 8
    bits are scaled by the whole image's percentiles (``"auto"``, ``"percentiles"``): those come
    from a strided read of a subsample (:func:`~napari_faster_rcnn.core.data.regions.sampled_percentiles`).
    """
    if tiling is None or not isinstance(item, (str, Path)):
        return None
    from napari_faster_rcnn.core.data.regions import open_regions

    regions = open_regions(item)
    if regions.by_region and tiling.tiles_image((regions.height, regions.width)):
        return regions
    regions.close()
    return None


def _read_inline(items: Sequence, tiling: Tiling | None, normalization="auto", channels=None):
    """Read in the caller's thread (a ``buffer_size`` of 0): the same entries, no helper thread."""
    for index, item in enumerate(items):
        yield _read_one(index, item, tiling, normalization, channels)
    yield END


class ImageReader:
    """The entries of a run's images in order (see the module docstring), read ahead in a helper thread
    into a queue of ``buffer_size`` entries, or, with a ``buffer_size`` of 0, in the caller's thread as
    :attr:`next_entry` asks for them.

    The thread starts at once; :meth:`close` stops it and waits for it.
    """

    def __init__(self, items: Sequence, tiling: Tiling | None, normalization="auto", channels=None,
                 buffer_size: int = 0):
        self._stop = threading.Event()
        self._thread = None
        if buffer_size:
            buffer: queue.Queue = queue.Queue(maxsize=buffer_size)
            self._thread = threading.Thread(target=_read_ahead,
                                            args=(items, buffer, self._stop, tiling, normalization, channels),
                                            daemon=True, name="napari-faster-rcnn-read-ahead")
            self._thread.start()
            self.next_entry = buffer.get
        else:
            self.next_entry = _read_inline(items, tiling, normalization, channels).__next__

    def close(self) -> None:
        """Stop reading, and wait for the helper thread to end."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
