"""COCO JSON: one file with ``images``, ``annotations`` and ``categories``.

Coordinates: ``bbox`` is ``[x, y, width, height]`` on the same continuous
pixel coordinates as ours (the image spans ``[0, W] x [0, H]``), so
``x1, y1 = x, y`` and ``x2, y2 = x + width, y + height``; no pixel is added or
taken away. (This module reads datasets; COCO *evaluation* is :mod:`..coco`.)

Where the JSON lies (all are read, several files are merged):

- ``annotations/instances_*.json`` beside ``images/`` (CVAT's "COCO 1.0",
  detectron2 and mmdetection);
- ``annotations.json``, ``result.json`` (Label Studio) or any other COCO JSON
  at the top of the folder;
- ``train/_annotations.coco.json``, ``valid/...``, ``test/...`` with the images
  beside them (Roboflow).

Categories keep their ids' order, gaps allowed. A category with no boxes that
only names the ``supercategory`` of the others (Roboflow adds one, named after
the project) is left out. Crowd boxes (``iscrowd: 1``) are read as ordinary
boxes, and said so. An annotation's ``score`` (COCO results) becomes the box's
score when every box of its image has one.

We write ``annotations/instances_default.json`` and ``images/``, the layout
CVAT imports, with category ids from 1 in the class list's order.
"""

from __future__ import annotations

import json
import math
import posixpath
import re
from collections import defaultdict
from pathlib import Path, PurePosixPath

import numpy as np

from napari_faster_rcnn.core.data.annotations import THRESHOLDS_FILE, Annotation
from napari_faster_rcnn.core.data.image_files import is_image_file
from napari_faster_rcnn.core.formats._common import (
    SPLIT_FOLDERS,
    FormatError,
    LabeledDataset,
    LabeledItem,
    OutputItem,
    header_size,
    image_files,
    read_json,
)

IMAGE_FOLDER = "images"
ANNOTATION_FILE = "annotations/instances_default.json"
#: YOLO needs each image's size to write boxes; COCO does not.
NEEDS_SIZE = False

# A COCO file has an "images" list and annotations with an "image_id"; Label Studio's
# notes.json beside YOLO labels has "categories" alone. Huge category lists (LVIS)
# can come first, hence a generous look.
_COCO_HEAD = re.compile(rb'"images"\s*:\s*\[|"image_id"\s*:')
_HEAD_BYTES = 1 << 20


def _looks_like_coco(path: Path) -> bool:
    try:
        with open(path, "rb") as file:
            head = file.read(_HEAD_BYTES)
    except OSError:
        return False
    return bool(_COCO_HEAD.search(head))


def annotation_files(root: Path) -> list[Path]:
    """The COCO JSON files of a dataset folder (see the module docstring for where they lie)."""
    folders = [root, root / "annotations", *(root / split for split in SPLIT_FOLDERS)]
    found = []
    for folder in folders:
        if not folder.is_dir():
            continue
        files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
        image_stems = {p.stem for p in files if is_image_file(p)}
        for path in files:
            # A JSON named after an image is our own annotation format, not COCO.
            if path.suffix.lower() != ".json" or path.name == THRESHOLDS_FILE or path.stem in image_stems:
                continue
            if _looks_like_coco(path):
                found.append(path)
    return found


def detect(root: Path) -> bool:
    return bool(annotation_files(root))


def read(root: Path) -> LabeledDataset:
    """Read every COCO JSON of ``root`` into one dataset."""
    files = annotation_files(root)
    if not files:
        raise FormatError(root, "no COCO JSON file (annotations/instances_*.json, annotations.json, ...)")
    dataset = LabeledDataset(root=root, format="coco")
    index = _ImageIndex(root)
    used_images: set[Path] = set()
    crowd = 0
    for path in files:
        crowd += _read_file(path, root, index, dataset, used_images)
    if crowd:
        dataset.notes.append(f"{crowd} crowd boxes (iscrowd = 1) were read as ordinary boxes")
    unused = len(index.all) - len(used_images)
    if unused and index.all:
        dataset.notes.append(f"{unused} images in the folder are in no COCO file; they were left out")
    return dataset


def _read_file(path: Path, root: Path, index: _ImageIndex, dataset: LabeledDataset, used: set) -> int:
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise FormatError(path, "not a COCO file: no 'images' list")
    annotations = data.get("annotations") or []
    categories = data.get("categories") or []
    if not isinstance(annotations, list) or not isinstance(categories, list):
        raise FormatError(path, "'annotations' and 'categories' must be lists")
    names = _category_names(path, categories, annotations)
    for name in names.values():
        if name not in dataset.classes:
            dataset.classes.append(name)

    images = {}  # image id -> (file name, size)
    for number, image in enumerate(data["images"]):
        if not isinstance(image, dict) or not _is_id(image.get("id")) or not isinstance(image.get("file_name"), str):
            raise FormatError(path, f"image {number}: needs an 'id' (a number or text) and a 'file_name'")
        if image["id"] in images:
            raise FormatError(path, f"image id {image['id']} is used twice")
        width, height = image.get("width"), image.get("height")
        size = (int(height), int(width)) if _positive(width) and _positive(height) else None
        images[image["id"]] = (image["file_name"], size)

    boxes, labels, scores = defaultdict(list), defaultdict(list), defaultdict(list)
    crowd = 0
    for number, record in enumerate(annotations):
        try:
            image_id, bbox, category = record["image_id"], record["bbox"], record["category_id"]
            x, y, width, height = (float(v) for v in bbox)
        except (KeyError, TypeError, ValueError):
            which = record.get("id", number) if isinstance(record, dict) else number
            dataset.skipped.append((path, f"annotation {which}: needs 'image_id', 'category_id' and a 4-number 'bbox'"))
            continue
        reason = None
        if not _is_id(image_id) or image_id not in images:
            reason = f"image_id {image_id!r} is not in 'images'"
        elif not _is_id(category) or category not in names:
            reason = f"category_id {category!r} is not in 'categories'"
        elif not (math.isfinite(x) and math.isfinite(y) and width >= 0 and height >= 0 and math.isfinite(width + height)):
            reason = f"bbox {bbox} is not [x, y, width, height] with width, height >= 0"
        if reason is not None:
            dataset.skipped.append((path, f"annotation {record.get('id', number)}: {reason}"))
            continue
        boxes[image_id].append((x, y, x + width, y + height))
        labels[image_id].append(names[category])
        scores[image_id].append(record.get("score"))
        crowd += record.get("iscrowd") == 1

    for image_id, (file_name, size) in images.items():
        image = index.find(file_name, path)
        if image is not None:
            used.add(image)
        if size is None:
            size = header_size(image, dataset.skipped)
        score_list = scores.get(image_id, [])
        score_values = None
        if score_list and all(isinstance(s, (int, float)) for s in score_list):
            score_values = np.asarray(score_list, dtype=np.float64)
        elif any(s is not None for s in score_list):
            dataset.notes.append(f"{path.name}: {file_name}: only some boxes have a score; its scores were dropped")
        try:
            annotation = Annotation(np.asarray(boxes.get(image_id, []), dtype=np.float64).reshape(-1, 4),
                                    labels.get(image_id, []), score_values)
        except ValueError as error:  # NaN scores, say
            dataset.skipped.append((path, f"image {file_name}: {error}"))
            continue
        dataset.items.append(LabeledItem(image, size, annotation, PurePosixPath(file_name.replace("\\", "/")).name))
    return crowd


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < math.inf


def _is_id(value) -> bool:
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def _category_names(path: Path, categories: list, annotations: list) -> dict:
    """Category id -> name, in id order, without Roboflow's unused umbrella category."""
    names = {}
    supercategories = set()
    for number, category in enumerate(categories):
        if not isinstance(category, dict) or not _is_id(category.get("id")) or not isinstance(category.get("name"), str):
            raise FormatError(path, f"category {number}: needs an 'id' and a 'name'")
        if category["id"] in names:
            raise FormatError(path, f"category id {category['id']} is used twice")
        names[category["id"]] = category["name"]
        if category.get("supercategory") not in (None, "", "none"):
            supercategories.add(category["supercategory"])
    if supercategories & set(names.values()):
        used = {record.get("category_id") for record in annotations if isinstance(record, dict)}
        names = {k: v for k, v in names.items() if k in used or v not in supercategories}
    return dict(sorted(names.items(), key=lambda pair: _sort_key(pair[0])))


def _sort_key(value):
    return (0, value, "") if isinstance(value, (int, float)) else (1, 0, str(value))


class _ImageIndex:
    """The image files under a dataset folder, found by the paths COCO files give."""

    def __init__(self, root: Path):
        self.root = root
        self.all = image_files(root, recursive=True)
        start = 0 if str(root) == "." else len(str(root)) + 1  # the path below root, as text
        self.by_path = {str(p)[start:].replace("\\", "/").casefold(): p for p in self.all}
        self.by_name = defaultdict(list)
        self._prefix_cache: dict[Path, list[str]] = {}
        for p in self.all:
            self.by_name[p.name.casefold()].append(p)

    def find(self, file_name: str, json_path: Path) -> Path | None:
        if not self.all:
            return None
        file_name = file_name.replace("\\", "/")
        for prefix in self._prefixes(json_path):
            for candidate in (file_name, "images/" + file_name):
                found = self.by_path.get(posixpath.normpath(prefix + candidate).casefold())
                if found is not None:
                    return found
        matches = self.by_name.get(PurePosixPath(file_name).name.casefold(), [])
        if len(matches) > 1:  # the same name in two splits: the one near the JSON file
            split = json_path.stem.removeprefix("instances_")
            near = [p for p in matches if json_path.parent in p.parents or split in p.relative_to(self.root).parts]
            matches = near or matches
        return matches[0] if matches else None

    def _prefixes(self, json_path: Path) -> list[str]:
        """Where file names may be relative to: the JSON's folder, the one above it, the root."""
        if json_path not in self._prefix_cache:
            prefixes = []
            for base in (json_path.parent, json_path.parent.parent, self.root):
                try:
                    relative = base.relative_to(self.root).as_posix()
                except ValueError:
                    continue
                prefix = "" if relative == "." else relative + "/"
                if prefix not in prefixes:
                    prefixes.append(prefix)
            self._prefix_cache[json_path] = prefixes
        return self._prefix_cache[json_path]


def write(folder: Path, classes: list[str], outputs: list[OutputItem], notes: list[str]) -> None:
    """Write ``annotations/instances_default.json`` for images already placed in ``images/``."""
    category_ids = {name: number + 1 for number, name in enumerate(classes)}
    images, annotations = [], []
    for image_id, output in enumerate(outputs, start=1):
        record = {"id": image_id, "file_name": output.name}
        if output.size is not None:
            record["height"], record["width"] = int(output.size[0]), int(output.size[1])
        images.append(record)
        annotation = output.annotation
        scores = annotation.scores
        for number, (box, label) in enumerate(zip(annotation.boxes.tolist(), annotation.labels)):
            width, height = box[2] - box[0], box[3] - box[1]
            row = {"id": len(annotations) + 1, "image_id": image_id, "category_id": category_ids[label],
                   "bbox": [box[0], box[1], width, height], "area": width * height, "iscrowd": 0,
                   "segmentation": []}
            if scores is not None:
                row["score"] = float(scores[number])
            annotations.append(row)
    data = {
        "info": {"description": "written by napari-faster-rcnn"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i, "name": name, "supercategory": ""} for name, i in category_ids.items()],
    }
    path = folder / ANNOTATION_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "x", encoding="utf-8") as file:
        json.dump(data, file, ensure_ascii=False, separators=(",", ":"))
