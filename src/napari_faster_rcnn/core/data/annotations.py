"""Annotations: boxes, labels and optional scores of one image, and their files.

One file per image, named after the image's stem:

- ``NAME.pt``: a dict saved with ``torch.save``; keys ``boxes`` (N, 4) xyxy pixels,
  ``labels`` (N class names; integers are read too) and optional ``scores`` (N,)
  and ``classes`` (the dataset's class list). Values may be tensors, numpy arrays,
  lists of arrays or lists of numbers.
- Stacks (time-lapse, z stacks) add ``planes`` (N, k) integers, each box's leading
  coordinates (its frame, its z, ...), and ``labeled_planes`` (M, k) integers, the
  planes a person labeled, with or without boxes. A plane not listed is unlabeled,
  never "no objects". A 2-D image's file has neither key.
- ``NAME.json``: the same keys as JSON lists.

Loading never runs code from a file (see :mod:`.safe_load`); anything that is
not an annotation raises :class:`AnnotationError`, naming the file and why.
Saving is atomic (see :mod:`.atomic_files`): a temporary file in the same folder, then a rename.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from napari_faster_rcnn.core.data.annotation_values import as_labels, as_planes, as_scores
from napari_faster_rcnn.core.data.atomic_files import atomic_write_bytes
from napari_faster_rcnn.core.data.boxes import as_boxes, check_boxes

ANNOTATION_SUFFIXES = (".pt", ".json")

#: Saved beside prediction files: the score and NMS thresholds they passed
#: (see :mod:`.inference`). It is not an annotation, though it ends in ``.json``.
THRESHOLDS_FILE = "thresholds.json"


class AnnotationError(ValueError):
    """A file that is not a readable annotation; ``str()`` names the file and the reason."""

    def __init__(self, path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass(eq=False)
class Annotation:
    """Boxes of one image.

    Attributes
    ----------
    boxes : (N, 4) float64 array
        Pixel xyxy boxes.
    labels : list of str
        One class name per box. Integer labels are kept as their decimal text.
    scores : (N,) float64 array or None
        Confidence per box, for predictions.
    classes : list of str or None
        The dataset's class list, when the file carries one.
    planes : (N, k) int64 array or None
        For a stack: each box's leading coordinates (its plane). ``None`` for a 2-D image.
    labeled_planes : (M, k) int64 array or None
        For a stack: the planes a person labeled (unique, sorted), with or without
        boxes. Every plane holding a box is labeled. ``None`` for a 2-D image.
    """

    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    labels: list = field(default_factory=list)
    scores: np.ndarray | None = None
    classes: list | None = None
    planes: np.ndarray | None = None
    labeled_planes: np.ndarray | None = None

    def __post_init__(self):
        self.boxes = as_boxes(self.boxes)
        check_boxes(self.boxes)
        self.labels = as_labels(self.labels)
        if len(self.labels) != len(self.boxes):
            raise ValueError(f"{len(self.boxes)} boxes but {len(self.labels)} labels")
        if self.scores is not None:
            self.scores = as_scores(self.scores)
            if len(self.scores) != len(self.boxes):
                raise ValueError(f"{len(self.boxes)} boxes but {len(self.scores)} scores")
        if self.classes is not None:
            self.classes = as_labels(self.classes)
        self._check_planes()

    def _check_planes(self) -> None:
        if self.planes is None and self.labeled_planes is None:
            return
        if self.planes is None and len(self.boxes):
            raise ValueError(f"{len(self.boxes)} boxes but no 'planes' (a stack's boxes need their plane)")
        planes = None if self.planes is None else as_planes(self.planes, "planes")
        labeled = None if self.labeled_planes is None else as_planes(self.labeled_planes, "labeled_planes")
        # an empty list says nothing about k: take it from the other key
        if planes is not None and len(planes) == 0 and labeled is not None:
            planes = np.zeros((0, labeled.shape[1]), dtype=np.int64)
        if labeled is not None and len(labeled) == 0 and planes is not None:
            labeled = np.zeros((0, planes.shape[1]), dtype=np.int64)
        if planes is None:
            planes = np.zeros((0, labeled.shape[1]), dtype=np.int64)
        if labeled is None:
            labeled = np.zeros((0, planes.shape[1]), dtype=np.int64)
        if len(planes) != len(self.boxes):
            raise ValueError(f"{len(self.boxes)} boxes but {len(planes)} planes")
        if labeled.shape[1] != planes.shape[1]:
            raise ValueError(
                f"'planes' have {planes.shape[1]} leading coordinates but 'labeled_planes' {labeled.shape[1]}"
            )
        # a plane with a box is labeled: the union, unique and sorted
        depth = planes.shape[1]
        self.planes = planes
        self.labeled_planes = np.unique(np.concatenate([labeled, planes]), axis=0).reshape(-1, depth)

    @property
    def is_stack(self) -> bool:
        """Whether this annotation belongs to a stack (its boxes carry planes)."""
        return self.planes is not None

    def on_plane(self, plane) -> Annotation:
        """The boxes of one plane (leading coordinates) as a 2-D annotation."""
        if self.planes is None:
            raise ValueError("not a stack's annotation: it has no planes")
        plane = np.asarray(plane, dtype=np.int64).reshape(-1)
        keep = np.flatnonzero((self.planes == plane).all(axis=1))
        return Annotation(
            boxes=self.boxes[keep],
            labels=[self.labels[i] for i in keep],
            scores=None if self.scores is None else self.scores[keep],
            classes=self.classes,
        )

    def __len__(self) -> int:
        return len(self.boxes)

    def __eq__(self, other) -> bool:
        if not isinstance(other, Annotation):
            return NotImplemented
        same_scores = (self.scores is None) == (other.scores is None) and (
            self.scores is None or np.array_equal(self.scores, other.scores)
        )
        return (
            np.array_equal(self.boxes, other.boxes)
            and self.labels == other.labels
            and same_scores
            and self.classes == other.classes
            and _same_optional(self.planes, other.planes)
            and _same_optional(self.labeled_planes, other.labeled_planes)
        )

    def select(self, keep) -> Annotation:
        """A new annotation with the boxes where ``keep`` (mask or indices) holds."""
        keep = np.asarray(keep)
        if keep.dtype == bool:
            keep = np.flatnonzero(keep)
        keep = keep.astype(np.int64, copy=False)  # an empty list is float to numpy
        return Annotation(
            boxes=self.boxes[keep],
            labels=[self.labels[i] for i in keep],
            scores=None if self.scores is None else self.scores[keep],
            classes=self.classes,
            planes=None if self.planes is None else self.planes[keep],
            labeled_planes=self.labeled_planes,
        )

    def to_dict(self, tensors: bool = False, labeled_planes: bool = True) -> dict:
        """Plain dict of lists (JSON) or of tensors and a list of strings (``.pt``).

        ``labeled_planes=False`` leaves a stack's ``labeled_planes`` out: predictions are not labels.
        """
        if tensors:
            import torch

            data = {"boxes": torch.as_tensor(self.boxes, dtype=torch.float64), "labels": list(self.labels)}
            if self.scores is not None:
                data["scores"] = torch.as_tensor(self.scores, dtype=torch.float64)
        else:
            data = {"boxes": self.boxes.tolist(), "labels": list(self.labels)}
            if self.scores is not None:
                data["scores"] = self.scores.tolist()
        if self.classes is not None:
            data["classes"] = list(self.classes)
        if self.planes is not None:
            if tensors:
                import torch

                data["planes"] = torch.as_tensor(self.planes, dtype=torch.int64)
                if labeled_planes:
                    data["labeled_planes"] = torch.as_tensor(self.labeled_planes, dtype=torch.int64)
            else:
                data["planes"] = self.planes.tolist()
                if labeled_planes:
                    data["labeled_planes"] = self.labeled_planes.tolist()
        return data

    @classmethod
    def from_mapping(cls, mapping: Mapping) -> Annotation:
        """Build from a dict with ``boxes``, ``labels`` and optional ``scores``/``classes``.

        Raises ``ValueError`` with the reason when the dict is not an annotation.
        """
        if not isinstance(mapping, Mapping):
            raise ValueError(f"expected a dict with 'boxes' and 'labels', got {type(mapping).__name__}")
        if "boxes" not in mapping:
            keys = ", ".join(map(repr, list(mapping)[:8])) or "none"
            raise ValueError(f"no 'boxes' key (keys: {keys})")
        boxes = as_boxes(mapping["boxes"])
        if "labels" in mapping:
            labels = mapping["labels"]
        elif len(boxes) == 0:
            labels = []
        else:
            raise ValueError(f"{len(boxes)} boxes but no 'labels' key")
        return cls(
            boxes=boxes,
            labels=labels,
            scores=mapping.get("scores"),
            classes=mapping.get("classes"),
            planes=mapping.get("planes"),
            labeled_planes=mapping.get("labeled_planes"),
        )


def _same_optional(first, second) -> bool:
    if first is None or second is None:
        return first is None and second is None
    return first.shape == second.shape and np.array_equal(first, second)


# --- files -----------------------------------------------------------------


def load_annotation(path: str | Path) -> Annotation:
    """Read a ``.pt`` or ``.json`` annotation file.

    Raises
    ------
    AnnotationError
        If the file cannot be read or does not hold an annotation; the message
        names the file and the reason. Nothing in the file is executed.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in ANNOTATION_SUFFIXES:
        raise AnnotationError(path, f"unknown annotation format {path.suffix!r} (use .pt or .json)")
    try:
        raw = _read_pt(path) if suffix == ".pt" else _read_json(path)
    except AnnotationError:
        raise
    except FileNotFoundError:
        raise AnnotationError(path, "file not found") from None
    except IsADirectoryError:
        raise AnnotationError(path, "is a folder, not a file") from None
    try:
        return Annotation.from_mapping(raw)
    except ValueError as error:
        raise AnnotationError(path, str(error)) from None


def _read_pt(path: Path):
    from napari_faster_rcnn.core.data.safe_load import explain_load_error, safe_torch_load

    if not path.exists():
        raise FileNotFoundError(path)
    try:
        return safe_torch_load(path)
    except Exception as error:  # torch raises many types for bad files; all mean "not readable"
        reason = explain_load_error(error)
        if reason.startswith("could not be read") and not zipfile.is_zipfile(path):
            # Not torch's zip format: torch read it as a legacy pickle, and random bytes fail
            # there in arbitrary ways (IndexError, UnicodeDecodeError, ...). It is damaged.
            reason = "not a readable PyTorch file (truncated or corrupt)"
        raise AnnotationError(path, reason) from None


def _read_json(path: Path):
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise AnnotationError(path, f"not valid JSON ({error})") from None


def save_annotation(path: str | Path, annotation: Annotation, labeled_planes: bool = True) -> Path:
    """Write ``annotation`` to ``path`` (``.pt`` or ``.json``) atomically.

    ``.pt`` files hold tensors and a list of strings, so a plain ``torch.load``
    with PyTorch's safe defaults reads them. ``labeled_planes=False`` writes a
    stack's predictions: ``planes`` without ``labeled_planes`` (predictions are not labels).
    """
    path = Path(path)
    atomic_write_bytes(path, annotation_bytes(path, annotation, labeled_planes))
    return path


def annotation_bytes(path: str | Path, annotation: Annotation, labeled_planes: bool = True) -> bytes:
    """The content of the annotation file ``path`` (``.pt`` or ``.json``) for ``annotation``.

    For writers that make the file safe another way (a whole new folder renamed
    into place) and need not pay :func:`save_annotation`'s fsync per file.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".pt":
        import io

        import torch

        buffer = io.BytesIO()
        torch.save(annotation.to_dict(tensors=True, labeled_planes=labeled_planes), buffer)
        return buffer.getvalue()
    if suffix == ".json":
        return json.dumps(annotation.to_dict(labeled_planes=labeled_planes), indent=1).encode("utf-8")
    raise ValueError(f"{path}: unknown annotation format {path.suffix!r} (use .pt or .json)")


def find_annotation_file(image_path: str | Path) -> Path | None:
    """The annotation of an image: ``STEM.pt``/``STEM.json`` beside it or in a sibling ``target/``."""
    image_path = Path(image_path)
    folders = [image_path.parent, image_path.parent.parent / "target"]
    for folder in folders:
        for suffix in ANNOTATION_SUFFIXES:
            candidate = folder / f"{image_path.stem}{suffix}"
            if candidate.is_file():
                return candidate
    return None


def default_annotation_path(image_path: str | Path, suffix: str = ".pt") -> Path:
    """Where a new annotation for ``image_path`` goes: a sibling ``target/`` when the
    image lies in ``input/`` (the tutorial's layout), else beside the image."""
    image_path = Path(image_path)
    if image_path.parent.name == "input":
        return image_path.parent.parent / "target" / f"{image_path.stem}{suffix}"
    return image_path.with_suffix(suffix)


def class_list(annotations: Sequence[Annotation], known: Sequence[str] = ()) -> list[str]:
    """Class names in a stable order: ``known`` first, then the rest as first seen."""
    names = list(dict.fromkeys(known))
    seen = set(names)
    for annotation in annotations:
        for name in annotation.classes or ():
            if name not in seen:
                seen.add(name)
                names.append(name)
        for name in annotation.labels:
            if name not in seen:
                seen.add(name)
                names.append(name)
    return names
