"""A model's boxes as suggestions while labeling: a "suggestions" layer over a labeling session.

:class:`BoxSuggestions` follows a :class:`~napari_faster_rcnn.layers.labeling.LabelingSession`: on
each image shown it draws the model's boxes that pass the score threshold (and that no label and no
rejected box covers, :func:`~napari_faster_rcnn.core.prediction.suggestions.shown_suggestions`) in a
Shapes layer named "suggestions" over the box layer, thin yellow outlines without a face and with
the class and score as text, unlike the class-coloured labels. The keys (bound on the suggestions,
box and image layers):

- :data:`ACCEPT_ALL_KEY` (``Shift-K``): every suggestion on the image becomes a label of its class;
- :data:`ACCEPT_KEY` (``k``, keep): the suggestions selected in the suggestions layer become labels;
- :data:`REJECT_KEY` (``j``, junk): the selected suggestions are rejected, or every suggestion shown
  when none is selected.

Accepted boxes join the image's labels through the session (as drawn boxes do: the image is
unsaved, and autosave writes it when the person leaves it; a box that a label of its class already
covers is not added twice). Rejected boxes are remembered per image with their classes: of an image
file (or a plane of a stack's file) in ``.napari-faster-rcnn/rejected-suggestions.json`` in the
image's folder, written at each rejection, so that they stay away after the folder is opened again
(:class:`~napari_faster_rcnn.core.prediction.rejections.RejectedSuggestions`; a folder that cannot be
written, or a file that cannot be read, keeps them for the session, with one warning naming the
file); of an image without a file, by its position, for as long as this object lives. A rejected box
keeps away the suggestions of its class that it covers.

Predicting ahead
    The raw detections of the image shown and of the :data:`~napari_faster_rcnn.core.prediction.suggestions.LOOK_AHEAD`
    next ones are predicted in a worker (the Qt tier gives :attr:`BoxSuggestions.start_worker`; without
    one, the image shown is predicted at once in this thread) and kept in a bounded cache, so that
    pressing ``n`` finds them ready and only filters and draws them. No Qt here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Hashable
from pathlib import Path

import numpy as np

from napari_faster_rcnn.core.data.annotations import Annotation
from napari_faster_rcnn.core.data.boxes import boxes_to_rectangles, rectangles_to_boxes
from napari_faster_rcnn.core.data.stack_label_store import StackLabelStore
from napari_faster_rcnn.core.data.stack_planes import index_plane
from napari_faster_rcnn.core.prediction.rejections import RejectedSuggestions
from napari_faster_rcnn.core.prediction.stacks import StackPlane
from napari_faster_rcnn.core.prediction.suggestions import (
    CACHE_SIZE,
    LOOK_AHEAD,
    PredictAhead,
    SuggestionCache,
    iter_suggestions,
    shown_suggestions,
)
from napari_faster_rcnn.core.prediction.thresholds import Thresholds, accept_predictions
from napari_faster_rcnn.layers import conventions

__all__ = ["BoxSuggestions", "suggestions_for", "SUGGESTIONS_NAME", "SUGGESTIONS_ROLE", "SUGGESTION_COLOR",
           "ACCEPT_ALL_KEY", "ACCEPT_KEY", "REJECT_KEY"]

SUGGESTIONS_NAME = "suggestions"
#: the layer's role (``metadata[conventions.LAYER_ROLE]``): neither labels nor predictions
SUGGESTIONS_ROLE = "suggestions"
SUGGESTION_COLOR = "#ffe100"
ACCEPT_ALL_KEY, ACCEPT_KEY, REJECT_KEY = "Shift-K", "k", "j"


def suggestions_for(viewer, session, predict: Callable[[object], Annotation], threshold: float = 0.5,
                    **options) -> BoxSuggestions:
    """Suggest ``predict``'s boxes on the images of labeling ``session`` (see :class:`BoxSuggestions`)."""
    return BoxSuggestions(viewer, session, predict, threshold=threshold, **options)


class BoxSuggestions:
    """Suggestions of a model on the images of a labeling session (module docstring).

    Parameters
    ----------
    viewer, session
        The viewer and the :class:`~napari_faster_rcnn.layers.labeling.LabelingSession`.
    predict
        ``predict(image) -> raw detections`` of one image (a path or an array), run in the worker
        (:func:`~napari_faster_rcnn.core.prediction.suggestions.model_predictor`).
    threshold, nms
        Score threshold and per-class NMS IoU of the suggestions shown.
    look_ahead, cache_size
        Images predicted ahead of the one shown; images whose detections are kept.
    start
        Show the suggestions of the image shown at once (False: at the first :meth:`show`, once
        :attr:`start_worker` is set).

    Attributes
    ----------
    start_worker : callable or None
        ``start_worker(generator, on_result, on_finished)`` runs ``generator`` in a worker thread,
        calls ``on_result(value)`` on this thread for each value it yields and ``on_finished()`` at
        its end; returns something with a ``quit()``. Set by the widget; None predicts in the calling thread.
    on_status : callable
        ``on_status(text)``: what the suggestions are doing (for the widget).
    """

    def __init__(self, viewer, session, predict: Callable[[object], Annotation], *, threshold: float = 0.5,
                 nms: float = 0.5, look_ahead: int = LOOK_AHEAD, cache_size: int = CACHE_SIZE, start: bool = True):
        self.viewer = viewer
        self.session = session
        self.predict = predict
        self.thresholds = Thresholds(score_threshold=threshold, nms_threshold=nms)
        self.look_ahead = look_ahead
        self.cache = SuggestionCache(cache_size)
        self.ahead = PredictAhead(self.cache)
        self.rejected = RejectedSuggestions(warn=_warn)
        self.start_worker: Callable | None = None
        self.on_status: Callable[[str], None] = lambda text: None
        self.worker = None
        self.shown = Annotation()
        self.errors: dict[Hashable, str] = {}
        self.closed = False
        self._index: int | None = None
        self._bound: list[tuple] = []
        self.layer = self._add_layer()
        session.events.changed.connect(self._on_changed)
        viewer.layers.events.removed.connect(self._on_removed)
        self._bind_keys()
        if start:
            self.show()

    # --- images ----------------------------------------------------------------------------

    def image_key(self, index: int) -> Hashable:
        """What identifies image ``index`` for the cache and the rejected boxes: its file, else its position."""
        sources = self.session.layer.metadata.get(conventions.SOURCE_IMAGES) or []
        plane = self._plane(index)
        source = self._plane_source(index)
        if plane is not None and source:  # a stack's plane
            return (str(Path(source).resolve()), plane)
        if index < len(sources) and sources[index]:
            return str(Path(sources[index]).resolve())
        return (id(self.session.layer), index)

    def rejection_key(self, index: int) -> Hashable:
        """What the rejected boxes of image ``index`` are kept under: ``(its file, its plane or None)``,
        kept in the file's folder; else its position in this layer (in memory)."""
        sources = self.session.layer.metadata.get(conventions.SOURCE_IMAGES) or []
        plane = self._plane(index)
        source = self._plane_source(index)
        if plane is not None and source:  # a stack's plane (of a stack's layer, or a folder's page)
            return (Path(source).resolve(), plane)
        if plane is None and index < len(sources) and sources[index]:
            return (Path(sources[index]).resolve(), None)
        return (id(self.session.layer), index)

    def _plane(self, index: int) -> tuple[int, ...] | None:
        """The leading coordinates of position ``index`` when the session labels a stack's planes."""
        store = getattr(self.session, "store", None)
        if isinstance(store, StackLabelStore):
            return index_plane(index, store.shape)
        return conventions.source_plane(self.session.layer.metadata, index)  # a folder's page that is a plane

    def _plane_source(self, index: int) -> str | None:
        """The stack's file of position ``index`` when it is a plane (a stack's layer names one file)."""
        sources = self.session.layer.metadata.get(conventions.SOURCE_IMAGES) or []
        if isinstance(getattr(self.session, "store", None), StackLabelStore):
            return sources[0] if sources else None
        return sources[index] if index < len(sources) else None

    def image_item(self, index: int):
        """Image ``index`` as the model reads it: its file, else the image layer's pixels."""
        sources = self.session.layer.metadata.get(conventions.SOURCE_IMAGES) or []
        plane = self._plane(index)
        source = self._plane_source(index)
        if plane is not None and source:  # a stack's plane: only that plane is read
            return StackPlane(Path(source), plane)
        if index < len(sources) and sources[index]:
            return sources[index]
        image = self.session.image_layer
        if image is None:
            raise ValueError("the box layer has no image layer under it to predict")
        data = image.data[0] if image.multiscale else image.data
        ndim = data.ndim - (1 if image.rgb else 0)
        return np.asarray(data[index] if ndim > 2 else data)

    def _wanted(self, index: int) -> list[tuple[Hashable, object]]:
        last = min(len(self.session), index + 1 + self.look_ahead)
        wanted = []
        for position in range(index, last):
            key = self.image_key(position)
            if key not in self.errors:
                wanted.append((key, (position, key)))  # the image itself is read in the worker
        return wanted

    # --- what is shown ---------------------------------------------------------------------

    def set_threshold(self, threshold: float) -> None:
        self.thresholds = self.thresholds.replace(score_threshold=float(threshold))
        self.show()

    def show(self) -> None:
        """Draw the suggestions of the image the session shows (or ask for them)."""
        if self.closed or self.session.closed or self.session.current is None:
            return
        index = self.session.current
        self._index = index
        key = self.image_key(index)
        raw = self.cache.get(key)
        self.ahead.want(self._wanted(index))
        if raw is None:
            self._draw(Annotation(scores=np.zeros(0)))
            if key in self.errors:
                self.on_status(f"no suggestions: {self.errors[key]}")
            else:
                self.on_status("predicting this image ...")
        else:
            labels = self.session.read_current()
            boxes, classes = self.rejected.get(self.rejection_key(index))
            self._draw(shown_suggestions(raw, self.thresholds, labels, boxes, rejected_labels=classes))
            self.on_status(f"{len(self.shown)} suggestion{'s' if len(self.shown) != 1 else ''} "
                           f"(score ≥ {self.thresholds.score_threshold:.2f})")
        self._predict_ahead()

    def _draw(self, suggestions: Annotation) -> None:
        empty_before = not len(self.shown) and not self.layer.nshapes
        self.shown = suggestions
        if empty_before and not len(suggestions):
            return
        layer = self.layer
        vertices = boxes_to_rectangles(suggestions.boxes)
        if layer.ndim > 2:  # led by the image's position, or a stack's plane (all its leading coordinates)
            plane = self._plane(self._index)
            lead = np.asarray(plane if plane is not None else (self._index,), dtype=np.float64)[-(layer.ndim - 2):]
            vertices = np.concatenate([np.broadcast_to(lead, (*vertices.shape[:2], len(lead))), vertices], axis=2)
        # one refresh for the replace (napari's private _block_refresh, as page_boxes.show_boxes holds it)
        block = getattr(layer, "_block_refresh", None)
        with layer.events.blocker_all(), (block() if callable(block) else contextlib.nullcontext()):
            layer.selected_data = set()
            layer.data = []
            if len(suggestions):
                layer.add(list(vertices), shape_type="rectangle", edge_color=SUGGESTION_COLOR)
            layer.features = conventions.features_frame(list(suggestions.labels), suggestions.scores)
        layer.refresh()

    # --- predicting ahead --------------------------------------------------------------------

    def _predict_ahead(self) -> None:
        if not self.ahead.pending() or self.worker is not None:
            return
        if self.start_worker is None:  # no worker: the image shown now, here
            wanted = self.ahead.next_wanted()
            if wanted is not None and wanted[0] == self.image_key(self._index):
                self.ahead.stop()
                for value in iter_suggestions(self._predict_item, _One(wanted, self.ahead)):
                    self.take(value)
            return
        self.worker = self.start_worker(iter_suggestions(self._predict_item, self.ahead), self.take, self._finished)

    def _predict_item(self, item):
        index, key = item
        return self.predict(self.image_item(index) if not isinstance(key, str) else key)

    def take(self, value) -> None:
        """A worker's result (``(key, raw detections, reason)``), on the main thread."""
        key, raw, reason = value
        self.ahead.done(key)
        if self.closed:
            return
        if raw is None:
            self.errors[key] = reason
        else:
            self.cache.put(key, raw)
        if self._index is not None and key == self.image_key(self._index):
            self.show()

    def _finished(self) -> None:
        self.worker = None
        if not self.closed:
            self._predict_ahead()

    def _on_changed(self, event=None) -> None:
        if self.session.current != self._index:
            self.show()

    # --- accepting and rejecting -------------------------------------------------------------

    def selected(self) -> list[int]:
        return sorted(i for i in self.layer.selected_data if i < len(self.shown))

    def accept(self, indices=None) -> int:
        """Make suggestions ``indices`` (all by default) labels of their classes; returns how many were added."""
        if self.session.closed or self.session.current is None or not len(self.shown):
            return 0
        indices = range(len(self.shown)) if indices is None else list(indices)
        chosen = self.shown.select(np.asarray(list(indices), dtype=np.int64))
        if not len(chosen):
            return 0
        session = self.session
        session.commit()
        index = session.current
        labels = session.annotations[index]
        merged, added = accept_predictions(labels, chosen, classes=session.classes or list(dict.fromkeys(chosen.labels)))
        if added:
            annotations = list(session.annotations)
            annotations[index] = merged
            session.annotations = annotations  # unsaved, as a drawn box; autosave writes it on leaving
            session.refresh()
        self.show()
        return added

    def accept_selected(self) -> int:
        return self.accept(self.selected())

    def reject(self, indices=None) -> int:
        """Reject suggestions ``indices`` (the selected ones, or all shown when none is): they do not come back
        on this image. Returns how many."""
        if self.session.current is None or not len(self.shown):
            return 0
        indices = self.selected() if indices is None else list(indices)
        if not indices:
            indices = list(range(len(self.shown)))
        chosen = self.shown.select(np.asarray(indices, dtype=np.int64))
        self.rejected.add(self.rejection_key(self.session.current), chosen.boxes, chosen.labels)
        self.show()
        return len(indices)

    # --- the layer and keys --------------------------------------------------------------------

    def _add_layer(self):
        box_layer = self.session.layer
        width = max(0.5, float(box_layer.current_edge_width) / 3)  # thinner than the labels
        layer = self.viewer.add_shapes(
            [], ndim=max(2, box_layer.ndim), shape_type="rectangle", name=SUGGESTIONS_NAME,
            edge_color=SUGGESTION_COLOR, face_color="transparent", edge_width=width, opacity=0.9,
            features=conventions.features_frame([], np.zeros(0)),
            text={"string": "{label} {score:.2f}", "size": 9, "color": SUGGESTION_COLOR, "anchor": "lower_left"},
            metadata={conventions.LAYER_ROLE: SUGGESTIONS_ROLE},
            scale=box_layer.scale, translate=box_layer.translate,
        )
        self.viewer.layers.selection.active = box_layer  # draw in the box layer; select suggestions in theirs
        return layer

    def key_actions(self) -> dict[str, Callable[[], object]]:
        return {ACCEPT_ALL_KEY: self.accept, ACCEPT_KEY: self.accept_selected, REJECT_KEY: self.reject}

    def _bind_keys(self) -> None:
        actions = self.key_actions()
        for target in (self.layer, self.session.layer, self.session.image_layer):
            if target is None:
                continue
            keys = dict(actions)
            if target is self.layer:  # paging and classes work with the suggestions layer active too
                keys.update(self.session.key_actions())
            for key, action in keys.items():
                previous = target.bind_key(key, lambda layer, action=action: action(), overwrite=True)
                self._bound.append((target, key, previous))

    def _on_removed(self, event) -> None:
        if event.value is self.layer or event.value is self.session.layer:
            self.close()

    def close(self) -> None:
        """Stop predicting, unbind the keys, remove the suggestions layer."""
        if self.closed:
            return
        self.closed = True
        self.ahead.stop()
        if self.worker is not None:
            self.worker.quit()
            self.worker = None
        self.session.events.changed.disconnect(self._on_changed)
        self.viewer.layers.events.removed.disconnect(self._on_removed)
        for target, key, previous in reversed(self._bound):
            if target is not self.layer:
                target.bind_key(key, previous, overwrite=True)
        self._bound = []
        if self.layer in self.viewer.layers:
            self.viewer.layers.remove(self.layer)


def _warn(text: str) -> None:
    from napari.utils.notifications import show_warning

    show_warning(text)


class _One:
    """A :class:`PredictAhead` that hands out one image (predicting in the calling thread)."""

    def __init__(self, wanted, ahead: PredictAhead):
        self._wanted, self._ahead = wanted, ahead

    def next_wanted(self):
        wanted, self._wanted = self._wanted, None
        return wanted

    def failed(self, key) -> None:
        self._ahead.failed(key)


def layer_boxes(layer) -> np.ndarray:
    """The suggestions layer's boxes, ``(N, 4)`` (for tests and the benchmark)."""
    boxes, _ = rectangles_to_boxes(layer.data)
    return boxes
