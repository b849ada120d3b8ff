"""Training samples as torchvision's detection models want them.

A :class:`DetectionDataset` holds a list of :class:`TrainingSample` (an image
path and its annotation: an :class:`~.annotations.Annotation` held in memory,
as the layers open in napari give it, the path of an annotation file, as a
dataset folder gives it, or None for an image without objects). Item ``i`` is ``(image, target)``: a float32
``(3, H, W)`` tensor in ``[0, 1]`` and a dict with ``boxes`` (float32 xyxy),
``labels`` (int64, class ``k`` of ``classes`` is ``k + 1``; 0 is the
background), ``image_id``, ``area`` and ``iscrowd`` as torchvision's
references use them.

The dataset reads the annotations and the image sizes (from the file headers)
when it is built, and checks every sample's boxes then (:mod:`.sample_boxes`:
boxes clipped to their image or dropped, counted and logged; a label that is
not a class is an error naming the file), so that a run fails before its
first step or not at all.

Samples, their classes and label ids are in :mod:`.samples`; splits in
:mod:`.splits`. Reading a sample's pixels (whole, by window, a large image's
percentiles) and choosing which images fit the cache are in
:mod:`.sample_images`; this module keeps the cache. Tiles of large images are
:class:`~.tile_dataset.TileDataset`, which cuts its items with
:meth:`DetectionDataset.window_item`.

Augmentation (see :mod:`.transforms`) runs on every access, after the cache.
Inside a DataLoader worker the dataset reseeds its transform from the
worker's seed (different per worker and epoch, reproducible under
``torch.manual_seed``), because each worker otherwise starts from a copy of the
same random state and all of them would draw the same augmentations.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from napari_faster_rcnn.core.data.annotations import Annotation
from napari_faster_rcnn.core.data.channels import check_channels
from napari_faster_rcnn.core.data.image_tensors import image_to_tensor
from napari_faster_rcnn.core.data.images import image_info
from napari_faster_rcnn.core.data.intensity import (
    Normalization,
    channel_percentiles,
    needs_levels,
    normalize,
    normalize_text,
)
from napari_faster_rcnn.core.data.memory import available_memory
from napari_faster_rcnn.core.data.regions import region_image_info
from napari_faster_rcnn.core.training.sample_boxes import (
    box_report,
    checked_boxes,
    class_counts,
    detection_target,
    size_items,
    size_record,
)
from napari_faster_rcnn.core.training.sample_images import cache_choice, read_sample, read_sample_window, region_levels
from napari_faster_rcnn.core.training.samples import as_training_sample, classes_of, folder_samples
from napari_faster_rcnn.core.training.splits import split_indices
from napari_faster_rcnn.core.training.tiling import MIN_VISIBLE, boxes_in_window

__all__ = ["DetectionDataset", "collate_detections", "split_datasets"]

logger = logging.getLogger(__name__)


class DetectionDataset(torch.utils.data.Dataset):
    """Images and targets for torchvision's detection models.

    Parameters
    ----------
    samples : sequence of TrainingSample, (image, annotation) pairs or :class:`~.dataset.Sample`
    classes : sequence of str, optional
        Class names; label ids are their positions from 1. Default: the
        classes of all the samples (:func:`dataset_classes`).
    transform : callable, optional
        An albumentations ``Compose`` from :func:`.transforms.build_transform`
        (or anything called as ``transform(image=, bboxes=, labels=)`` that
        returns a dict of those keys). None: images as they are.
    cache : bool
        Decode every image once, now, in parallel, and keep it in memory
        (see :meth:`fill_cache`).
    cache_workers : int, optional
        Threads that fill the cache (default: up to 8, one per CPU).
    cache_limit_bytes : int, optional
        At most this much memory for the cache (default: half of the memory
        available when it is filled); images beyond it are read from disk.

    Raises
    ------
    ImageReadError, AnnotationError, TrainingDataError
        ``ValueError`` subclasses naming the file, for an unreadable image or
        annotation and for a label that is not a class.
    """

    def __init__(
        self,
        samples: Sequence,
        classes: Sequence[str] | None = None,
        transform=None,
        cache: bool = False,
        cache_workers: int | None = None,
        cache_limit_bytes: int | None = None,
        normalization: str = "auto",
        channels=None,
    ):
        self.normalization = normalize_text(normalization)
        self._channels = check_channels(channels)
        self._levels: dict = {}  # image path -> its percentiles (of the whole image), for its tiles
        self.samples = [as_training_sample(sample) for sample in samples]
        annotations = [sample.load() for sample in self.samples]
        if isinstance(classes, str):
            raise ValueError(f"classes must be a list of class names, got the single string {classes!r}")
        self.classes = list(classes) if classes is not None else classes_of(annotations)
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"classes must be distinct, got {self.classes}")
        self.transform = transform
        self.cache_limit_bytes = cache_limit_bytes
        self.cache_workers = cache_workers
        self._image_info = [image_info(sample.image) if sample.plane is not None else region_image_info(sample.image)
                            for sample in self.samples]  # (a stack's plane: the stack's header)
        self._boxes, self._labels, self.dropped_per_item, self.clipped_per_item = checked_boxes(
            self.samples, annotations, self._image_info, self.classes)
        self._cache: list[np.ndarray | None] = [None] * len(self.samples)
        self._worker_seed = None
        if cache:
            self.fill_cache()

    @classmethod
    def from_folder(cls, folder: str | Path, classes: Sequence[str] | None = None, include_unlabeled: bool = False,
                    **options) -> DetectionDataset:
        """A dataset of a folder in either layout (see :func:`folder_samples`).

        For separate train, validation and test folders, build one dataset per
        folder with the same ``classes``: ``dataset_classes([train, val, test])``.
        """
        return cls(folder_samples(folder, include_unlabeled), classes, **options)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def image_dtypes(self) -> list[np.dtype]:
        """Each sample's image type, from its header (as read: values keep it until normalization)."""
        return [np.dtype(info[2]) for info in self._image_info]

    @property
    def channels(self) -> tuple[int, ...] | None:
        """The image channels items take, in order (the model's ``channels``; see
        :mod:`~napari_faster_rcnn.core.data.channels`); setting others empties the cache."""
        return self._channels

    @channels.setter
    def channels(self, value) -> None:
        value = check_channels(value)
        if value != self._channels:
            self._channels = value
            self.clear_cache()
            self._levels = {}

    @property
    def num_classes(self) -> int:
        """Classes including the background, as torchvision's ``num_classes`` counts them."""
        return len(self.classes) + 1

    @property
    def image_sizes(self) -> list[tuple[int, int]]:
        """``(height, width)`` of every image, from the file headers."""
        return [(height, width) for height, width, _ in self._image_info]

    def size_items(self) -> list[tuple[tuple[int, int], Annotation]]:
        """``((height, width), Annotation)`` per image with the boxes it trains on (class names as
        labels): what the anchor tools and auto sizing (:mod:`.model.auto_size`) read."""
        return size_items(self._image_info, self._boxes, self._labels, self.classes)

    def size_record(self) -> dict | None:
        """The images' median ``height`` and ``width`` and the 95th percentile of the boxes'
        longer side (``box_side``, 0 without boxes), in pixels; None without images.

        Checkpoints record it (``training_images``), so that prediction can tile
        large images at the scale the model was trained at.
        """
        return size_record(self.image_sizes, self._boxes)

    @property
    def dropped_boxes(self) -> int:
        """Boxes left out because no part of them is inside their image."""
        return sum(self.dropped_per_item)

    @property
    def clipped_boxes(self) -> int:
        """Boxes kept but cut at their image's border."""
        return sum(self.clipped_per_item)

    @property
    def box_counts(self) -> list[int]:
        """Boxes of each image (after dropping those outside it), in item order; 0 for an image without."""
        return [len(boxes) for boxes in self._boxes]

    def class_counts(self) -> dict[str, int]:
        """Boxes per class (after dropping), in the order of ``classes``."""
        return class_counts(self._labels, self.classes)

    def report(self) -> str:
        """One line on the images, boxes, dropped and clipped boxes and the cache."""
        text = box_report(self._boxes, self.classes, self.dropped_per_item, self.clipped_per_item)
        if self.cached_images:
            text += f"; cache: {self.cached_images} images, {self.cache_bytes / 2**20:.1f} MiB"
        return text

    # --- items ---------------------------------------------------------------

    def __getitem__(self, index: int):
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        index = index % len(self)
        return self._item(index, self._image(index), self._boxes[index], self._labels[index], index)

    def _item(self, index: int, image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, image_id: int,
              levels=None):
        """``(tensor, target)`` of an image (or a tile of it) and its boxes, normalized
        (:mod:`~napari_faster_rcnn.core.data.intensity`; uint8 or float32 in [0, 1], as albumentations
        wants), then augmented."""
        image = normalize(image, self.normalization, levels)
        if self.transform is not None:
            self._prepare_worker()
            result = self.transform(image=image, bboxes=boxes, labels=labels)
            image = result["image"]
            boxes = np.asarray(result["bboxes"], dtype=np.float64).reshape(-1, 4)
            labels = np.asarray(result["labels"], dtype=np.int64).reshape(-1)
        return image_to_tensor(image), detection_target(image_id, boxes, labels)

    def window_item(self, index: int, window, min_visible: float = MIN_VISIBLE, image_id: int | None = None):
        """Item ``index`` cut to ``window`` ``(x0, y0, x1, y1)``: the tile's pixels and the boxes it
        keeps (:func:`~.tiling.boxes_in_window`), augmented as :meth:`__getitem__` is."""
        boxes, keep = boxes_in_window(self._boxes[index], window, min_visible)
        image = self._window_pixels(index, window)
        return self._item(index, image, boxes, self._labels[index][keep], index if image_id is None else image_id,
                          levels=self._whole_levels(index, image))

    def _whole_levels(self, index: int, window_pixels: np.ndarray):
        """The percentiles of item ``index``'s whole image, so that its tiles are scaled alike (as
        tiled prediction scales them); None where the rule needs none. An image read window by window
        (not cached) takes them from a strided subsample (:func:`~.regions.sampled_percentiles`), the same values."""
        if window_pixels.dtype == np.uint8 and self.normalization.startswith("auto") or not needs_levels(
                self.normalization):
            return None
        key = (str(self.samples[index].image), self.samples[index].plane)
        if key not in self._levels:
            cached = self._cache[index]
            percentiles = Normalization.parse(self.normalization).percentiles
            if cached is None:
                levels = region_levels(self.samples[index], self._image_info[index][:2], self._channels, percentiles)
                if levels is not None:  # read by windows: never whole
                    self._levels[key] = levels
                    return levels
            whole = cached if cached is not None else self._read(index)
            self._levels[key] = channel_percentiles(whole, percentiles)
        return self._levels[key]

    def _window_pixels(self, index: int, window) -> np.ndarray:
        x0, y0, x1, y1 = (int(value) for value in window)
        cached = self._cache[index]
        if cached is None:
            region = read_sample_window(self.samples[index], window, self._image_info[index][:2], self._channels)
            if region is not None:
                return region
        image = cached if cached is not None else self._read(index)
        return np.ascontiguousarray(image[y0:y1, x0:x1])

    def box_arrays(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """``(boxes, label ids)`` item ``index`` trains on (whole-image coordinates)."""
        return self._boxes[index], self._labels[index]

    def _image(self, index: int) -> np.ndarray:
        cached = self._cache[index]
        return cached if cached is not None else self._read(index)

    def _read(self, index: int) -> np.ndarray:
        return read_sample(self.samples[index], self._image_info[index][:2], self._channels)

    def _prepare_worker(self) -> None:
        """Once per DataLoader worker (and epoch): reseed the transform from the worker's seed."""
        info = torch.utils.data.get_worker_info()
        if info is None or info.seed == self._worker_seed:
            return
        self._worker_seed = info.seed
        reseed = getattr(self.transform, "set_random_seed", None)
        if reseed is not None:
            reseed(info.seed % 2**32)

    # --- cache ---------------------------------------------------------------

    @property
    def cached_images(self) -> int:
        """How many images the cache holds."""
        return sum(image is not None for image in self._cache)

    @property
    def cache_bytes(self) -> int:
        """Memory the cached images use."""
        return sum(image.nbytes for image in self._cache if image is not None)

    def fill_cache(self, workers: int | None = None) -> int:
        """Decode the images not cached yet, in a pool of ``workers`` threads
        (default: ``cache_workers``), and keep them.

        Images are kept as decoded (uint8 for 8-bit files), so augmentation
        still runs on every access. When the images would need more than
        ``cache_limit_bytes`` (default: half of the memory available now), the
        first ones that fit are cached and the rest stay on disk, with a
        warning. Returns the bytes the cache uses.
        """
        missing = [i for i, image in enumerate(self._cache) if image is None]
        limit = self.cache_limit_bytes
        if limit is None:
            available = available_memory()
            limit = available // 2 if available is not None else None
        chosen = cache_choice(missing, self._image_info, (limit - self.cache_bytes) if limit is not None else None)
        if len(chosen) < len(missing):
            logger.warning(
                "cache limit of %.0f MiB reached: %d of %d images are read from disk on each access",
                limit / 2**20, len(missing) - len(chosen), len(self),
            )
        workers = workers or self.cache_workers or min(8, os.cpu_count() or 1)
        with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="image-cache") as pool:
            for index, image in zip(chosen, pool.map(self._read, chosen)):
                self._cache[index] = image
        return self.cache_bytes

    def clear_cache(self) -> None:
        self._cache = [None] * len(self.samples)

    # --- parts ---------------------------------------------------------------

    def subset(self, indices: Sequence[int], transform=None) -> DetectionDataset:
        """A dataset of some items, sharing classes, checked boxes and cached images.

        ``image_id`` counts from 0 in the subset. ``transform`` replaces this
        dataset's (None: no augmentation, as for validation).
        """
        part = object.__new__(type(self))
        part.__dict__.update(self.__dict__)
        indices = [int(i) for i in indices]
        for name in ("samples", "_image_info", "_boxes", "_labels", "_cache"):
            values = getattr(self, name)
            setattr(part, name, [values[i] for i in indices])
        part.dropped_per_item = tuple(self.dropped_per_item[i] for i in indices)
        part.clipped_per_item = tuple(self.clipped_per_item[i] for i in indices)
        part.transform = transform
        part._worker_seed = None
        return part


def split_datasets(
    samples,
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    classes: Sequence[str] | None = None,
    train_transform=None,
    cache: bool = False,
    cache_workers: int | None = None,
) -> tuple[DetectionDataset, DetectionDataset, DetectionDataset]:
    """Train, validation and test datasets of one folder or list of samples.

    The split is :func:`split_samples`'; the three parts share one class
    list (of all samples) and one cache; only the train part is augmented
    (``train_transform``). Each annotation is read once.
    """
    if isinstance(samples, (str, os.PathLike)):
        samples = folder_samples(samples)
    everything = DetectionDataset(samples, classes, cache=cache, cache_workers=cache_workers)
    train, validation, test = split_indices(everything.samples, ratios, seed)
    return everything.subset(train, train_transform), everything.subset(validation), everything.subset(test)


def collate_detections(batch):
    """``(images, targets)`` lists from a batch of items, as detection models take them."""
    images, targets = [], []
    for image, target in batch:
        images.append(image)
        targets.append(target)
    return images, targets
