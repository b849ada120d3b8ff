"""Reading a training sample's pixels, and choosing which images fit the cache.

A :class:`~.samples.TrainingSample`'s image is a 2-D image file, a large image
read by region (Zarr, tiled TIFF: :mod:`~napari_faster_rcnn.core.data.regions`),
or one plane of a stack (:func:`~napari_faster_rcnn.core.data.stack_files.read_plane`).
:func:`read_sample` reads it whole, :func:`read_sample_window` reads one window of
it from the file where the format allows, :func:`region_levels` takes a large
image's percentiles from a strided subsample without reading it whole, and
:func:`cache_choice` picks the images a memory budget holds.
:class:`~.dataset.DetectionDataset` keeps the cache and assembles the items.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from napari_faster_rcnn.core.data.images import read_image
from napari_faster_rcnn.core.data.regions import (
    is_zarr_folder,
    open_regions,
    read_whole,
    sampled_percentiles,
)
from napari_faster_rcnn.core.data.stack_files import read_plane
from napari_faster_rcnn.core.training.samples import TrainingDataError, TrainingSample
from napari_faster_rcnn.core.training.tiling import read_window

__all__ = ["cache_choice", "read_sample", "read_sample_window", "region_levels"]


def read_sample(sample: TrainingSample, size: tuple[int, int], channels=None) -> np.ndarray:
    """The pixels of ``sample``'s image (a stack's plane, a large image whole, or an image file),
    taking ``channels`` (None: as the file has them).

    Raises :class:`~.samples.TrainingDataError` naming the file when the image is no longer
    ``size`` ``(height, width)``, the size it had when the dataset was built.
    """
    path, plane = sample.image, sample.plane
    if plane is not None:
        image = read_plane(path, plane, channels)
    elif channels is None:
        image = read_whole(path) if is_zarr_folder(path) else read_image(path)
    else:
        image = read_image(path, channels)
    height, width = size
    if image.shape[:2] != (height, width):
        raise TrainingDataError(
            path, f"the image is {image.shape[1]} x {image.shape[0]} pixels but was {width} x {height} "
            "when the dataset was built; it changed on disk, build the dataset again"
        )
    return image


def read_sample_window(sample: TrainingSample, window, size: tuple[int, int], channels=None) -> np.ndarray | None:
    """The pixels of ``window`` ``(x0, y0, x1, y1)`` of ``sample``'s image of ``size``, read by region
    from the file (:func:`~.tiling.read_window`), taking ``channels``; None where the image is to be read
    whole instead: a stack's plane, a window of the whole image, or a file not read by region."""
    x0, y0, x1, y1 = (int(value) for value in window)
    height, width = size
    if sample.plane is None and (x0, y0, x1, y1) != (0, 0, width, height):
        return read_window(sample.image, (x0, y0, x1, y1), (height, width), channels)
    return None


def region_levels(sample: TrainingSample, size: tuple[int, int], channels, percentiles):
    """The ``percentiles`` of ``sample``'s whole image from a strided subsample, read by region and
    never whole (:func:`~napari_faster_rcnn.core.data.regions.sampled_percentiles`); None where the
    image is not read by region (then take them from the image read whole)."""
    if sample.plane is None and read_window(sample.image, (0, 0, 1, 1), size, channels) is not None:
        with open_regions(sample.image) as regions:
            return sampled_percentiles(regions, percentiles, channels)
    return None


def cache_choice(missing: Sequence[int], image_info: Sequence, budget: int | None) -> list[int]:
    """The first of the ``missing`` images (indices into ``image_info``, ``(height, width, dtype)``
    each) whose decoded RGB pixels fit in ``budget`` bytes together (None: all of them)."""
    chosen = []
    for index in missing:
        height, width, dtype = image_info[index]
        size = height * width * 3 * np.dtype(dtype).itemsize
        if budget is not None and size > budget:
            break
        chosen.append(index)
        if budget is not None:
            budget -= size
    return chosen
