"""Which planes of a stack read as data (time-lapse, z stack) a person has labeled, and the paging
of its boxes one plane at a time.

A stack's box layer (see :func:`~napari_faster_rcnn.layers.conventions.stack_shapes_layer_data`)
holds only the boxes of the plane shown, as a folder's box layer holds one image's (see
:mod:`~napari_faster_rcnn.layers.slice_view`): napari's Shapes layer costs time in proportion to
all its shapes on every step of the slider. Every plane's boxes and the labeled planes are kept
in a :class:`~napari_faster_rcnn.core.data.stack_label_store.StackLabelStore`; the reader ties it to the
layer, a :class:`StackPages` swaps the boxes in as the dims slider moves (a labeling session
takes over when Label boxes labels the layer), and saving writes the stack's ONE file with
``boxes``, ``labels``, ``planes`` and ``labeled_planes``.

A page turn hands napari the plane's shapes built beforehand
(:class:`~napari_faster_rcnn.layers.page_prefetch.PlanePaging`).

A plane becomes labeled

- when a box is drawn on it (and stays labeled when that box is deleted later);
- when the person presses :data:`NO_OBJECTS_KEY` (``0``, "zero objects here") on the plane shown;
- when predictions are accepted on it (:func:`mark_planes`).

A plane never labeled is unlabeled: it is never a negative in training or evaluation.
:func:`next_unlabeled_plane` finds the next one after the plane shown, in the order of the
leading dimensions. A stack layer nobody pages (made by other code with every box in it) works
with the same functions, its labeled planes in ``metadata["labeled_planes"]``. No Qt here.
"""

from __future__ import annotations

import itertools
import weakref
from pathlib import Path

import numpy as np

from napari_faster_rcnn.core.data.annotations import Annotation
from napari_faster_rcnn.core.data.stack_label_store import StackLabelStore
from napari_faster_rcnn.core.data.stack_planes import index_plane, plane_index
from napari_faster_rcnn.layers import conventions
from napari_faster_rcnn.layers.page_boxes import same_boxes
from napari_faster_rcnn.layers.page_prefetch import PlanePaging
from napari_faster_rcnn.layers.paging_registry import paging_model
from napari_faster_rcnn.layers.slice_view import SliceBoxes

#: "no objects here": marks the plane shown as labeled without boxes (digits 1..9 pick classes).
NO_OBJECTS_KEY = "0"

_TRACKED: weakref.WeakSet = weakref.WeakSet()  # unpaged layers whose drawn boxes mark their planes


def is_stack_layer(layer) -> bool:
    """Whether ``layer`` holds the boxes of a stack read as data."""
    return bool(getattr(layer, "metadata", {}).get(conventions.PLANE_DIMS))


def plane_dims(layer) -> int:
    return int(layer.metadata[conventions.PLANE_DIMS])


def _overwrite(paths) -> bool:
    return True  # napari's writer on a layer nobody labels overwrites, as for any other layer


def write_store(store, destinations) -> list[Path]:
    """napari's writer saving a store's layer (a stack's, a folder's): the store's files written to
    ``destinations``, overwriting; returns the files written."""
    return store.write_to([Path(d) for d in destinations], _overwrite).written


class StorePages(PlanePaging, SliceBoxes):
    """The reader's paging of a box layer whose pages' boxes are all kept in a label store (a stack's
    :class:`~napari_faster_rcnn.core.data.stack_label_store.StackLabelStore`, a folder's
    :class:`~napari_faster_rcnn.core.data.folder_label_store.FolderLabelStore`), without a labeling session:
    the edits go into ``store``, and pressing :data:`NO_OBJECTS_KEY` marks the page shown as labeled."""

    def __init__(self, viewer, layer, store, **options):
        self.store = store
        super().__init__(viewer, layer, store.annotations, editable=True, **options)
        self._key = lambda target: self.mark_shown()
        self._previous_key = layer.bind_key(NO_OBJECTS_KEY, self._key, overwrite=True)

    @property
    def annotations(self) -> list[Annotation]:
        return self.store.annotations

    @annotations.setter
    def annotations(self, values) -> None:
        for index, annotation in enumerate(list(values)):
            if annotation is not self.store.annotations[index]:
                self.store.set(index, annotation)

    def commit(self) -> bool:
        if self.current is None:
            return False
        self.take_strays()
        annotation = self.read_current()
        if self._shown is not None and same_boxes(annotation, self._shown):
            return False
        self.store.set(self.current, annotation)
        self._shown = annotation
        return True

    def refresh(self) -> None:
        self.store.sync()  # annotations replaced item by item (see paging_model)
        super().refresh()

    def _put(self, index: int, annotation: Annotation) -> None:
        self.store.set(index, annotation)

    def mark_shown(self) -> None:
        if self.current is not None and self._connected:
            self.store.mark([self.current])

    def disconnect(self, restore: bool = True) -> None:
        self.stop_prefetching()
        if self._connected:
            bound = {str(key): function for key, function in self.layer.keymap.items()}
            if bound.get(NO_OBJECTS_KEY) is self._key:  # (a session that takes over binds its own)
                self.layer.bind_key(NO_OBJECTS_KEY, self._previous_key, overwrite=True)
        super().disconnect(restore)


class StackPages(StorePages):
    """Show the plane's boxes of a stack read as data as the dims slider moves (without a labeling
    session); the edits go into ``store``. Drawing a box or pressing :data:`NO_OBJECTS_KEY` marks
    the plane shown as labeled."""

    def __init__(self, viewer, layer, store: StackLabelStore):
        super().__init__(viewer, layer, store, planes_shape=store.shape)
        layer.events.data.connect(self._on_data)

    def _on_data(self, event=None) -> None:
        if not str(getattr(event, "action", "")).endswith("ing") and self.layer.nshapes and self._connected:
            self.take_strays()
            if self.layer.nshapes:
                self.mark_shown()

    def disconnect(self, restore: bool = True) -> None:
        if self._connected:
            self.layer.events.data.disconnect(self._on_data)
        super().disconnect(restore)

    def stack_annotation(self) -> Annotation:
        """Every plane as the stack's one annotation (the edits on screen included)."""
        self.commit()
        sync_marks(self.layer, self.store)
        return self.store.stack_annotation()

    def write_stack(self, destination) -> list[Path]:
        """napari's writer saves the layer: the stack's one file; returns the files written."""
        self.commit()
        sync_marks(self.layer, self.store)
        return write_store(self.store, [destination])


class HeldStore:
    """A store between the reader and the viewer (see
    :func:`~napari_faster_rcnn.layers.slice_view.attach_when_added`), saveable meanwhile; its
    ``annotations`` are the store's, one per page."""

    def __init__(self, store):
        self.store = store

    @property
    def annotations(self) -> list[Annotation]:
        return self.store.annotations

    def all_annotations(self) -> list[Annotation]:
        return list(self.store.annotations)


class HeldStack(HeldStore):
    """A stack's store between the reader and the viewer, saveable meanwhile."""

    store: StackLabelStore

    def stack_annotation(self) -> Annotation:
        return self.store.stack_annotation()

    def write_stack(self, destination) -> list[Path]:
        return write_store(self.store, [destination])

    def pager(self, viewer, layer) -> StackPages:
        return StackPages(viewer, layer, self.store)


def sync_marks(layer, store: StackLabelStore) -> None:
    """Take planes that code marked in the layer's ``metadata["labeled_planes"]`` into ``store``,
    and write the store's labeled planes back there (so both say the same)."""
    listed = layer.metadata.get(conventions.LABELED_PLANES) or []
    inside = [p for p in listed if len(p) == len(store.shape) and all(0 <= int(v) < s for v, s in zip(p, store.shape))]
    store.mark([plane_index(plane, store.shape) for plane in inside])
    layer.metadata[conventions.LABELED_PLANES] = [list(index_plane(i, store.shape)) for i in store.labeled()]


def stack_store(layer) -> StackLabelStore | None:
    """The store of every plane of a paged stack layer, or None (a layer holding all its boxes)."""
    store = getattr(paging_model(layer), "store", None)
    return store if isinstance(store, StackLabelStore) else None


def stack_annotation(layer) -> Annotation:
    """A stack layer's one annotation (boxes, labels, planes, labeled planes), paged or not."""
    model = paging_model(layer)
    if hasattr(model, "stack_annotation"):
        return model.stack_annotation()
    return conventions.stack_annotation_from_shapes(layer.data, layer.features, layer.metadata)


def plane_of(model, index: int) -> tuple[int, ...]:
    """The plane (leading coordinates) at position ``index`` of the stack ``model`` pages."""
    return index_plane(index, model.store.shape)


def labeled_planes(layer) -> set[tuple[int, ...]]:
    """The labeled planes of a stack's box layer: those marked, and every plane with a box."""
    store = stack_store(layer)
    if store is not None:
        sync_marks(layer, store)
        marked = set(store.marked)
        current = getattr(paging_model(layer), "current", None)
        if current is not None and layer.nshapes:
            marked.add(current)
        return {index_plane(index, store.shape) for index in marked}
    dims = plane_dims(layer)
    marked = {tuple(int(v) for v in plane) for plane in layer.metadata.get(conventions.LABELED_PLANES) or []}
    with_boxes = {tuple(int(round(v)) for v in np.asarray(shape)[0, :dims]) for shape in layer.data}
    return marked | with_boxes


def mark_planes(layer, planes) -> None:
    """Mark ``planes`` (leading coordinates) of a stack's box layer as labeled."""
    dims = plane_dims(layer)
    checked = []
    for plane in planes:
        plane = tuple(int(v) for v in np.asarray(plane).reshape(-1))
        if len(plane) != dims:
            raise ValueError(f"a plane of this stack has {dims} leading coordinates, got {plane}")
        checked.append(plane)
    store = stack_store(layer)
    if store is not None:
        outside = [p for p in checked if any(not 0 <= v < s for v, s in zip(p, store.shape))]
        if outside:
            raise ValueError(f"planes {outside[:5]} lie outside the stack's {store.shape}")
        store.mark([plane_index(plane, store.shape) for plane in checked])
        sync_marks(layer, store)
        events = getattr(paging_model(layer), "events", None)
        if events is not None:
            events.changed()
        return
    known = {tuple(int(v) for v in plane) for plane in layer.metadata.get(conventions.LABELED_PLANES) or []}
    layer.metadata[conventions.LABELED_PLANES] = [list(plane) for plane in sorted(known | set(checked))]


def current_plane(viewer, layer) -> tuple[int, ...]:
    """The plane the viewer shows (the dims slider positions of the leading dimensions)."""
    dims = plane_dims(layer)
    return tuple(int(step) for step in viewer.dims.current_step[-(dims + 2):-2])


def mark_no_objects(viewer, layer) -> tuple[int, ...]:
    """Mark the plane shown as labeled ("no objects here" when it has no boxes)."""
    plane = current_plane(viewer, layer)
    mark_planes(layer, [plane])
    return plane


def stack_planes_shape(viewer, layer) -> tuple[int, ...]:
    """The number of planes along each leading dimension: the paging store's, the layer's
    metadata (:data:`~.conventions.PLANES_SHAPE`), else the viewer's sliders."""
    store = stack_store(layer)
    if store is not None:
        return store.shape
    known = layer.metadata.get(conventions.PLANES_SHAPE)
    if known:
        return tuple(int(side) for side in known)
    dims = plane_dims(layer)
    return tuple(int(steps) for steps in viewer.dims.nsteps[-(dims + 2):-2])


def plane_counts(viewer, layer) -> tuple[int, int]:
    """``(labeled, all)`` planes of the stack."""
    shape = stack_planes_shape(viewer, layer)
    inside = [p for p in labeled_planes(layer) if all(0 <= v < s for v, s in zip(p, shape))]
    return len(inside), int(np.prod(shape))


def next_unlabeled_plane(viewer, layer, go: bool = True) -> tuple[int, ...] | None:
    """The next unlabeled plane after the one shown (wrapping around), shown when ``go``;
    None when every other plane is labeled."""
    shape = stack_planes_shape(viewer, layer)
    labeled = labeled_planes(layer)
    every = list(itertools.product(*(range(s) for s in shape)))
    start = every.index(current_plane(viewer, layer))
    for offset in range(1, len(every)):
        plane = every[(start + offset) % len(every)]
        if plane not in labeled:
            if go:
                step = list(viewer.dims.current_step)
                dims = len(plane)
                step[-(dims + 2):-2] = plane
                viewer.dims.current_step = tuple(step)
            return plane
    return None


def bind_stack_keys(viewer, layer, on_change=None) -> None:
    """Bind :data:`NO_OBJECTS_KEY` on the stack's box layer (the plane shown becomes labeled, then
    ``on_change()`` runs), and keep a plane labeled once a box was drawn on it, even when that
    box is deleted later."""
    def no_objects(target):
        mark_no_objects(viewer, target)
        if on_change is not None:
            on_change()

    layer.bind_key(NO_OBJECTS_KEY, no_objects, overwrite=True)
    if layer not in _TRACKED:
        layer.events.data.connect(lambda event: _mark_drawn(layer))
        _TRACKED.add(layer)


def _mark_drawn(layer) -> None:
    store = stack_store(layer)
    if store is not None:
        current = getattr(paging_model(layer), "current", None)
        if current is not None and layer.nshapes:
            store.mark([current])
        return
    dims = plane_dims(layer)
    mark_planes(layer, {tuple(int(round(v)) for v in np.asarray(shape)[0, :dims]) for shape in layer.data})
