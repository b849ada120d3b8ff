"""Detecting, reading, writing and converting dataset folders in any of the formats.

Writing builds the whole new folder under a hidden temporary name beside it
(``.NAME.partial-PID@HOST-XXXXXXXX``) and renames it into place at the end, so an
interrupted export leaves no half-written dataset; such a folder that a killed
run left is removed by the next write to the same destination, once its
process is gone. Writing refuses a destination that holds anything, so
nothing is ever overwritten. The new folder and the folders in it get the mode
that ``mkdir`` gives under the process's umask.

Images are hard-linked where the file system allows (no space, no time;
deleting either folder leaves the other whole), else copied;
``link_images=False`` always copies, for when the new folder's images will be
edited in place. The user's files are never moved or changed.

Boxes that reach outside their image are cut at its border on writing, as our
own files are saved (:func:`~napari_faster_rcnn.core.data.boxes.clip_boxes`),
and counted in the report; the boxes of an image whose size is unknown are
written as they are.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from napari_faster_rcnn.core.data.annotations import Annotation, class_list
from napari_faster_rcnn.core.data.atomic_files import new_folder_mode
from napari_faster_rcnn.core.data.boxes import clip_boxes
from napari_faster_rcnn.core.formats import coco_json, native, pascal_voc, yolo_txt
from napari_faster_rcnn.core.formats._common import (
    FORMATS,
    FormatError,
    LabeledDataset,
    OutputItem,
    folder_is_free,
    header_size,
    place_image,
    unique_names,
)
from napari_faster_rcnn.core.progress import run_to_end

_MODULES = {"coco": coco_json, "voc": pascal_voc, "yolo": yolo_txt, "pt": native}

FORMAT_TITLES = {
    "coco": "COCO JSON",
    "voc": "Pascal VOC XML",
    "yolo": "YOLO txt",
    "pt": "input/ + target/*.pt",
}


def _module(fmt: str):
    if fmt not in _MODULES:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return _MODULES[fmt]


def _folder(folder) -> Path:
    root = Path(folder)
    if not root.is_dir():
        raise FormatError(root, "not a folder" if not root.exists() else "is a file, not a dataset folder")
    return root


def detect_format(folder: str | Path) -> str:
    """The format of a dataset folder: ``"pt"``, ``"coco"``, ``"voc"`` or ``"yolo"``.

    Our own layouts (``input/``, ``target/``, ``.pt`` files) come first, then a
    COCO JSON, VOC XML files, YOLO's ``data.yaml``/``classes.txt``/``labels/``,
    and last images with ``.json`` annotations beside them (or images alone).

    Raises
    ------
    FormatError
        If the folder does not exist or nothing in it fits a format; the
        message names the folder.
    """
    root = _folder(folder)
    if native.detect(root):
        return "pt"
    for fmt in ("coco", "voc", "yolo"):
        if _MODULES[fmt].detect(root):
            return fmt
    if native.detect_loosely(root):
        return "pt"
    raise FormatError(
        root,
        "no dataset in a known format: no COCO JSON, no Pascal VOC XML files, no YOLO data.yaml, "
        "classes.txt or labels/ folder, and no images or .pt/.json annotations",
    )


def matching_formats(folder: str | Path) -> list[str]:
    """Every format whose files are in ``folder``, in :func:`detect_format`'s order.

    More than one means the folder is ambiguous (a COCO JSON beside VOC XML
    files, say) and a person should choose; the first is what
    :func:`detect_format` returns. Images with nothing of a format beside them
    count as ``"pt"`` only when no other format fits (any labeled folder has
    images). An empty list: nothing fits.
    """
    root = _folder(folder)
    found = ["pt"] if native.detect(root) else []
    found += [fmt for fmt in ("coco", "voc", "yolo") if _MODULES[fmt].detect(root)]
    if not found and native.detect_loosely(root):
        found.append("pt")
    return found


def read_dataset(folder: str | Path, fmt: str | None = None) -> LabeledDataset:
    """Read a dataset folder in ``fmt`` (detected when None) into a :class:`LabeledDataset`.

    Files that cannot be read are listed in ``skipped`` with the reason (with
    their images, so nothing is written over them later); a folder that is no
    dataset at all raises :class:`FormatError` naming it. Nothing in any file
    is executed (JSON, YAML with ``safe_load``, XML without DTDs, ``.pt`` with
    ``weights_only``).
    """
    root = _folder(folder)
    fmt = fmt or detect_format(root)
    return _module(fmt).read(root)


@dataclass
class ConversionReport:
    """What a write or a conversion did.

    Attributes
    ----------
    destination : Path
        The new dataset folder.
    format : str
        The format written.
    images : int
        Images written (with their annotations, empty ones included).
    image_files, linked : int
        Image files placed in the new folder, and how many of them are hard links.
    boxes : int
    clipped_boxes : int
        Boxes that reached outside their image and were cut at its border.
    classes : list of str
        The class list written, in its order (COCO ids from 1, YOLO indices from 0).
    skipped : list of (Path, str)
        Files (or images) left out, with the reason, from reading and writing.
    notes : list of str
    source, source_format
        The folder read and its format, for a conversion.
    """

    destination: Path
    format: str
    images: int = 0
    image_files: int = 0
    linked: int = 0
    boxes: int = 0
    clipped_boxes: int = 0
    classes: list[str] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    source: Path | None = None
    source_format: str | None = None

    def summary(self) -> str:
        """A few lines for a person: what was read and written, and what was left out why."""
        lines = []
        if self.source is not None:
            lines.append(f"read {self.source} as {FORMAT_TITLES.get(self.source_format, self.source_format)}")
        copied = self.image_files - self.linked
        how = f"{self.linked} hard-linked, {copied} copied" if self.image_files else "no image files"
        lines.append(
            f"wrote {self.images} images ({how}), {self.boxes} boxes, {len(self.classes)} classes "
            f"as {FORMAT_TITLES.get(self.format, self.format)} to {self.destination}"
        )
        if self.clipped_boxes:
            lines.append(f"clipped {self.clipped_boxes} boxes that reached outside their image to its border")
        if self.classes:
            lines.append("classes: " + ", ".join(self.classes))
        lines.extend(f"note: {note}" for note in self.notes)
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)}:")
            lines.extend(f"  {path}: {reason}" for path, reason in self.skipped)
        return "\n".join(lines)


def iter_write_dataset(
    dataset: LabeledDataset, folder: str | Path, fmt: str, link_images: bool = True
) -> Generator[tuple[int, int], None, ConversionReport]:
    """Write ``dataset`` as a new folder in ``fmt``, yielding ``(done, total)`` images as it goes.

    The generator's return value is the :class:`ConversionReport` (a napari
    ``thread_worker`` hands it to ``returned``). Closing the generator early
    removes what it had written.

    Raises
    ------
    FileExistsError
        If ``folder`` exists and is not an empty folder (checked before anything is written).
    ValueError
        For an unknown ``fmt``.
    """
    module = _module(fmt)
    folder = Path(folder)
    folder_is_free(folder)
    report = ConversionReport(destination=folder, format=fmt, notes=[])
    classes = class_list([item.annotation for item in dataset.items], dataset.classes)
    items, sizes = [], []
    for item in dataset.items:
        size = item.size
        if size is None and item.image is not None and item.image.is_file():
            size = header_size(item.image, report.skipped)
        if size is None and module.NEEDS_SIZE:
            report.skipped.append((item.image or Path(item.name), f"the image size is unknown, which {fmt} needs"))
            continue
        items.append(item)
        sizes.append(size)
    names = unique_names(items)
    renamed = sum(1 for item, name in zip(items, names) if Path(item.name).name != name)
    if renamed:
        report.notes.append(f"{renamed} images were renamed (STEM_2, ...) as another image had the same name")

    folder.parent.mkdir(parents=True, exist_ok=True)
    removed = remove_stale_staging(folder)
    if removed:
        report.notes.append(f"removed {removed} unfinished folders that an interrupted write to {folder.name} had left")
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=_staging_prefix(folder)))
    try:
        os.chmod(staging, new_folder_mode())  # mkdtemp's 0700 would make the new dataset private
        total = len(items)
        missing = 0
        for done, (item, name) in enumerate(zip(items, names), start=1):
            if item.image is not None and item.image.is_file():
                report.linked += place_image(item.image, staging / module.IMAGE_FOLDER / name, link_images)
                report.image_files += 1
            else:
                missing += 1
            yield done, total
        if missing:
            report.notes.append(f"{missing} images are not on disk; only their annotations were written")
        outputs = []
        for item, name, size in zip(items, names, sizes):
            annotation, clipped = clip_to_image(item.annotation, size)
            report.clipped_boxes += clipped
            outputs.append(OutputItem(name, size, annotation))
        module.write(staging, classes, outputs, report.notes)
        if folder.exists():
            folder_is_free(folder)  # still empty: something else may have written meanwhile
            os.chmod(staging, folder.stat().st_mode & 0o777)  # the user's empty folder keeps its mode
            folder.rmdir()
        os.rename(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    report.images = len(outputs)
    report.boxes = sum(len(output.annotation) for output in outputs)
    report.classes = classes
    yield total, total
    return report


# Boxes past the border by less than this are float noise (YOLO's centre and size read back), not worth a mention.
_CLIP_TOLERANCE = 1e-6


def clip_to_image(annotation: Annotation, size: tuple[int, int] | None) -> tuple[Annotation, int]:
    """``annotation`` with its boxes cut at the border of an image of ``size`` ``(height, width)``,
    and how many boxes reached outside it (by more than float noise). Unknown size: unchanged."""
    if size is None or len(annotation) == 0:
        return annotation, 0
    boxes = clip_boxes(annotation.boxes, *size)
    moved = int((np.abs(boxes - annotation.boxes) > _CLIP_TOLERANCE).any(axis=1).sum())
    if not (boxes != annotation.boxes).any():
        return annotation, 0
    return Annotation(boxes, annotation.labels, annotation.scores, annotation.classes), moved


# --- staging folders ------------------------------------------------------------

# A staging folder that another machine's run left is only removed when it is this old.
_FOREIGN_STAGING_AGE = 24 * 3600


def _host() -> str:
    # the short name, kept short: the folder's name must stay within the file system's 255 bytes
    return re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname().split(".")[0])[:40] or "host"


def _staging_prefix(folder: Path) -> str:
    return f".{folder.name}.partial-{os.getpid()}@{_host()}-"


def remove_stale_staging(folder: Path) -> int:
    """Remove the hidden staging folders (``.NAME.partial-*``) of writes to ``folder``
    whose process is gone (killed midway); returns how many were removed.

    A staging folder of a process still running on this machine is left alone
    (it may be writing now), as is another machine's unless it is a day old.
    Names without an owner (written by older versions) count as stale.
    """
    name = re.escape(folder.name)
    owned = re.compile(rf"\.{name}\.partial-(\d+)@(.+)-[a-z0-9_]{{8}}")
    unowned = re.compile(rf"\.{name}\.partial-[a-z0-9_]{{8}}")
    try:
        entries = list(folder.parent.iterdir())
    except OSError:
        return 0
    removed = 0
    for entry in entries:
        match = owned.fullmatch(entry.name)
        if match is None and unowned.fullmatch(entry.name) is None:
            continue
        if entry.is_symlink() or not entry.is_dir():
            continue
        if match is not None and _may_be_running(entry, int(match.group(1)), match.group(2)):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed += not entry.exists()
    return removed


def _may_be_running(entry: Path, pid: int, host: str) -> bool:
    if host != _host():
        try:
            return time.time() - entry.stat().st_mtime < _FOREIGN_STAGING_AGE
        except OSError:
            return False
    if pid == os.getpid():
        return True
    try:
        import psutil
    except ImportError:  # pragma: no cover - napari depends on psutil
        return True
    return psutil.pid_exists(pid)


def write_dataset(dataset: LabeledDataset, folder: str | Path, fmt: str, link_images: bool = True) -> ConversionReport:
    """Write ``dataset`` as a new folder in ``fmt`` (see :func:`iter_write_dataset`)."""
    return run_to_end(iter_write_dataset(dataset, folder, fmt, link_images))


def iter_convert_dataset(
    source: str | Path, destination: str | Path, to: str, fmt: str | None = None, link_images: bool = True
) -> Generator[tuple[int, int], None, ConversionReport]:
    """Read ``source`` (in ``fmt``, detected when None) and write it to the new folder
    ``destination`` in ``to``, yielding ``(done, total)``; returns the :class:`ConversionReport`."""
    _module(to)
    if fmt is not None:
        _module(fmt)
    destination = Path(destination)
    folder_is_free(destination)  # before reading, so a mistake costs nothing
    dataset = read_dataset(source, fmt)
    if not dataset.items:
        reasons = "; ".join(f"{path.name}: {reason}" for path, reason in dataset.skipped[:3])
        raise FormatError(Path(source), "no image could be read" + (f" ({reasons})" if reasons else ""))
    report = yield from iter_write_dataset(dataset, destination, to, link_images)
    report.source, report.source_format = Path(source), dataset.format
    report.skipped[:0] = dataset.skipped
    report.notes[:0] = dataset.notes
    return report


def convert_dataset(
    source: str | Path, destination: str | Path, to: str, fmt: str | None = None, link_images: bool = True
) -> ConversionReport:
    """Convert the dataset folder ``source`` into the new folder ``destination`` in format ``to``.

    Parameters
    ----------
    source : folder in any of :data:`FORMATS`
    destination : a folder that does not exist yet, or an empty one
    to : ``"coco"``, ``"voc"``, ``"yolo"`` or ``"pt"``
    fmt : the source's format; detected when None
    link_images : hard-link images where possible (else copy); False always copies

    Raises
    ------
    FileExistsError
        If ``destination`` holds anything (nothing is read or written then).
    FormatError
        If ``source`` is no dataset, or none of its images could be read.
    """
    return run_to_end(iter_convert_dataset(source, destination, to, fmt, link_images))
