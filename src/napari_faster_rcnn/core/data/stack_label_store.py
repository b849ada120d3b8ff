"""A stack read as data labeled plane by plane, without napari: every plane's boxes, saved to the
stack's ONE annotation file.

:class:`StackLabelStore` is the :class:`~.labeling.LabelStore` of one stack: each plane is an
"image" at its :func:`~.stack_planes.plane_index` position, and a save writes the whole stack
(every plane's boxes with ``planes``, and the labeled planes as ``labeled_planes``) at once.
A plane counts as labeled once it had a box or was marked, so its bookkeeping of unlabeled
planes differs from :class:`~.labeling.LabelStore`'s images without boxes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from napari_faster_rcnn.core.data.annotations import Annotation, AnnotationError, load_annotation, save_annotation
from napari_faster_rcnn.core.data.boxes import clip_boxes
from napari_faster_rcnn.core.data.labeling import (
    ConfirmOverwrite,
    LabelStore,
    SaveReport,
    Stamp,
    file_stamp,
    same_path,
)
from napari_faster_rcnn.core.data.stack_planes import join_planes, plane_index, split_planes


class StackLabelStore(LabelStore):
    """A stack's boxes, one "image" per plane (see :func:`~.stack_planes.plane_index`), saved to ONE file.

    Works as :class:`~.labeling.LabelStore` for a labeling session (counts, classes, unsaved planes),
    with two differences: every plane shares the stack's file, so a save writes that file
    once with every plane (``boxes``, ``labels``, ``planes``, ``labeled_planes``); and
    :attr:`empty` holds the *unlabeled* planes: a plane is labeled once it had a box or was
    marked (:meth:`mark`: "no objects here", predictions accepted), and stays labeled when
    its boxes are deleted.

    Parameters
    ----------
    annotation
        The stack's annotation (with ``planes``; an empty one for a stack without a file).
    path
        The stack's annotation file (None: unknown, saved through napari's writer only).
    shape
        The number of planes along each leading dimension.
    stamp
        The file's :func:`~.labeling.file_stamp` when it was read; by default, stamped now.
    size
        ``(height, width)`` of a plane, to clip boxes of a file read again.
    """

    def __init__(self, annotation: Annotation, path, shape: Sequence[int], classes: Sequence[str] = (),
                 stamp: Stamp | str = "now", size=None):
        self.shape = tuple(int(s) for s in shape)
        self.path = Path(path) if path else None
        labeled = annotation.labeled_planes if annotation.labeled_planes is not None else np.zeros((0, len(self.shape)))
        self.marked: set[int] = {plane_index(plane, self.shape) for plane in labeled}
        per_plane = split_planes(annotation, self.shape)
        count = len(per_plane)
        stamp = file_stamp(self.path) if stamp == "now" else stamp
        super().__init__(per_plane, [self.path] * count, classes=list(classes) or list(annotation.classes or ()),
                         stamps=[stamp] * count, sizes=None if size is None else [tuple(size)] * count)

    def _count(self, index: int) -> None:
        super()._count(index)
        if len(self.annotations[index]):
            self.marked.add(index)
        (self.empty.discard if index in self.marked else self.empty.add)(index)

    def mark(self, indices) -> list[int]:
        """Mark planes (positions) as labeled; returns those that were not (now unsaved)."""
        new = sorted({int(i) for i in indices} - self.marked)
        for index in new:
            if not 0 <= index < len(self):
                raise ValueError(f"no plane {index} in a stack of {len(self)} planes")
            self.marked.add(index)
            self.empty.discard(index)
            self.dirty.add(index)
        return new

    def labeled(self) -> list[int]:
        """The labeled planes' positions, in order."""
        return sorted(self.marked)

    def stack_annotation(self) -> Annotation:
        """Every plane as the stack's one annotation, with the session's class list."""
        return join_planes(self.annotations, self.shape, self.marked, self.classes)

    def save(self, indices: Sequence[int], confirm_overwrite: ConfirmOverwrite) -> SaveReport:
        """Write the stack's file (every plane) when ``indices`` names any plane; asks
        ``confirm_overwrite`` first when another program changed the file."""
        report = SaveReport()
        if not list(indices):
            return report
        if self.path is None:
            report.without_file = sorted(self.dirty)
            return report
        return self._write(self.path, confirm_overwrite, report)

    def _write(self, path: Path, confirm_overwrite: ConfirmOverwrite, report: SaveReport) -> SaveReport:
        if self.changed_on_disk(0) and not confirm_overwrite([path]):
            report.refused = [path]
            return report
        written = save_annotation(path, self.stack_annotation())
        self.stamps = [file_stamp(written)] * len(self)
        self.dirty.clear()
        report.written.append(written)
        return report

    def reload(self, index: int) -> bool:
        """Read the stack's file again (another program changed it): only while no plane has
        unsaved edits, and only a stack's annotation whose planes fit; else False."""
        if self.dirty or self.path is None:
            return False
        stamp = file_stamp(self.path)
        try:
            annotation = load_annotation(self.path) if stamp is not None else Annotation(
                planes=np.zeros((0, len(self.shape)), np.int64))
            if not annotation.is_stack or annotation.planes.shape[1] != len(self.shape):
                return False
            per_plane = split_planes(annotation, self.shape)
        except (AnnotationError, ValueError):
            return False
        self.marked = {plane_index(plane, self.shape) for plane in annotation.labeled_planes}
        for name in annotation.classes or ():
            if name not in self.classes:
                self.classes.append(name)
        for position, plane in enumerate(per_plane):
            if self.sizes is not None:
                plane = Annotation(clip_boxes(plane.boxes, *self.sizes[position]), plane.labels, plane.scores,
                                   plane.classes)
            self.set(position, plane, dirty=False)
        self.empty = {i for i in range(len(self)) if i not in self.marked}
        self.stamps = [stamp] * len(self)
        return True

    def write_to(self, destinations: Sequence[Path], confirm_overwrite: ConfirmOverwrite) -> SaveReport:
        """Write the stack to ``destinations[0]``, as napari's writer does: its own file as
        :meth:`save` does (read again instead when unchanged here but changed on disk), another
        file (an export) as it is."""
        (destination,) = destinations[:1]
        report = SaveReport()
        if self.path is not None and same_path(self.path, destination):
            if not self.dirty and self.changed_on_disk(0) and self.reload(0):
                report.reloaded = list(range(len(self)))
                return report
            return self._write(self.path, confirm_overwrite, report)
        report.written.append(save_annotation(destination, self.stack_annotation()))
        return report
