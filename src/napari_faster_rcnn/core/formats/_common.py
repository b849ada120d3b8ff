"""What every format shares: the dataset read from a folder, errors, and file helpers.

A :class:`LabeledDataset` is the meeting point of all formats: each reader
builds one, each writer takes one, so converting is reading one format and
writing another. Boxes in it are always the project's continuous pixel xyxy
(see :mod:`..boxes`); each format module converts at its own border.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from napari_faster_rcnn.core.data.annotations import Annotation
from napari_faster_rcnn.core.data.image_files import IMAGE_SUFFIXES, ImageReadError, is_image_file
from napari_faster_rcnn.core.data.images import image_size

#: Format names, as ``--to`` and ``--from`` spell them.
FORMATS = ("coco", "voc", "yolo", "pt")

#: Folders that split a dataset (Roboflow's export names them so, Ultralytics' too).
SPLIT_FOLDERS = ("train", "valid", "val", "test")


class FormatError(ValueError):
    """A file or folder that a format cannot read or write; ``str()`` names it and the reason."""

    def __init__(self, path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class LabeledItem(NamedTuple):
    """One image of a dataset and its boxes.

    ``image`` is the image file, or None when the format names an image that is
    not on disk (a COCO JSON exported without its images); ``name`` is the
    image's file name as the format records it, also when the file is missing.
    ``size`` is ``(height, width)``, from the format's own record or the image
    header, or None when neither is known.
    """

    image: Path | None
    size: tuple[int, int] | None
    annotation: Annotation
    name: str


@dataclass
class LabeledDataset:
    """Images, their boxes and the class list, read from (or to be written to) a folder.

    Attributes
    ----------
    root : Path or None
        The folder it was read from.
    format : str
        One of :data:`FORMATS`.
    classes : list of str
        Class names in the format's order (COCO category ids, YOLO class indices).
    items : list of LabeledItem
        ``(image, size, annotation, name)`` per image, images without boxes included.
    skipped : list of (Path, str)
        Files, or parts of files, left out, with the reason.
    notes : list of str
        What the user should know about the reading (crowd or difficult boxes
        read as ordinary boxes, a missing class list, ...).
    """

    root: Path | None
    format: str
    classes: list[str] = field(default_factory=list)
    items: list[LabeledItem] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def box_count(self) -> int:
        return sum(len(item.annotation) for item in self.items)


def image_files(folder: Path, recursive: bool = False) -> list[Path]:
    """Image files in ``folder`` (or under it), sorted by path, hidden files and folders left out."""
    if not folder.is_dir():
        return []
    if not recursive:
        return sorted((p for p in folder.iterdir() if p.is_file() and is_image_file(p)), key=lambda p: p.name)
    found = []
    for directory, subfolders, files in os.walk(folder):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        base = Path(directory)
        found.extend(base / name for name in sorted(files) if _is_image_name(name))
    return found


def _is_image_name(name: str) -> bool:
    # is_image_file on a plain string, without building a Path for every file of a large folder
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def header_size(path: Path | None, skipped: list) -> tuple[int, int] | None:
    """``(height, width)`` from an image header; None (and a note in ``skipped``) when unreadable."""
    if path is None:
        return None
    try:
        return image_size(path)
    except ImageReadError as error:
        skipped.append((path, error.reason))
        return None


def read_json(path: Path):
    """Parse a JSON file; errors name the file. JSON runs no code, so any file is safe to read."""
    try:
        with open(path, "rb") as file:
            return json.loads(file.read())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise FormatError(path, f"not valid JSON ({error})") from None
    except OSError as error:
        raise FormatError(path, f"cannot be read ({error.strerror or error})") from None


def read_text(path: Path) -> str:
    """A text file as UTF-8 (a byte-order mark is dropped); errors name the file."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise FormatError(path, f"not UTF-8 text ({error})") from None
    except OSError as error:
        raise FormatError(path, f"cannot be read ({error.strerror or error})") from None


def number_text(value: float) -> str:
    """The shortest text that reads back as exactly ``value``; integers without a decimal point.

    Tools that parse ``int(text)`` (older VOC readers) then still read
    integer coordinates, and fractional ones keep every digit.
    """
    value = float(value)
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def unique_names(items: Iterable[LabeledItem]) -> list[str]:
    """A file name per item, unique by stem (ignoring case), for formats that pair files by stem.

    The first item keeps its name; a later one with the same stem becomes
    ``STEM_2.EXT``, ``STEM_3.EXT``, ... (split folders often repeat names).
    """
    taken: set[str] = set()
    names = []
    for item in items:
        name = Path(item.name).name or "image"
        stem, suffix = Path(name).stem, Path(name).suffix
        candidate, counter = name, 1
        while Path(candidate).stem.casefold() in taken:
            counter += 1
            candidate = f"{stem}_{counter}{suffix}"
        taken.add(Path(candidate).stem.casefold())
        names.append(candidate)
    return names


def place_image(source: Path, destination: Path, link: bool) -> bool:
    """Hard-link (or copy) ``source`` to ``destination``, which must not exist; True when linked.

    A hard link costs no disk space or time and leaves each folder whole when
    the other is deleted. It falls back to a copy where links are impossible
    (another file system, FAT, no permission). The user's file is never moved.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    if link:
        try:
            os.link(source, destination)
            return True
        except OSError:
            pass
    try:
        with open(source, "rb") as reader, open(destination, "xb") as writer:
            shutil.copyfileobj(reader, writer, 1 << 20)
        shutil.copystat(source, destination)
    except OSError as error:
        raise FormatError(source, f"cannot be copied to {destination} ({error.strerror or error})") from None
    return False


def write_text(path: Path, text: str) -> None:
    """Write a new text file (UTF-8, ``\\n`` line ends); never overwrites."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "x", encoding="utf-8", newline="\n") as file:
        file.write(text)


def folder_is_free(folder: Path) -> None:
    """Raise ``FileExistsError`` unless ``folder`` is absent or an empty folder (nothing is overwritten)."""
    if folder.is_dir():
        if any(folder.iterdir()):
            raise FileExistsError(f"{folder}: the destination folder is not empty; choose a new or empty folder")
    elif folder.exists():
        raise FileExistsError(f"{folder}: the destination exists and is not a folder")


class OutputItem(NamedTuple):
    """One image as a writer gets it: its unique file name, size and boxes.

    The image itself (when there is one) is already in the format's image folder
    under ``name``; ``size`` is ``(height, width)`` or None.
    """

    name: str
    size: tuple[int, int] | None
    annotation: Annotation
