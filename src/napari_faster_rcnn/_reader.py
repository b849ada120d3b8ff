"""npe2 reader: images, annotation files and dataset folders to image + box layers.

``get_reader`` returns one of the reading functions of :mod:`.layers.reading`
(an image or annotation file) or :func:`.layers.folder_reading.read_dataset_folder`
(or :func:`.layers.interchange.read_foreign_folder` for a COCO, VOC or YOLO
folder, shown read-only), or ``None`` for anything that is not ours, so that
napari's own readers take over.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from napari_faster_rcnn.core.data.annotations import ANNOTATION_SUFFIXES
from napari_faster_rcnn.core.data.folders import DatasetError, discover_dataset
from napari_faster_rcnn.core.data.image_files import is_image_file
from napari_faster_rcnn.core.data.regions import is_zarr_folder
from napari_faster_rcnn.layers.folder_reading import read_dataset_folder
from napari_faster_rcnn.layers.interchange import foreign_format, read_foreign_folder
from napari_faster_rcnn.layers.reading import read_annotation_into_viewer, read_image_file


def get_reader(path):
    """npe2 reader hook: a reader function for our files, or ``None``."""
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    path = Path(path)
    if path.is_dir():
        if is_zarr_folder(path):  # one image, read by region
            return read_image_file
        if foreign_format(path) is not None:  # COCO, VOC, YOLO: shown read-only (see layers/interchange.py)
            return read_foreign_folder
        return read_dataset_folder if _looks_like_dataset(path) else None
    if is_image_file(path):
        return read_image_file
    if path.suffix.lower() in ANNOTATION_SUFFIXES and _looks_like_annotation(path):
        return read_annotation_into_viewer
    return None


def _looks_like_dataset(folder: Path) -> bool:
    try:
        discover_dataset(folder)
    except (DatasetError, OSError):
        return False
    return True


def _looks_like_annotation(path: Path) -> bool:
    """Cheap check that a file is meant as an annotation, without unpickling it.

    A ``.json`` must be an object with ``boxes``; a ``.pt`` must name ``boxes``
    in its pickle. A file too damaged to tell is claimed, so that the user gets
    our error naming the problem rather than "no reader".
    """
    if path.suffix.lower() == ".json":
        try:
            with open(path, encoding="utf-8") as file:
                content = json.load(file)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return False
        return isinstance(content, dict) and "boxes" in content
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [name for name in archive.namelist() if name.endswith("data.pkl")]
            return bool(pickles) and b"boxes" in archive.read(pickles[0])
    except zipfile.BadZipFile:
        return path.stat().st_size > 0
    except OSError:
        return False


# --- single files -------------------------------------------------------------
