"""Rejected suggestions remembered across sessions: one small JSON file per folder of images.

When the person rejects a suggestion (Label boxes > Suggestions, key ``j``), its box and class are
written to ``.napari-faster-rcnn/rejected-suggestions.json`` in the folder of the image (of the
stack, for a plane), so that the suggestion does not come back on that image (that plane) after the
folder is opened again, with the same model or a retrained one. A new suggestion is left out only
when a rejected box OF ITS CLASS on its image covers it (IoU of at least
:data:`~napari_faster_rcnn.core.prediction.suggestions.COVERED_IOU`, see
:func:`~napari_faster_rcnn.core.prediction.suggestions.shown_suggestions`).

The file (:data:`REJECTED_FILE`)::

    {"format": "napari-faster-rcnn rejected suggestions", "version": 1,
     "images": {"001.png": {"": {"boxes": [[x1, y1, x2, y2], ...], "labels": ["cell", ...]}},
                "movie.tif": {"3": {...}, "2,5": {...}}}}

keyed by the image's file name, then by the plane's leading indices joined by commas (``""`` for a
2-D image). It is plain JSON, read with :func:`json.loads` and checked field by field (nothing in it
is executed), and written atomically (a temporary file renamed over it) after each rejection, merged
with what is on disk then.

When the file cannot be used the rejections are kept in memory for the session, with one warning
naming the file: a folder that cannot be written (read-only), or a file that cannot be read or is
not such a file (it is then left as it is, not overwritten).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path

import numpy as np

__all__ = ["REJECTED_FILE", "RejectedSuggestions", "read_rejected_file"]

#: Where the rejected suggestions of a folder's images are kept, relative to that folder.
REJECTED_FILE = Path(".napari-faster-rcnn") / "rejected-suggestions.json"
FORMAT = "napari-faster-rcnn rejected suggestions"
VERSION = 1

_Entry = tuple[np.ndarray, list[str]]


def _plane_key(plane) -> str:
    return "" if plane is None else ",".join(str(int(v)) for v in plane)


def read_rejected_file(path: Path) -> dict[str, dict[str, _Entry]]:
    """The rejected boxes of a file: ``{image name: {plane key: (boxes (N, 4), labels)}}``; empty when
    there is no file.

    Raises
    ------
    ValueError
        Naming the file and what is wrong with it (not JSON, not this format, a malformed entry).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: cannot be read ({error})") from None
    try:
        data = json.loads(text)
    except ValueError as error:
        raise ValueError(f"{path}: not JSON ({error})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("images"), dict):
        raise ValueError(f"{path}: not a file of rejected suggestions (no \"format\": {FORMAT!r} and \"images\")")
    if data.get("version") != VERSION:
        raise ValueError(f"{path}: version {data.get('version')!r}, this program reads version {VERSION}")
    found: dict[str, dict[str, _Entry]] = {}
    for name, planes in data["images"].items():
        if not isinstance(planes, dict):
            raise ValueError(f"{path}: image {name!r} is not an object of planes")
        for key, entry in planes.items():
            where = f"{path}: image {name!r} plane {key!r}"
            if not isinstance(entry, dict):
                raise ValueError(f"{where}: not an object with boxes and labels")
            boxes, labels = entry.get("boxes"), entry.get("labels")
            try:
                boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
            except (TypeError, ValueError):
                raise ValueError(f"{where}: boxes are not lists of 4 numbers") from None
            if not np.isfinite(boxes).all():
                raise ValueError(f"{where}: boxes are not finite numbers")
            if not isinstance(labels, list) or len(labels) != len(boxes) or not all(isinstance(v, str) for v in labels):
                raise ValueError(f"{where}: labels are not one text per box")
            found.setdefault(str(name), {})[str(key)] = (boxes, list(labels))
    return found


def _file_bytes(images: dict[str, dict[str, _Entry]]) -> bytes:
    data = {"format": FORMAT, "version": VERSION,
            "images": {name: {key: {"boxes": boxes.tolist(), "labels": list(labels)}
                              for key, (boxes, labels) in sorted(planes.items())}
                       for name, planes in sorted(images.items())}}
    return json.dumps(data, indent=1).encode("utf-8")


class RejectedSuggestions:
    """Rejected boxes and their classes per image: of an image file (``key`` a ``(Path, plane)`` pair,
    ``plane`` a tuple of leading indices, or None for a 2-D image) kept in its folder's :data:`REJECTED_FILE`; of anything else
    (``key`` any other hashable: an image without a file) in memory only.

    ``warn(text)`` tells the person when a folder's file cannot be used (once per folder).
    """

    def __init__(self, warn: Callable[[str], None] | None = None):
        self.warn = warn or (lambda text: warnings.warn(text, stacklevel=3))
        self._memory: dict[Hashable, _Entry] = {}
        self._folders: dict[Path, dict[str, dict[str, _Entry]]] = {}  # folder -> images (the file's and ours)
        self._memory_only: set[Path] = set()  # folders whose file cannot be used

    @staticmethod
    def _file_key(key) -> tuple[Path, str, str] | None:
        if isinstance(key, tuple) and len(key) == 2 and isinstance(key[0], Path) and (
                key[1] is None or isinstance(key[1], tuple)):
            return key[0].parent, key[0].name, _plane_key(key[1])
        return None

    def _folder(self, folder: Path) -> dict[str, dict[str, _Entry]]:
        if folder not in self._folders:
            self._folders[folder] = self._read(folder)
        return self._folders[folder]

    def _read(self, folder: Path) -> dict[str, dict[str, _Entry]]:
        try:
            return read_rejected_file(folder / REJECTED_FILE)
        except ValueError as error:
            self._memory_only.add(folder)
            self.warn(f"rejected suggestions: {error}; it is left as it is, and what is rejected now is "
                      "remembered for this session only")
            return {}

    def get(self, key) -> tuple[np.ndarray, list[str]]:
        """``(boxes (N, 4), labels)`` rejected on image ``key``."""
        where = self._file_key(key)
        if where is None:
            boxes, labels = self._memory.get(key, (np.zeros((0, 4)), []))
        else:
            folder, name, plane = where
            boxes, labels = self._folder(folder).get(name, {}).get(plane, (np.zeros((0, 4)), []))
        return boxes, list(labels)

    def add(self, key, boxes, labels: Sequence[str]) -> None:
        """Remember ``boxes`` (``(N, 4)``) of classes ``labels`` as rejected on image ``key``; an image
        file's folder file is written at once."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        labels = [str(label) for label in labels]
        if len(labels) != len(boxes):
            raise ValueError(f"{len(boxes)} boxes with {len(labels)} labels")
        if not len(boxes):
            return
        where = self._file_key(key)
        if where is None:
            old_boxes, old_labels = self.get(key)
            self._memory[key] = (np.concatenate([old_boxes, boxes]), old_labels + labels)
            return
        folder, name, plane = where
        images = self._folder(folder)
        if folder not in self._memory_only:  # what another viewer wrote meanwhile, with ours
            fresh = self._read(folder)
            if folder not in self._memory_only:
                for other, planes in images.items():  # ours not yet on disk stay (none, when every write went)
                    for plane_key, entry in planes.items():
                        fresh.setdefault(other, {}).setdefault(plane_key, entry)
                images = self._folders[folder] = fresh
        old_boxes, old_labels = images.get(name, {}).get(plane, (np.zeros((0, 4)), []))
        images.setdefault(name, {})[plane] = (np.concatenate([old_boxes, boxes]), list(old_labels) + labels)
        if folder in self._memory_only:
            return
        from napari_faster_rcnn.core.data.atomic_files import atomic_write_bytes

        path = folder / REJECTED_FILE
        try:
            path.parent.mkdir(exist_ok=True)
            atomic_write_bytes(path, _file_bytes(images))
        except OSError as error:
            self._memory_only.add(folder)
            self.warn(f"rejected suggestions: {path} cannot be written ({error.strerror or error}); what is "
                      "rejected is remembered for this session only")

    def __len__(self) -> int:
        """Boxes rejected on all images known so far."""
        return (sum(len(boxes) for boxes, _ in self._memory.values())
                + sum(len(boxes) for planes in self._folders.values() for entries in planes.values()
                      for boxes, _ in entries.values()))
