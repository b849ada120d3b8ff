"""YOLO txt: one text file per image, a line ``class cx cy w h`` per box.

Coordinates: the box centre and size divided by the image width (x) and
height (y), on the same continuous pixel coordinates as ours:
``cx = (x1 + x2) / 2 / W``, ``w = (x2 - x1) / W``. Reading therefore needs
each image's size, taken from its file header. A sixth number is the box's
score (Ultralytics' ``save_conf``); a longer line is a polygon (YOLO
segmentation), read as the box around it.

Class indices count from 0 into the class list of ``data.yaml`` (``names`` as
a list or as a ``{index: name}`` dict, Ultralytics and Roboflow), else of
``classes.txt`` (Label Studio) or ``obj.names`` (CVAT's YOLO 1.1), one name
a line. With none of them, a label is the index as text (``"0"``).

Where the files lie: a label file is found as Ultralytics finds it, by putting
``labels`` for the last ``images`` folder of the image's path (``images/a.jpg``
-> ``labels/a.txt``, ``train/images/a.jpg`` -> ``train/labels/a.txt``), or else
beside the image (CVAT). Every image under the folder is read; one without a
label file has no boxes (a background image, as Ultralytics reads it).

We write ``images/``, ``labels/``, ``data.yaml`` (``train`` and ``val`` both
``images``, ``nc``, ``names`` as a list) and ``classes.txt``. Numbers are
written with every digit (``repr``), so boxes read back to well below 1e-3 px
even on large images.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from napari_faster_rcnn.core.data.annotations import Annotation
from napari_faster_rcnn.core.formats._common import (
    FormatError,
    LabeledDataset,
    LabeledItem,
    OutputItem,
    header_size,
    image_files,
    read_text,
    write_text,
)

IMAGE_FOLDER = "images"
LABEL_FOLDER = "labels"
DATA_YAML = ("data.yaml", "data.yml", "dataset.yaml")
CLASS_FILES = ("classes.txt", "obj.names")
#: Boxes are stored relative to the image size, so an image of unknown size cannot be written.
NEEDS_SIZE = True


def detect(root: Path) -> bool:
    if any((root / name).is_file() for name in DATA_YAML + CLASS_FILES):
        return True
    label_folders = [root / LABEL_FOLDER, *(p / LABEL_FOLDER for p in root.iterdir() if p.is_dir())]
    return any(folder.is_dir() and any(folder.glob("*.txt")) for folder in label_folders)


def read_class_names(root: Path) -> tuple[dict[int, str] | None, Path | None]:
    """Class index -> name from ``data.yaml`` or ``classes.txt``/``obj.names``, and the file it came from."""
    import yaml

    for name in DATA_YAML:
        path = root / name
        if not path.is_file():
            continue
        try:
            data = yaml.safe_load(read_text(path))
        except yaml.YAMLError as error:
            raise FormatError(path, f"not valid YAML ({error})") from None
        names = data.get("names") if isinstance(data, dict) else None
        if names is None:
            if isinstance(data, dict) and isinstance(data.get("nc"), int):
                return {k: f"class_{k}" for k in range(data["nc"])}, path
            raise FormatError(path, "no 'names' list of classes")
        return _names_mapping(path, names), path
    for name in CLASS_FILES:
        path = root / name
        if path.is_file():
            lines = [line.strip() for line in read_text(path).splitlines()]
            while lines and not lines[-1]:
                lines.pop()
            return dict(enumerate(lines)), path
    return None, None


def _names_mapping(path: Path, names) -> dict[int, str]:
    if isinstance(names, list):
        return {k: str(name) for k, name in enumerate(names)}
    if isinstance(names, dict):
        mapping = {}
        for key, name in names.items():
            try:
                mapping[int(key)] = str(name)
            except (TypeError, ValueError):
                raise FormatError(path, f"'names' key {key!r} is not a class index") from None
        return dict(sorted(mapping.items()))
    raise FormatError(path, f"'names' must be a list or a dict, not {type(names).__name__}")


def label_path(image: Path, root: Path) -> Path | None:
    """The label file of ``image``: ``.../labels/...`` for its last ``images`` folder, else beside it."""
    parts = image.relative_to(root).parts
    if IMAGE_FOLDER in parts[:-1]:
        at = len(parts) - 2 - parts[:-1][::-1].index(IMAGE_FOLDER)
        candidate = root.joinpath(*parts[:at], LABEL_FOLDER, *parts[at + 1:]).with_suffix(".txt")
        if candidate.is_file():
            return candidate
    beside = image.with_suffix(".txt")
    return beside if beside.is_file() else None


def read(root: Path) -> LabeledDataset:
    """Read every image under ``root`` with its label file."""
    names, names_file = read_class_names(root)
    dataset = LabeledDataset(root=root, format="yolo", classes=list(names.values()) if names else [])
    if names is None:
        dataset.notes.append("no data.yaml, classes.txt or obj.names: labels are the class indices as text")
    images = [p for p in image_files(root, recursive=True) if LABEL_FOLDER not in p.relative_to(root).parts[:-1]]
    if not images:
        raise FormatError(root, "no images for the YOLO labels (.png, .jpg, .tif, .bmp or .webp)")
    used = set()
    seen_indices = set()
    for image in images:
        labels = label_path(image, root)
        size = header_size(image, dataset.skipped)
        if size is None:
            if labels is not None:
                dataset.skipped.append((labels, f"its image {image.name} is unreadable"))
            continue
        if labels is None:
            dataset.items.append(LabeledItem(image, size, Annotation(), image.name))
            continue
        used.add(labels)
        try:
            annotation, indices = _read_labels(labels, size, names, names_file)
        except FormatError as error:
            dataset.skipped.append((labels, error.reason))
            continue
        seen_indices.update(indices)
        dataset.items.append(LabeledItem(image, size, annotation, image.name))
    if names is None:
        dataset.classes = [str(k) for k in sorted(seen_indices)]
    for folder, _, files in os.walk(root):
        if Path(folder).name == LABEL_FOLDER:
            for file in sorted(files):
                path = Path(folder) / file
                if path.suffix.lower() == ".txt" and path not in used:
                    dataset.skipped.append((path, "no image with this name"))
    return dataset


def _read_labels(path: Path, size, names, names_file):
    height, width = size
    boxes, labels, scores, indices = [], [], [], set()
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        try:
            values = [float(token) for token in tokens]
        except ValueError:
            raise FormatError(path, f"line {number}: not numbers: {line.strip()!r}") from None
        if not all(math.isfinite(v) for v in values) or not values[0].is_integer() or values[0] < 0:
            raise FormatError(path, f"line {number}: needs a class index and finite numbers: {line.strip()!r}")
        index = int(values[0])
        if len(values) in (5, 6):
            cx, cy, w, h = values[1:5]
            if w < 0 or h < 0:
                raise FormatError(path, f"line {number}: negative width or height")
            box = ((cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height)
            scores.append(values[5] if len(values) == 6 else None)
        elif len(values) >= 7 and len(values) % 2 == 1:  # a polygon: the box around it
            xs, ys = np.asarray(values[1::2]) * width, np.asarray(values[2::2]) * height
            box = (xs.min(), ys.min(), xs.max(), ys.max())
            scores.append(None)
        else:
            raise FormatError(path, f"line {number}: expected 'class cx cy w h' (5 numbers), got {len(values)}")
        if names is not None and index not in names:
            known = f"{names_file.name} names {len(names)} classes" if names_file else "no class list"
            raise FormatError(path, f"line {number}: class {index}, but {known}")
        boxes.append(box)
        labels.append(names[index] if names is not None else str(index))
        indices.add(index)
    score_values = None
    if scores and all(s is not None for s in scores):
        score_values = scores
    elif any(s is not None for s in scores):
        raise FormatError(path, "some lines have a score (6 numbers) and some not")
    return Annotation(np.asarray(boxes, dtype=np.float64).reshape(-1, 4), labels, score_values), indices


def write(folder: Path, classes: list[str], outputs: list[OutputItem], notes: list[str]) -> None:
    """Write ``labels/*.txt``, ``data.yaml`` and ``classes.txt`` for images placed in ``images/``."""
    import yaml

    index = {name: k for k, name in enumerate(classes)}
    for output in outputs:
        height, width = output.size
        annotation = output.annotation
        lines = []
        for number, (box, label) in enumerate(zip(annotation.boxes.tolist(), annotation.labels)):
            x1, y1, x2, y2 = box
            values = [(x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height]
            if annotation.scores is not None:
                values.append(float(annotation.scores[number]))
            lines.append(" ".join([str(index[label]), *map(repr, values)]) + "\n")
        write_text(folder / LABEL_FOLDER / f"{Path(output.name).stem}.txt", "".join(lines))
    data = {"train": IMAGE_FOLDER, "val": IMAGE_FOLDER, "nc": len(classes), "names": list(classes)}
    write_text(folder / DATA_YAML[0], yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    write_text(folder / CLASS_FILES[0], "".join(f"{name}\n" for name in classes))
    if any("\n" in name for name in classes):
        notes.append(f"{CLASS_FILES[0]} cannot hold a class name with a line break; data.yaml has them right")
