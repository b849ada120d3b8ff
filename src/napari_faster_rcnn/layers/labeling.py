"""The labeling session behind the "Label boxes" widget: classes, navigation, autosave.

A :class:`LabelingSession` pages a box layer one image at a time (it is a
:class:`~napari_faster_rcnn.layers.slice_view.SliceBoxes`, so a 1,000-image stack with 100 boxes each
stays fast) and keeps a :class:`~napari_faster_rcnn.core.data.labeling.LabelStore` of every image's
boxes, files and unsaved edits, from which the counts per class and the images
without boxes come. It

- gives a new rectangle the current class through the layer's feature defaults
  and the class colour through ``current_edge_color`` (kept in step when napari
  changes it on selecting another box);
- binds ``n`` / ``b`` (next / previous image) and ``1``..``9`` (class) on the box
  layer and on its image layer: instance key bindings come before napari's own
  Shapes bindings, so on these layers the digits pick classes instead of modes
  (the modes keep their letters: R rectangle, S select, D vertices, Z pan/zoom,
  Delete removes) and ``b`` no longer sends a box to the back;
- saves (autosave, Save, napari's writer) through the store made and saved by
  :mod:`~napari_faster_rcnn.layers.label_saving` (mixed in);
- on the layer's removal from the viewer, saves (autosave) or asks
  (:attr:`ask_unsaved`); the widget does the same when the window closes.

No Qt here: the questions to the person are callbacks the widget sets (tests set
their own). Their defaults never lose anything: unsaved edits are saved, files
changed by another program are not overwritten, classes with boxes are kept.

The class editing lives in :mod:`~napari_faster_rcnn.layers.label_classes` (mixed in), the making of box
layers in :mod:`~napari_faster_rcnn.layers.box_layers`; the files, stamps and counts in
:mod:`~napari_faster_rcnn.core.data.labeling` (a stack's in :mod:`~napari_faster_rcnn.core.data.stack_label_store`,
a folder's in :mod:`~napari_faster_rcnn.core.data.folder_label_store`).
"""

from __future__ import annotations

import weakref
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from napari_faster_rcnn.core.data.annotations import Annotation
from napari_faster_rcnn.core.data.folder_label_store import FolderLabelStore
from napari_faster_rcnn.core.data.labeling import SaveReport
from napari_faster_rcnn.core.data.stack_label_store import StackLabelStore
from napari_faster_rcnn.core.data.stack_planes import index_plane, plane_index
from napari_faster_rcnn.layers import conventions, page_prefetch, stack_labeling
from napari_faster_rcnn.layers.box_layers import find_image_layer, layer_annotations
from napari_faster_rcnn.layers.label_classes import ClassEditing
from napari_faster_rcnn.layers.label_saving import SAVE, SessionSaving, refuse_overwrite, session_store
from napari_faster_rcnn.layers.page_boxes import same_boxes
from napari_faster_rcnn.layers.paging_registry import SLICE_MODEL, keep_with_layer, paging_model
from napari_faster_rcnn.layers.slice_view import SliceBoxes

__all__ = ["LabelingSession", "labeling_session", "sessions", "NEXT_KEY", "PREVIOUS_KEY", "CLASS_KEYS"]

NEXT_KEY, PREVIOUS_KEY = "n", "b"
CLASS_KEYS = tuple(str(k) for k in range(1, 10))

_SESSIONS: weakref.WeakSet = weakref.WeakSet()


class LabelingSession(SessionSaving, ClassEditing, page_prefetch.PlanePaging, SliceBoxes):
    """Label a box layer (one image or a stack): classes, navigation, saving.

    Parameters
    ----------
    viewer, layer
        The napari viewer and the box layer (see :mod:`~napari_faster_rcnn.layers.conventions`).
    annotations
        One annotation per image; by default, what the layer holds.
    image_layer
        The image layer under the boxes; it gets the same keys.
    autosave
        Save an image's file when leaving it and after class changes.
    store
        The store of every image's boxes to label, when another model paged the layer (a stack
        read as data: its :class:`~napari_faster_rcnn.core.data.stack_label_store.StackLabelStore`).

    A stack read as data (time, z; see :mod:`~napari_faster_rcnn.layers.stack_labeling`) is labeled
    plane by plane: each plane is an "image" of the session, ``n``/``b`` walk the planes, ``0``
    marks the plane shown as labeled ("no objects here"), a box drawn marks it too, and a save
    writes the stack's one file.

    Attributes
    ----------
    confirm_overwrite : callable
        ``confirm_overwrite(paths) -> bool``: overwrite files another program changed?
    confirm_remove_class : callable
        ``confirm_remove_class(name, count) -> bool``: delete a class and its ``count`` boxes?
    ask_unsaved : callable
        ``ask_unsaved(count, can_cancel) -> "save" | "discard" | "cancel"``, when closing
        with ``count`` unsaved images and autosave off (or saving failed).
    events
        ``changed`` (what the widget shows changed) and ``saved`` (``report``: a
        :class:`~napari_faster_rcnn.core.data.labeling.SaveReport`).
    """

    def __init__(self, viewer, layer, annotations=None, *, image_layer=None, autosave: bool = True, store=None):
        from napari.utils.events import EmitterGroup

        self.layer = layer  # (SliceBoxes sets it too, but the class list needs it first)
        self.store = session_store(viewer, layer, annotations, store)
        self.autosave = autosave
        self.image_layer = image_layer
        self.confirm_overwrite: Callable[[list[Path]], bool] = refuse_overwrite
        self.confirm_remove_class: Callable[[str, int], bool] = lambda name, count: False
        self.ask_unsaved: Callable[[int, bool], str] = lambda count, can_cancel: SAVE
        self.events = EmitterGroup(source=self, changed=None, saved=None)
        self.last_report: SaveReport | None = None
        self.closed = False
        self._bound: list[tuple] = []
        self._current_class = self.store.classes[0] if self.store.classes else None
        self._mirror_classes()
        super().__init__(viewer, layer, self.store.annotations, editable=True, on_leave=self._left,
                         planes_shape=self.store.shape if self.is_stack else None)
        keep_with_layer(layer, self)
        _SESSIONS.add(self)
        layer.events.data.connect(self._on_edit)
        layer.events.features.connect(self._on_edit)
        layer.events.current_edge_color.connect(self._keep_class_color)
        viewer.layers.events.removing.connect(self._on_removing)
        self._bind_keys()

    # --- the model -------------------------------------------------------------------

    @property
    def annotations(self) -> list[Annotation]:
        return self.store.annotations

    @annotations.setter
    def annotations(self, values) -> None:
        # code that pages (accepting predictions, SliceBoxes itself) replaces the list
        values = list(values)
        if len(values) != len(self.store):
            raise ValueError(f"{len(values)} annotations for a session of {len(self.store)} images")
        for index, annotation in enumerate(values):
            if annotation is not self.store.annotations[index]:
                self.store.set(index, annotation)
        self._mirror_classes()

    @property
    def classes(self) -> list[str]:
        return list(self.store.classes)

    @property
    def is_stack(self) -> bool:
        """Whether the session labels the planes of a stack read as data (one file)."""
        return isinstance(self.store, StackLabelStore)

    @property
    def has_planes(self) -> bool:
        """Whether the session labels a dataset folder whose pages include stacks' planes (see
        :mod:`~napari_faster_rcnn.layers.folder_pages`): pages are labeled or not, as planes are."""
        return isinstance(self.store, FolderLabelStore)

    @property
    def marks_pages(self) -> bool:
        """Whether pages are marked labeled (a stack's planes, a folder with them): the
        "no objects here" key, and the counts of labeled pages out of all."""
        return self.is_stack or self.has_planes

    def commit(self) -> bool:
        if self.current is None or self.closed:
            return False
        self.take_strays()
        if self.is_stack:
            stack_labeling.sync_marks(self.layer, self.store)  # planes code marked in the metadata
        annotation = self.read_current()
        if self._shown is not None and same_boxes(annotation, self._shown):
            return False
        self._shown = annotation
        self.store.set(self.current, annotation)
        self._mirror_classes()  # a box drawn before any class was added brings its label
        return True

    def _put(self, index: int, annotation: Annotation) -> None:
        self.store.set(index, annotation)

    def refresh(self) -> None:
        if self.store.sync():  # annotations replaced item by item (see paging_model)
            self._mirror_classes()
        super().refresh()

    def show(self, index: int) -> None:
        if index not in self.store.dirty and self.store.changed_on_disk(index) and self.store.reload(index):
            self._mirror_classes()  # another program changed a file we hold no edits of: take theirs
        super().show(index)
        self._apply_current_class()
        self.events.changed()

    # --- where we are ------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.store)

    def image_name(self, index: int) -> str:
        if self.is_stack:
            return "plane " + ", ".join(str(v) for v in index_plane(index, self.store.shape))
        sources = self.layer.metadata.get(conventions.SOURCE_IMAGES) or []
        if index < len(sources) and sources[index]:
            plane = conventions.source_plane(self.layer.metadata, index)
            name = Path(sources[index]).name
            return name if plane is None else f"{name} plane {', '.join(map(str, plane))}"
        path = self.store.files[index]
        return path.stem if path is not None else ""

    def current_counts(self) -> Counter:
        """Boxes per class on the image shown, as the layer holds them now."""
        features = self.layer.features
        if "label" not in features or len(features) != self.layer.nshapes:
            return Counter()
        counts = Counter()
        if self.outside_window() is not None:  # a crowded image: the layer holds the boxes around the view only
            counts.update(self.outside_counts())
        for label, count in features["label"].value_counts(dropna=False).items():  # (not one by one: 100,000 boxes)
            counts[str(label)] += int(count)
        return counts

    def total_counts(self) -> Counter:
        """Boxes per class in the whole set, with the edits on screen."""
        totals = Counter(self.store.totals)
        if self.current is not None:
            totals.subtract(self.store.counts(self.current))
            totals.update(self.current_counts())
        return Counter({name: count for name, count in totals.items() if count > 0})

    def unlabeled(self) -> list[int]:
        """The images without boxes (the one on screen as it is now); of a stack, the planes not labeled."""
        empty = set(self.store.empty)
        if self.marks_pages:
            if self.current is not None and self.layer.nshapes:
                empty.discard(self.current)
            return sorted(empty)
        if self.current is not None:
            rest = self.outside_window()
            (empty.discard if self.layer.nshapes or (rest is not None and len(rest)) else empty.add)(self.current)
        return sorted(empty)

    # --- navigation --------------------------------------------------------------------

    def go_to(self, index: int) -> None:
        index = int(np.clip(index, 0, len(self.store) - 1))
        if index != self.current and self.layer.ndim >= 3:
            self.step_to(index)

    def next_image(self) -> None:
        self.go_to((self.current or 0) + 1)

    def previous_image(self) -> None:
        self.go_to((self.current or 0) - 1)

    def next_unlabeled(self) -> int | None:
        """Go to the next image without boxes (wrapping around); returns it, None if there is none."""
        empty = [i for i in self.unlabeled() if i != self.current]
        if not empty:
            return None
        later = [i for i in empty if i > (self.current or 0)]
        target = later[0] if later else empty[0]
        self.go_to(target)
        return target

    def _on_edit(self, event=None) -> None:
        # napari tells of an edit before it happens ("adding", "removing", "changing") and after it;
        # the counts change after. With 100,000 boxes each redraw of the counts costs milliseconds.
        if str(getattr(event, "action", "")).endswith("ing"):
            return
        if self.marks_pages and self.layer.nshapes and self.current is not None and not self.closed:
            self.take_strays()  # boxes put on another plane by code go to their plane
            if self.layer.nshapes:
                self.store.mark([self.current])  # a box drawn labels its plane, for good
        self.events.changed()

    # --- the planes of a stack ------------------------------------------------------------

    def mark_no_objects(self) -> None:
        """Mark the plane shown as labeled ("no objects here" when it has no boxes)."""
        if self.marks_pages and self.current is not None:
            self.store.mark([self.current])
            self.events.changed()

    def mark_planes(self, planes) -> None:
        """Mark ``planes`` (leading coordinates) of the stack as labeled (predictions accepted)."""
        self.store.mark([plane_index(plane, self.store.shape) for plane in planes])
        self.events.changed()

    def stack_annotation(self):
        """The stack's one annotation, the edits on screen included."""
        self.commit()
        stack_labeling.sync_marks(self.layer, self.store)
        return self.store.stack_annotation()

    # --- keys and closing ---------------------------------------------------------------------

    def key_actions(self) -> dict[str, Callable[[], object]]:
        actions = {NEXT_KEY: self.next_image, PREVIOUS_KEY: self.previous_image}
        for number, key in enumerate(CLASS_KEYS, start=1):
            actions[key] = lambda number=number: self.class_for_key(number)
        if self.marks_pages:
            actions[stack_labeling.NO_OBJECTS_KEY] = self.mark_no_objects
        return actions

    def _bind_keys(self) -> None:
        for target in (self.layer, self.image_layer):
            if target is None:
                continue
            for key, action in self.key_actions().items():
                previous = target.bind_key(key, lambda layer, action=action: action(), overwrite=True)
                self._bound.append((target, key, previous))

    def _on_removing(self, event) -> None:
        removed = self.viewer.layers[event.index]
        if removed is self.layer:
            self.resolve_unsaved(can_cancel=False)
            self.close()
        elif removed is self.image_layer:
            self._unbind(self.image_layer)
            self.image_layer = None

    def _unbind(self, target) -> None:
        for layer, key, previous in reversed([b for b in self._bound if b[0] is target]):
            layer.bind_key(key, previous, overwrite=True)
        self._bound = [b for b in self._bound if b[0] is not target]

    def close(self) -> None:
        """Stop paging and listening. The layer stays tied to this session, so saving it
        still writes every image (nothing is restored into a layer that is going away)."""
        if self.closed:
            return
        self.commit()
        self.closed = True
        self.stop_prefetching()
        if self._connected:
            self.viewer.dims.events.current_step.disconnect(self._on_step)
            self._disconnect_camera()
            self._connected = False
        for target in {id(b[0]): b[0] for b in self._bound}.values():
            self._unbind(target)
        self.layer.events.data.disconnect(self._on_edit)
        self.layer.events.features.disconnect(self._on_edit)
        self.layer.events.current_edge_color.disconnect(self._keep_class_color)
        self.viewer.layers.events.removing.disconnect(self._on_removing)
        _SESSIONS.discard(self)
        self.events.changed()


# --- finding and making sessions --------------------------------------------------------------


def sessions(viewer) -> list[LabelingSession]:
    """The open labeling sessions of ``viewer``."""
    return [session for session in list(_SESSIONS) if session.viewer is viewer and not session.closed]


def labeling_session(viewer, layer, **options) -> LabelingSession:
    """The session labeling ``layer``, made on first use (see :class:`LabelingSession`)."""
    model = paging_model(layer)
    if isinstance(model, LabelingSession) and not model.closed:
        return model
    options.setdefault("image_layer", find_image_layer(viewer, layer))
    store = getattr(model, "store", None)
    if isinstance(store, (StackLabelStore, FolderLabelStore)):  # a stack's planes: the store goes on
        if hasattr(model, "disconnect") and not (isinstance(model, LabelingSession) and model.closed):
            model.disconnect(restore=False)
        elif isinstance(model, LabelingSession):
            model.commit()
        layer.metadata.pop(SLICE_MODEL, None)
        return LabelingSession(viewer, layer, store=store, **options)
    if model is not None:  # paged by something else: take its boxes, stop it
        annotations = model.all_annotations()
        model.disconnect(restore=False)
    else:
        annotations = layer_annotations(layer)
    return LabelingSession(viewer, layer, annotations, **options)

