"""Our own dataset folders (format ``"pt"``): ``input/`` + ``target/*.pt``, or files side by side.

Reading takes every layout :func:`..dataset.discover_dataset` knows, ``.pt``
and ``.json`` annotations alike; an image without an annotation file is read
as an image without boxes. An image whose annotation cannot be read is left
out with it (and listed), so a conversion never writes an empty file in its
place. Coordinates are already ours: nothing to convert.

Writing makes ``input/`` (the images) and ``target/NAME.pt`` for every image,
each file carrying the dataset's class list, so classes without boxes survive.
"""

from __future__ import annotations

from pathlib import Path

from napari_faster_rcnn.core.data.annotations import (
    ANNOTATION_SUFFIXES,
    Annotation,
    AnnotationError,
    annotation_bytes,
    class_list,
    load_annotation,
)
from napari_faster_rcnn.core.data.folders import DatasetError, discover_dataset
from napari_faster_rcnn.core.formats._common import FormatError, LabeledDataset, LabeledItem, OutputItem, header_size

IMAGE_FOLDER = "input"
ANNOTATION_FOLDER = "target"
NEEDS_SIZE = False


def detect(root: Path) -> bool:
    """Our layout for sure: ``input/``, ``target/`` or ``.pt`` files at the top of the folder."""
    if (root / IMAGE_FOLDER).is_dir() or (root / ANNOTATION_FOLDER).is_dir():
        return True
    return any(p.suffix.lower() == ".pt" and p.is_file() for p in root.iterdir())


def detect_loosely(root: Path) -> bool:
    """Images, or ``.json``/``.pt`` annotations, that ``discover_dataset`` accepts."""
    try:
        discover_dataset(root)
    except DatasetError:
        return False
    return True


def read(root: Path) -> LabeledDataset:
    source = root
    if not (root / IMAGE_FOLDER).is_dir() and (root / ANNOTATION_FOLDER).is_dir():
        source = root / ANNOTATION_FOLDER  # annotations written without their images
    try:
        folder = discover_dataset(source)
    except DatasetError as error:
        raise FormatError(error.path, error.reason) from None
    dataset = LabeledDataset(root=root, format="pt", skipped=list(folder.skipped))
    known: list[str] = []
    for sample in folder.samples:
        annotation = Annotation()
        if sample.annotation is not None:
            try:
                annotation = load_annotation(sample.annotation)
            except AnnotationError as error:
                dataset.skipped.append((error.path, error.reason))
                continue
        for name in annotation.classes or ():
            if name not in known:
                known.append(name)
        size = header_size(sample.image, dataset.skipped)
        if sample.image is not None and size is None:
            continue  # unreadable image: listed in skipped
        name = sample.image.name if sample.image is not None else sample.name
        dataset.items.append(LabeledItem(sample.image, size, annotation, name))
    dataset.classes = class_list([item.annotation for item in dataset.items], known)
    unlabeled = sum(1 for s in folder.samples if s.annotation is None)
    if unlabeled:
        dataset.notes.append(f"{unlabeled} images have no annotation file yet; read without boxes")
    return dataset


def write(folder: Path, classes: list[str], outputs: list[OutputItem], notes: list[str]) -> None:
    """Write ``target/NAME.pt`` for every image placed in ``input/``."""
    for output in outputs:
        annotation = output.annotation
        labeled = Annotation(annotation.boxes, annotation.labels, annotation.scores, list(classes))
        path = folder / ANNOTATION_FOLDER / f"{Path(output.name).stem}{ANNOTATION_SUFFIXES[0]}"
        path.parent.mkdir(parents=True, exist_ok=True)
        # The folder is new and renamed into place when whole (see conversion.iter_write_dataset):
        # "x" never overwrites, and no fsync per file as save_annotation does (5,000 files: 10 s -> 2 s).
        with open(path, "xb") as file:
            file.write(annotation_bytes(path, labeled))
