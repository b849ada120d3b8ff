"""Reading a dataset folder to measure it: every image's size and annotation.

:func:`folder_statistics` (and :func:`iter_folder_statistics`, which yields its
progress for a ``thread_worker``) reads each image's size from its header (no
pixels are decoded) and its annotation, in a few threads, and hands them to
:func:`.measures.dataset_statistics`. A file that cannot be read is listed with
the reason instead of failing; a stack counts as one image per labeled plane.
:func:`read_sample` reads one sample; the anchor tools
(:mod:`~napari_faster_rcnn.core.model.anchor_inputs`) read a folder with it too,
so they skip the same files.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from napari_faster_rcnn.core.data.annotations import Annotation, AnnotationError, load_annotation
from napari_faster_rcnn.core.data.folders import discover_dataset
from napari_faster_rcnn.core.data.image_files import ImageReadError
from napari_faster_rcnn.core.data.images import image_size
from napari_faster_rcnn.core.data.stack_files import stack_shape
from napari_faster_rcnn.core.progress import run_to_end
from napari_faster_rcnn.core.statistics.measures import (
    DEFAULT_MAX_SIZE,
    DEFAULT_MIN_SIZE,
    DatasetStatistics,
    check_transform,
    dataset_statistics,
)


def read_sample(sample):
    """``(size, annotation, skipped)`` of one sample; ``size`` is None when it cannot be used, the
    annotation None for a 2-D image without a file. A stack's annotation always has planes (none
    labeled for a stack without a file, or with a 2-D file and no boxes)."""
    if sample.image is None:
        return None, None, [(sample.annotation, "no image with this name, so its size is unknown")]
    try:
        size = image_size(sample.image)
    except ImageReadError as error:
        return None, None, [(sample.image, error.reason)]
    if sample.annotation is None:
        leading = stack_shape(sample.image)
        if leading is not None:  # a stack without a file: no labeled plane, never images without objects
            return size, Annotation(planes=np.zeros((0, len(leading)), dtype=np.int64)), []
        return size, None, []
    try:
        annotation = load_annotation(sample.annotation)
    except AnnotationError as error:
        return None, None, [(sample.annotation, error.reason), (sample.image, "skipped with its unreadable annotation")]
    if not annotation.is_stack:
        leading = stack_shape(sample.image)
        if leading is not None:  # a 2-D file beside a stack: no plane is labeled (training refuses its boxes)
            if len(annotation):
                return None, None, [(sample.annotation, f"boxes without 'planes', but {sample.image.name} is a "
                                                        "stack")]
            annotation = Annotation(classes=annotation.classes, planes=np.zeros((0, len(leading)), dtype=np.int64))
    return size, annotation, []


def iter_folder_statistics(
    folder: str | Path,
    min_size: int = DEFAULT_MIN_SIZE,
    max_size: int = DEFAULT_MAX_SIZE,
    workers: int = 8,
    report_every: int = 25,
) -> Iterator[tuple[int, int]]:
    """Read a dataset folder's image sizes (headers only) and annotations, yielding progress.

    A generator for a ``thread_worker``: yields ``(images done, images in all)``
    and returns the :class:`DatasetStatistics`. Files that cannot be read are
    listed in ``skipped`` with the reason; an image without an annotation file
    counts as an image without boxes (and in ``unlabeled_images``).

    Raises
    ------
    DatasetError
        If ``folder`` is not a dataset folder.
    """
    check_transform(min_size, max_size)
    dataset = discover_dataset(folder)
    total = len(dataset.samples)
    skipped = [(path, reason) for path, reason in dataset.skipped]
    items, names, unlabeled = [], [], 0
    classes: list[str] = []
    yield 0, total
    # Opening a file and parsing its header waits on the disk more than on the CPU.
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for done, (sample, (size, annotation, problems)) in enumerate(
            zip(dataset.samples, pool.map(read_sample, dataset.samples)), start=1
        ):
            skipped.extend(problems)
            if size is not None:
                if sample.annotation is None:
                    unlabeled += 1
                if annotation is None:
                    annotation = Annotation()
                classes.extend(name for name in annotation.classes or () if name not in classes)
                if annotation.is_stack:  # a stack: its labeled planes only, one item each
                    for plane in annotation.labeled_planes.tolist():
                        items.append((size, annotation.on_plane(plane)))
                        names.append(f"{sample.name}[{','.join(map(str, plane))}]")
                else:
                    items.append((size, annotation))
                    names.append(sample.name)
            if done % report_every == 0 or done == total:
                yield done, total
    return dataset_statistics(
        items, min_size, max_size, names=names, classes=classes, skipped=skipped, unlabeled_images=unlabeled
    )


def folder_statistics(
    folder: str | Path, min_size: int = DEFAULT_MIN_SIZE, max_size: int = DEFAULT_MAX_SIZE, workers: int = 8
) -> DatasetStatistics:
    """The statistics of a dataset folder (see :func:`iter_folder_statistics`), without progress."""
    return run_to_end(iter_folder_statistics(folder, min_size, max_size, workers))
