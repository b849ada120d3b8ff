"""The store half of a labeling session: the label store made from the box layer, and saving it.

:func:`session_store` makes the :class:`~napari_faster_rcnn.core.data.labeling.LabelStore` a
:class:`~napari_faster_rcnn.layers.labeling.LabelingSession` labels (one file per image), or a
:class:`~napari_faster_rcnn.core.data.stack_label_store.StackLabelStore` for a stack layer made by
other code. :class:`SessionSaving` is mixed into the session; it

- saves an image's file when the dims slider leaves it (autosave) and all
  unsaved images on :meth:`~SessionSaving.save`, asking through ``confirm_overwrite``
  before overwriting a file another program changed;
- writes every image for napari's writer (:meth:`~SessionSaving.write_files`);
- before the layer or the viewer closes, saves (autosave) or asks (``ask_unsaved``:
  :data:`SAVE`, :data:`DISCARD` or :data:`CANCEL`).

It expects the session's ``store``, ``events``, ``autosave``, ``closed``, ``current``,
``commit``, ``confirm_overwrite``, ``ask_unsaved`` and the class list's ``_mirror_classes``.
The default answers never lose anything: unsaved edits are saved (``ask_unsaved``), files
changed by another program are not overwritten (:func:`refuse_overwrite`).

No Qt here.
"""

from __future__ import annotations

from pathlib import Path

from napari_faster_rcnn.core.data.labeling import LabelStore, SaveReport
from napari_faster_rcnn.core.data.stack_label_store import StackLabelStore
from napari_faster_rcnn.layers import conventions, stack_labeling
from napari_faster_rcnn.layers.box_layers import layer_annotations

__all__ = ["SessionSaving", "session_store", "refuse_overwrite", "SAVE", "DISCARD", "CANCEL"]

SAVE, DISCARD, CANCEL = "save", "discard", "cancel"


def refuse_overwrite(paths: list[Path]) -> bool:
    """The default ``confirm_overwrite``: warn, keep the edits in the viewer, overwrite nothing."""
    from napari.utils.notifications import show_warning

    show_warning(f"not saved: {len(paths)} annotation file(s) changed on disk since they were read "
                 f"({', '.join(p.name for p in paths[:5])}); the edits stay in the viewer")
    return False


def session_store(viewer, layer, annotations=None, store=None):
    """The store a session on ``layer`` labels: ``store`` (the layer's classes added to it), a stack
    layer's, or a :class:`~napari_faster_rcnn.core.data.labeling.LabelStore` of ``annotations`` (by
    default, what the layer holds) whose stamps the layer's metadata keeps, for a later session."""
    metadata = layer.metadata
    if store is None and stack_labeling.is_stack_layer(layer):
        store = _stack_store_of(viewer, layer)
    if store is not None:
        for name in metadata.get(conventions.CLASSES) or ():
            if name not in store.classes:
                store.classes.append(name)
        return store
    if annotations is None:
        annotations = layer_annotations(layer)
    store = LabelStore(
        annotations,
        conventions.annotation_paths(metadata),
        classes=metadata.get(conventions.CLASSES) or (),
        stamps=metadata.get(conventions.ANNOTATION_STAMPS),
        sizes=metadata.get(conventions.IMAGE_SIZES),
    )
    metadata[conventions.ANNOTATION_STAMPS] = store.stamps  # kept current, for a later session on this layer
    return store


def _stack_store_of(viewer, layer) -> StackLabelStore:
    """A store of a stack layer that holds every box (made by other code, not paged)."""
    from napari_faster_rcnn.core.data.labeling import file_stamp

    annotation = conventions.stack_annotation_from_shapes(layer.data, layer.features, layer.metadata)
    paths = conventions.annotation_paths(layer.metadata)
    path = paths[0] if paths else None
    stamps = layer.metadata.get(conventions.ANNOTATION_STAMPS) or [file_stamp(path)]
    sizes = layer.metadata.get(conventions.IMAGE_SIZES)
    return StackLabelStore(annotation, path, stack_labeling.stack_planes_shape(viewer, layer),
                           classes=layer.metadata.get(conventions.CLASSES) or (),
                           stamp=tuple(stamps[0]) if stamps[0] is not None else None,
                           size=sizes[0] if sizes else None)


class SessionSaving:
    """Autosave, Save, napari's writer and the unsaved edits on closing."""

    def unsaved(self) -> list[int]:
        """The images with edits not yet saved (committing the one on screen)."""
        self.commit()
        return sorted(self.store.dirty)

    def write_stack(self, destination) -> list[Path]:
        """napari's writer saves a stack's layer: its one file (see :meth:`write_files`)."""
        return self.write_files([Path(destination)])

    def _left(self, index: int, changed: bool) -> None:
        if self.autosave and index in self.store.dirty:
            self._save([index])

    def _save(self, indices) -> SaveReport:
        report = self.store.save(indices, self.confirm_overwrite)
        self.last_report = report
        self.events.saved(report=report)
        return report

    def save(self) -> SaveReport:
        """Save every image with unsaved edits (the one on screen too)."""
        self.commit()
        report = self._save(sorted(self.store.dirty))
        self.events.changed()
        return report

    def write_files(self, destinations) -> list[Path]:
        """napari's writer saves the layer: every image, to ``destinations`` (see
        :meth:`~napari_faster_rcnn.core.data.labeling.LabelStore.write_to`); returns the files written."""
        self.commit()
        report = self.store.write_to([Path(d) for d in destinations], self.confirm_overwrite)
        self.last_report = report
        if self.current in report.reloaded:
            super().refresh()  # the page's own refresh (the session's also syncs the store)
        self._mirror_classes()
        self.events.saved(report=report)
        self.events.changed()
        return report.written

    def resolve_unsaved(self, can_cancel: bool) -> bool:
        """Before the layer or the viewer closes: save (autosave) or ask. False means cancel."""
        if self.closed or not self.unsaved():
            return True
        if self.autosave:
            self.save()
            if not self.store.dirty:
                return True
        choice = self.ask_unsaved(len(self.store.dirty), can_cancel)
        if choice == CANCEL and can_cancel:
            return False
        if choice == SAVE:
            self.save()
        elif choice == DISCARD:
            self.store.dirty.clear()  # asked once: the window's second close event passes
        return True
