"""What a labeling session knows about its files, without napari: every image's boxes, where
each is saved, what changed since, and whether another program changed a file meanwhile.

A person labels one image at a time, but a session spans the whole dataset: the class
list is shared by every file (each file carries it under ``classes``), the counts per
class and the images without boxes are shown for the whole set, and nothing may be
lost or silently overwritten. :class:`LabelStore` keeps that state and keeps it up to
date one image at a time, so that moving to the next image of a 1,000-image set costs
the same as in a 10-image set (no rescan of files or boxes).

Another program's edits
    The store remembers a :func:`file_stamp` (modification time, size and inode) of
    each annotation file as it was read or last written here. Before writing, the
    file is stamped again: if the stamp differs, someone else wrote (or deleted) it,
    and a ``confirm_overwrite`` callback decides. An image without unsaved edits
    whose file changed is read again instead (their version wins; nothing of ours
    is lost).

Writes go through :func:`~.annotations.save_annotation`, which is atomic.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from napari_faster_rcnn.core.data.annotations import Annotation, AnnotationError, load_annotation, save_annotation
from napari_faster_rcnn.core.data.boxes import clip_boxes
from napari_faster_rcnn.core.data.stack_planes import join_planes, plane_index, split_planes

#: ``(st_mtime_ns, st_size, st_ino)`` of a file, or None when there is no file
Stamp = tuple[int, int, int] | None

#: asked with the files another program changed; True overwrites them
ConfirmOverwrite = Callable[[list[Path]], bool]


def file_stamp(path: str | Path | None) -> Stamp:
    """What identifies a version of ``path`` on disk: modification time, size and inode.

    An atomic rewrite (a new file renamed over the old) changes the inode even
    within the clock's resolution. Returns None when the file does not exist.
    """
    if path is None:
        return None
    try:
        status = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return (status.st_mtime_ns, status.st_size, status.st_ino)


def check_class_name(name: str, existing: Sequence[str]) -> str:
    """The class name to use for ``name`` (stripped); ``ValueError`` saying why it cannot be one."""
    name = str(name).strip()
    if not name:
        raise ValueError("a class needs a name")
    if name.lstrip("-").isdigit():
        raise ValueError(f"{name!r} would be read as a class number; give the class a name")
    if name in existing:
        raise ValueError(f"there is already a class {name!r}")
    return name


@dataclass
class SaveReport:
    """What a save did.

    Attributes
    ----------
    written
        Files written.
    refused
        Files another program changed that were not overwritten (the person said no);
        their images keep their edits, unsaved.
    reloaded
        Images without edits here whose file another program changed: read again.
    without_file
        Images with edits but no annotation file to save them to.
    """

    written: list[Path] = field(default_factory=list)
    refused: list[Path] = field(default_factory=list)
    reloaded: list[int] = field(default_factory=list)
    without_file: list[int] = field(default_factory=list)


class LabelStore:
    """Every image's boxes, their files and stamps, the unsaved images, and counts per class.

    Parameters
    ----------
    annotations
        One annotation per image.
    files
        Where each image's annotation is saved (None where unknown).
    classes
        The class list (labels not in it are added in order of appearance).
    stamps
        Each file's :func:`file_stamp` when it was read; by default, stamped now.
    sizes
        ``(height, width)`` per image, to clip boxes of files read again.
    """

    def __init__(
        self,
        annotations: Sequence[Annotation],
        files: Sequence[str | Path | None],
        classes: Sequence[str] = (),
        stamps: Sequence | None = None,
        sizes: Sequence | None = None,
    ):
        self.annotations = list(annotations)
        count = len(self.annotations)
        self.files = [Path(f) if f else None for f in list(files)[:count]] + [None] * max(0, count - len(files))
        if stamps is not None and len(stamps) == count:
            self.stamps: list[Stamp] = [tuple(s) if s is not None else None for s in stamps]
        else:
            self.stamps = [file_stamp(path) for path in self.files]
        self.sizes = list(sizes) if sizes is not None else None
        self.classes: list[str] = list(dict.fromkeys(classes))
        self.dirty: set[int] = set()
        self.totals: Counter = Counter()
        self.empty: set[int] = set()
        self._counted: list[Annotation | None] = [None] * count
        for index in range(count):
            self._count(index)

    def __len__(self) -> int:
        return len(self.annotations)

    # --- keeping counts current ------------------------------------------------------

    def sync(self) -> list[int]:
        """Take in annotations replaced in :attr:`annotations` behind the store's back
        (``store.annotations[i] = ...``); returns their indices, now marked unsaved."""
        changed = [i for i, a in enumerate(self.annotations) if a is not self._counted[i]]
        for index in changed:
            self._count(index)
        self.dirty.update(changed)
        return changed

    def _count(self, index: int) -> None:
        old, new = self._counted[index], self.annotations[index]
        if old is not None:
            self.totals.subtract(old.labels)
        self.totals.update(new.labels)
        self._counted[index] = new
        if len(new):
            self.empty.discard(index)
        else:
            self.empty.add(index)
        for label in new.labels:
            if label not in self.classes:
                self.classes.append(label)

    def set(self, index: int, annotation: Annotation, dirty: bool = True) -> None:
        """Replace image ``index``'s boxes (an edit, unsaved unless ``dirty`` is False)."""
        self.annotations[index] = annotation
        self._count(index)
        if dirty:
            self.dirty.add(index)

    def counts(self, index: int) -> Counter:
        """Boxes per class in image ``index``."""
        return Counter(self.annotations[index].labels)

    def unlabeled(self) -> list[int]:
        """The images without boxes, in order."""
        return sorted(self.empty)

    def next_unlabeled(self, after: int) -> int | None:
        """The first image without boxes after ``after``, wrapping around; None when all have boxes."""
        later = [i for i in self.empty if i > after]
        if later:
            return min(later)
        return min(self.empty) if self.empty else None

    # --- classes -----------------------------------------------------------------------

    def _mark_files_for_classes(self) -> None:
        """Every file carries the class list: after it changes, each image that has a file
        (or boxes to write) is unsaved."""
        for index, annotation in enumerate(self.annotations):
            if self.files[index] is not None and (self.stamps[index] is not None or len(annotation)):
                self.dirty.add(index)

    def add_class(self, name: str) -> str:
        """Append a class; returns its name as kept."""
        name = check_class_name(name, self.classes)
        self.classes.append(name)
        self._mark_files_for_classes()
        return name

    def rename_class(self, old: str, new: str) -> str:
        """Rename a class and every box of it."""
        if old not in self.classes:
            raise ValueError(f"there is no class {old!r}")
        new = check_class_name(new, [c for c in self.classes if c != old])
        self.classes[self.classes.index(old)] = new
        for index, annotation in enumerate(self.annotations):
            if old in annotation.labels:
                renamed = [new if label == old else label for label in annotation.labels]
                self.set(index, Annotation(annotation.boxes, renamed, annotation.scores, self.classes))
        self._mark_files_for_classes()
        return new

    def remove_class(self, name: str) -> int:
        """Remove a class and delete its boxes from every image; returns how many were deleted."""
        if name not in self.classes:
            raise ValueError(f"there is no class {name!r}")
        removed = 0
        for index, annotation in enumerate(self.annotations):
            keep = [i for i, label in enumerate(annotation.labels) if label != name]
            if len(keep) != len(annotation):
                removed += len(annotation) - len(keep)
                self.set(index, annotation.select(keep))
        self.classes.remove(name)
        self._mark_files_for_classes()
        return removed

    # --- files ---------------------------------------------------------------------------

    def changed_on_disk(self, index: int) -> bool:
        """Whether image ``index``'s file differs from the version read or last written here."""
        return self.files[index] is not None and file_stamp(self.files[index]) != self.stamps[index]

    def to_save(self, index: int) -> Annotation:
        """Image ``index``'s annotation as written: its boxes and the session's class list."""
        annotation = self.annotations[index]
        return Annotation(annotation.boxes, annotation.labels, annotation.scores, list(self.classes))

    def reload(self, index: int) -> bool:
        """Read image ``index``'s file again (after another program changed it).

        Returns False, keeping what the store holds, when the file cannot be read.
        A deleted file reads as no boxes.
        """
        path = self.files[index]
        stamp = file_stamp(path)
        try:
            annotation = load_annotation(path) if stamp is not None else Annotation()
        except AnnotationError:
            return False
        if self.sizes is not None and index < len(self.sizes) and self.sizes[index] is not None:
            annotation = Annotation(clip_boxes(annotation.boxes, *self.sizes[index]), annotation.labels,
                                    annotation.scores, annotation.classes)
        for name in annotation.classes or ():
            if name not in self.classes:
                self.classes.append(name)
        self.set(index, annotation, dirty=False)
        self.dirty.discard(index)
        self.stamps[index] = stamp
        return True

    def save(self, indices: Sequence[int], confirm_overwrite: ConfirmOverwrite) -> SaveReport:
        """Write images ``indices`` to their files.

        Files another program changed since are written only if
        ``confirm_overwrite(paths)`` (asked once, with all of them) says so.
        """
        report = SaveReport()
        targets = []
        for index in indices:
            if self.files[index] is None:
                if index in self.dirty:
                    report.without_file.append(index)
            else:
                targets.append(index)
        conflicts = [index for index in targets if self.changed_on_disk(index)]
        if conflicts and not confirm_overwrite([self.files[i] for i in conflicts]):
            report.refused = [self.files[i] for i in conflicts]
            targets = [i for i in targets if i not in set(conflicts)]
        for index in targets:
            path = save_annotation(self.files[index], self.to_save(index))
            self.stamps[index] = file_stamp(path)
            self.dirty.discard(index)
            report.written.append(path)
        return report

    def save_unsaved(self, confirm_overwrite: ConfirmOverwrite) -> SaveReport:
        """Write every image with unsaved edits."""
        return self.save(sorted(self.dirty), confirm_overwrite)

    def write_to(self, destinations: Sequence[Path], confirm_overwrite: ConfirmOverwrite) -> SaveReport:
        """Write every image to ``destinations`` (one per image), as napari's writer does.

        A destination that is the image's own file is saved as :meth:`save` does,
        except that an image without edits here whose file another program changed
        is read again rather than overwritten. Other destinations (an export) are
        written as they are.
        """
        own, elsewhere = [], []
        for index, destination in enumerate(destinations):
            path = self.files[index]
            if path is not None and same_path(path, destination):
                own.append(index)
            else:
                elsewhere.append(index)
        reloaded = [i for i in own if i not in self.dirty and self.changed_on_disk(i) and self.reload(i)]
        report = self.save([i for i in own if i not in set(reloaded)], confirm_overwrite)
        report.reloaded = reloaded
        for index in elsewhere:
            report.written.append(save_annotation(destinations[index], self.to_save(index)))
        return report


def same_path(first: str | Path, second: str | Path) -> bool:
    """Whether ``first`` and ``second`` name the same place once made absolute (links are not followed)."""
    return os.path.abspath(first) == os.path.abspath(second)


# --- a dataset folder whose pages are its 2-D images and its stacks' planes --------------------------


class FolderLabelStore(LabelStore):
    """A dataset folder's pages, one "image" each: every 2-D image, and every plane of every stack
    (a stack's planes one after the other, in :func:`~.stack_planes.plane_index` order). A 2-D image is saved to its
    own file, as :class:`LabelStore` saves it; a stack's planes share the stack's ONE file, written as
    :class:`~.stack_label_store.StackLabelStore` writes it (``planes``, ``labeled_planes``: only the labeled planes).

    :attr:`empty` holds the UNLABELED pages: a stack's plane that nobody marked and that has no box
    (as in :class:`~.stack_label_store.StackLabelStore`), and a 2-D image without boxes whose file does not exist (as
    training counts it: an image with an empty file is labeled empty). :meth:`mark` labels pages
    ("no objects here", predictions accepted); a marked 2-D image is written (empty) on saving.

    Parameters
    ----------
    annotations, files, classes, stamps, sizes
        Per page, as for :class:`LabelStore`; a stack's pages name the stack's file.
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
        :class:`LabelStore` does; a stack's only while none of its planes has unsaved edits."""
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
