"""A dataset folder labeled page by page, without napari: its 2-D images and its stacks' planes.

A folder may hold 2-D images and stacks read as data side by side. :class:`FolderLabelStore`
makes each of them pages of one :class:`~.labeling.LabelStore`: a 2-D image is one page saved to
its own file, a stack is one page per plane (in :func:`~.stack_planes.plane_index` order) and
all of them are saved together to the stack's ONE file, as
:class:`~.stack_label_store.StackLabelStore` writes it. A page counts as labeled as training
counts it: a stack's plane once it had a box or was marked, a 2-D image while it has boxes or a
file, or once marked.
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


class FolderLabelStore(LabelStore):
    """A dataset folder's pages, one "image" each: every 2-D image, and every plane of every stack
    (a stack's planes one after the other, in :func:`~.stack_planes.plane_index` order). A 2-D image
    is saved to its own file, as :class:`~.labeling.LabelStore` saves it; a stack's planes share the
    stack's ONE file, written as :class:`~.stack_label_store.StackLabelStore` writes it (``planes``,
    ``labeled_planes``: only the labeled planes).

    :attr:`empty` holds the UNLABELED pages: a stack's plane that nobody marked and that has no box
    (as in :class:`~.stack_label_store.StackLabelStore`), and a 2-D image without boxes whose file
    does not exist (as training counts it: an image with an empty file is labeled empty). :meth:`mark`
    labels pages ("no objects here", predictions accepted); a marked 2-D image is written (empty) on
    saving.

    Parameters
    ----------
    annotations, files, classes, stamps, sizes
        Per page, as for :class:`~.labeling.LabelStore`; a stack's pages name the stack's file.
    planes
        Per page: None for a 2-D image, the plane's leading coordinates for a stack's plane.
    shapes
        The stacks' plane shapes (their leading dimensions), by their annotation file (``str``).
    labeled
        The pages labeled without boxes (from the stacks' ``labeled_planes``).
    """

    def __init__(self, annotations, files, planes, shapes: dict, classes=(), stamps=None, sizes=None,
                 labeled=()):
        self.planes = [None if plane is None else tuple(int(v) for v in plane) for plane in planes]
        self.marked: set[int] = {int(i) for i in labeled}
        self._with_file: set[int] = set()
        count = len(annotations)
        if len(self.planes) != count:
            raise ValueError(f"{len(self.planes)} planes for {count} pages")
        super().__init__(annotations, files, classes=classes, stamps=stamps, sizes=sizes)
        self.shapes = {str(key): tuple(int(s) for s in shape) for key, shape in shapes.items()}
        self.groups: dict[Path, list[int]] = {}
        for index, (plane, path) in enumerate(zip(self.planes, self.files)):
            if plane is not None:
                if path is None:
                    raise ValueError(f"page {index} is a stack's plane without its stack's annotation file")
                self.groups.setdefault(path, []).append(index)
        self._with_file = {i for i in range(count) if self.planes[i] is None and self.stamps[i] is not None}
        for index in range(count):
            self._count(index)

    def is_plane(self, index: int) -> bool:
        """Whether page ``index`` is a stack's plane (not a 2-D image)."""
        return self.planes[index] is not None

    def _labeled(self, index: int) -> bool:
        return index in self.marked or (self.planes[index] is None and index in getattr(self, "_with_file", ()))

    def _count(self, index: int) -> None:
        super()._count(index)
        if len(self.annotations[index]) and self.planes[index] is not None:
            self.marked.add(index)
        if len(self.annotations[index]) or self._labeled(index):
            self.empty.discard(index)
        else:
            self.empty.add(index)

    def mark(self, indices) -> list[int]:
        """Mark pages as labeled; returns those that were not (now unsaved: a 2-D image is then
        written, empty when it has no boxes; a stack's file lists the plane in ``labeled_planes``)."""
        new = []
        for index in sorted({int(i) for i in indices}):
            if not 0 <= index < len(self):
                raise ValueError(f"no page {index} in a folder of {len(self)} pages")
            if index in self.marked or (index not in self.empty and self.planes[index] is None):
                continue
            self.marked.add(index)
            self.empty.discard(index)
            self.dirty.add(index)
            new.append(index)
        return new

    def labeled(self) -> list[int]:
        """The labeled pages, in order."""
        return [i for i in range(len(self)) if i not in self.empty]

    def stack_annotation(self, path: Path) -> Annotation:
        """The stack whose annotation file is ``path`` as its one annotation (its labeled planes only)."""
        pages = self.groups[Path(path)]
        shape = self.shapes[str(path)]
        per_plane = [Annotation() for _ in range(int(np.prod(shape)))]
        marked = []
        for page in pages:
            position = plane_index(self.planes[page], shape)
            per_plane[position] = self.annotations[page]
            if page in self.marked:
                marked.append(position)
        return join_planes(per_plane, shape, marked, self.classes)

    def _written(self, index: int, stamp: Stamp) -> None:
        pages = self.groups.get(self.files[index], [index]) if self.planes[index] is not None else [index]
        for page in pages:
            self.stamps[page] = stamp
            self.dirty.discard(page)
            if self.planes[page] is None:
                self._with_file.add(page)

    def save(self, indices: Sequence[int], confirm_overwrite: ConfirmOverwrite) -> SaveReport:
        """Write pages ``indices``: a 2-D image's file, a stack's one file (every plane) once for all
        of its pages named; files another program changed only if ``confirm_overwrite`` says so."""
        report = SaveReport()
        targets: dict[Path, int] = {}  # file -> the first page that writes it
        for index in indices:
            if self.files[index] is None:
                if index in self.dirty:
                    report.without_file.append(index)
            else:
                targets.setdefault(self.files[index], index)
        conflicts = [path for path, index in targets.items() if self.changed_on_disk(index)]
        if conflicts and not confirm_overwrite(conflicts):
            report.refused = conflicts
            targets = {path: index for path, index in targets.items() if path not in set(conflicts)}
        for path, index in targets.items():
            annotation = self.stack_annotation(path) if self.planes[index] is not None else self.to_save(index)
            written = save_annotation(path, annotation)
            self._written(index, file_stamp(written))
            report.written.append(written)
        return report

    def reload(self, index: int) -> bool:
        """Read page ``index``'s file again (another program changed it): a 2-D image's as
        :class:`~.labeling.LabelStore` does; a stack's only while none of its planes has unsaved edits."""
        if self.planes[index] is None:
            if not super().reload(index):
                return False
            (self._with_file.add if self.stamps[index] is not None else self._with_file.discard)(index)
            self._count(index)
            return True
        path = self.files[index]
        pages = self.groups[path]
        if any(page in self.dirty for page in pages):
            return False
        shape = self.shapes[str(path)]
        stamp = file_stamp(path)
        try:
            annotation = load_annotation(path) if stamp is not None else Annotation(
                planes=np.zeros((0, len(shape)), np.int64))
            if not annotation.is_stack or annotation.planes.shape[1] != len(shape):
                return False
            per_plane = split_planes(annotation, shape)
        except (AnnotationError, ValueError):
            return False
        labeled = {plane_index(plane, shape) for plane in annotation.labeled_planes}
        for name in annotation.classes or ():
            if name not in self.classes:
                self.classes.append(name)
        for page in pages:
            position = plane_index(self.planes[page], shape)
            plane = per_plane[position]
            if self.sizes is not None and self.sizes[page] is not None:
                plane = Annotation(clip_boxes(plane.boxes, *self.sizes[page]), plane.labels, plane.scores,
                                   plane.classes)
            (self.marked.add if position in labeled else self.marked.discard)(page)
            self.set(page, plane, dirty=False)
            self.stamps[page] = stamp
        return True

    def write_to(self, destinations: Sequence[Path], confirm_overwrite: ConfirmOverwrite) -> SaveReport:
        """Write every page to ``destinations`` (one per page), as napari's writer does: a page's own
        file as :meth:`save` does (read again instead when unchanged here but changed on disk), another
        file (an export) as it is; a stack's file once, with every plane."""
        own, elsewhere = [], {}
        for index, destination in enumerate(destinations):
            path = self.files[index]
            if path is not None and same_path(path, destination):
                own.append(index)
            else:
                elsewhere.setdefault(Path(destination), index)
        reloaded = [i for i in own if i not in self.dirty and self.changed_on_disk(i) and self.reload(i)]
        report = self.save([i for i in own if i not in set(reloaded)], confirm_overwrite)
        report.reloaded = reloaded
        for destination, index in elsewhere.items():
            plane = self.planes[index] is not None and self.files[index] is not None
            annotation = self.stack_annotation(self.files[index]) if plane else self.to_save(index)
            report.written.append(save_annotation(destination, annotation))
        return report
