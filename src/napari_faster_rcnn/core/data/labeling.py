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

One image, one file, here. The stores built on this one, with what they share from here
(:class:`SaveReport`, :data:`Stamp`, :data:`ConfirmOverwrite`, :func:`same_path`):
:class:`~.stack_label_store.StackLabelStore`, a stack's planes saved to its one file, and
:class:`~.folder_label_store.FolderLabelStore`, a folder's 2-D images and stacks' planes;
the plane positions they use are in :mod:`~.stack_planes`.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from napari_faster_rcnn.core.data.annotations import Annotation, AnnotationError, load_annotation, save_annotation
from napari_faster_rcnn.core.data.boxes import clip_boxes

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
