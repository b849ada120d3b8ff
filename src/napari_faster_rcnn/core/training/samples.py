"""Training samples: an image and its boxes, from memory or from files, and their classes.

A :class:`TrainingSample` pairs an image path with an
:class:`~.annotations.Annotation` held in memory (as the layers open in napari
give it), the path of an annotation file (as a dataset folder gives it), or
None (an image without objects). :func:`folder_samples` lists a dataset
folder's; :func:`dataset_classes` finds the class list of any of these.

Integer labels (``"1"``) are class numbers, as everywhere in the project (see
:func:`~napari_faster_rcnn.core.evaluation.matching.map_labels`); files whose labels are all numbers get the
classes ``"1"``, ``"2"``, ... so that their numbers stay the model's ids.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_faster_rcnn.core.data.annotations import Annotation, load_annotation
from napari_faster_rcnn.core.data.folders import DatasetError, discover_dataset
from napari_faster_rcnn.core.data.stack_files import stack_shape
from napari_faster_rcnn.core.evaluation.matching import map_labels

logger = logging.getLogger(__name__)


class TrainingDataError(ValueError):
    """A sample that cannot be trained on; ``str()`` names the file and the reason."""

    def __init__(self, path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True)
class TrainingSample:
    """An image and its boxes: an :class:`Annotation`, an annotation file, or None (no objects)."""

    image: Path
    annotation: Annotation | Path | None = None
    #: For one plane of a stack (time, z): its leading coordinates; None for a 2-D image.
    plane: tuple | None = None

    def __post_init__(self):
        object.__setattr__(self, "image", Path(self.image))
        if self.plane is not None:
            object.__setattr__(self, "plane", tuple(int(v) for v in self.plane))
        if isinstance(self.annotation, (str, os.PathLike)):
            object.__setattr__(self, "annotation", Path(self.annotation))
        elif self.annotation is not None and not isinstance(self.annotation, Annotation):
            raise TypeError(f"annotation of {self.image} must be an Annotation, a path or None")

    @property
    def source(self) -> Path:
        """The file named in messages about this sample's boxes."""
        return self.annotation if isinstance(self.annotation, Path) else self.image

    def load(self) -> Annotation:
        """The annotation, read from its file when it is a path (no boxes when None)."""
        if self.annotation is None:
            return Annotation()
        if isinstance(self.annotation, Path):
            return load_annotation(self.annotation)
        return self.annotation


def as_training_sample(value) -> TrainingSample:
    """A :class:`TrainingSample` from one, an ``(image, annotation)`` pair, or a
    :class:`~.dataset.Sample` of :func:`~.dataset.discover_dataset`."""
    if isinstance(value, TrainingSample):
        return value
    if hasattr(value, "image") and hasattr(value, "annotation"):
        return TrainingSample(value.image, value.annotation)
    image, annotation = value
    return TrainingSample(image, annotation)


def folder_samples(folder: str | Path, include_unlabeled: bool = False) -> list[TrainingSample]:
    """The samples of a dataset folder (``input/`` + ``target/``, or side by side), or of ONE stack
    (a time-lapse or z stack file, or a Zarr stack, given instead of a folder): its labeled planes,
    from its annotation file (``NAME.pt``/``.json`` beside it or in ``../target``).

    Images without an annotation file are left out (and logged) unless
    ``include_unlabeled``: in a folder they are usually images not labeled yet,
    and training on them as images without objects would teach the model that
    their objects are background. An image labeled as empty has a file with no
    boxes and is always included.

    Raises
    ------
    DatasetError
        If the folder is not a dataset or has no labeled image.
    """
    if _is_stack_file(folder):
        return _stack_file_samples(Path(folder))
    found = discover_dataset(folder)
    for path, reason in found.skipped:
        logger.warning("%s: left out of training (%s)", path, reason)
    samples, unlabeled = [], []
    for sample in found.samples:
        if sample.image is None:
            logger.warning("%s: left out of training (no image with this name)", sample.annotation)
        elif sample.annotation is None and not include_unlabeled:
            unlabeled.append(sample.image)
        elif sample.annotation is not None and stack_shape(sample.image) is not None:
            samples.extend(stack_samples(sample.image, sample.annotation))
        else:
            samples.append(TrainingSample(sample.image, sample.annotation))
    if unlabeled:
        logger.warning(
            "%s: %d image(s) without an annotation file left out of training (first: %s); "
            "include_unlabeled=True trains on them as images without objects",
            found.root, len(unlabeled), unlabeled[0].name,
        )
    if not samples:
        raise DatasetError(found.root, "no labeled images (no image has an annotation file)")
    return samples


def _is_stack_file(path) -> bool:
    """Whether ``path`` names one stack (a file, or a Zarr store with leading dimensions), not a folder."""
    from napari_faster_rcnn.core.data.regions import is_zarr_folder

    path = Path(path)
    return (path.is_file() or (path.is_dir() and is_zarr_folder(path))) and stack_shape(path) is not None


def _stack_file_samples(path: Path) -> list[TrainingSample]:
    from napari_faster_rcnn.core.data.annotations import find_annotation_file

    annotation = find_annotation_file(path)
    if annotation is None:
        raise DatasetError(path, f"no annotation file of the stack ({path.stem}.pt or .json beside it or in ../target)")
    samples = stack_samples(path, annotation)
    if not samples:
        raise DatasetError(path, f"no labeled planes in {annotation.name}")
    return samples


def stack_samples(image: Path, annotation_path: Path) -> list[TrainingSample]:
    """One sample per LABELED plane of a stack (an unlabeled plane is never a negative), each
    with the boxes of its plane. A file without planes beside a stack is refused, naming it."""
    annotation = load_annotation(annotation_path)
    if not annotation.is_stack:
        if len(annotation):
            raise TrainingDataError(annotation_path, f"boxes without 'planes', but {image.name} is a stack")
        return []
    return [TrainingSample(image, annotation.on_plane(plane), plane=tuple(plane))
            for plane in annotation.labeled_planes.tolist()]


def dataset_classes(source) -> list[str]:
    """The class list of a folder, several folders, samples or annotations.

    Classes named in the files' ``classes`` come first, then other class
    names as first seen. Integer labels are class numbers into that list; when
    no file names a class, the classes are ``"1"`` to the largest number.
    """
    if isinstance(source, (str, os.PathLike)):
        source = [source]
    annotations = []
    for item in source:
        if isinstance(item, Annotation):
            annotations.append(item)
        elif isinstance(item, TrainingSample):
            annotations.append(item.load())
        elif isinstance(item, (str, os.PathLike)):
            annotations.extend(sample.load() for sample in folder_samples(item))
        else:
            raise TypeError(f"expected folders, TrainingSamples or Annotations, got {type(item).__name__}")
    return classes_of(annotations)


def classes_of(annotations: Sequence[Annotation]) -> list[str]:
    """:func:`dataset_classes` of annotations in memory."""
    names: dict[str, None] = {}
    numbers = []
    for annotation in annotations:
        names.update(dict.fromkeys(annotation.classes or ()))
        for label in annotation.labels:
            if label.isdecimal() and label not in names:
                numbers.append(int(label))
            else:
                names.setdefault(label)
    if not names and numbers:
        return [str(number) for number in range(1, max(numbers) + 1)]
    return list(names)


def label_ids(labels: Sequence[str], classes: Sequence[str], source: Path) -> np.ndarray:
    """Class ids (from 1) of ``labels``; a label that is no class raises, naming ``source``."""
    ids = {name: index + 1 for index, name in enumerate(classes)}
    resolved = map_labels(labels, classes)
    for label, name in zip(labels, resolved):
        if name not in ids:
            shown = ", ".join(classes[:10]) + (", ..." if len(classes) > 10 else "")
            hint = " (class numbers start at 1; 0 is the background)" if label == "0" else ""
            raise TrainingDataError(
                source, f"label {label!r} is neither a class name nor a class number 1..{len(classes)}{hint} "
                f"(classes: {shown})"
            )
    return np.array([ids[name] for name in resolved], dtype=np.int64)
