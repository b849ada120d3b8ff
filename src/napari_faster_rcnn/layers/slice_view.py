"""One image's boxes in a Shapes layer, every image's boxes in a model.

napari's Shapes layer does work proportional to *all* its shapes on every dims
step and every edit (measured with napari 0.9: 100,000 boxes take 19 s to
create and 0.7 s per step of the slider). Widgets that page through large
stacks therefore keep the boxes of all images in a list of
:class:`~napari_faster_rcnn.core.data.annotations.Annotation` and show only the
current image's boxes in the layer (at their image index, so they sit on the
image stack). :class:`SliceBoxes` does the paging; :func:`show_boxes` is the
fast replace of a layer's contents that it uses.

An image with more than :data:`~napari_faster_rcnn.layers.conventions.WINDOW_THRESHOLD` boxes is
shown through a window: the layer holds only the boxes around the view, a display-only picture
draws the others, and the window follows the camera (see :mod:`~napari_faster_rcnn.layers.box_window`);
:meth:`SliceBoxes.read_current` gives all of them back.

Saving a paged layer through napari's writer must save every image, not only
the one on screen: :func:`register` ties the layer to its model, and the writer
asks :func:`model_annotations` before falling back to the layer's own shapes.
A model with a ``write_files(destinations)`` method (the labeling session) writes
the files itself, so that it can keep track of what it saved.

No Qt here.
"""

from __future__ import annotations

import contextlib
import uuid
import weakref
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np

from napari_faster_rcnn.core.data.annotations import Annotation
from napari_faster_rcnn.core.data.boxes import boxes_to_rectangles, clip_boxes, rectangles_to_boxes
from napari_faster_rcnn.layers import box_window, conventions

#: metadata key holding the id of the model that pages a layer
SLICE_MODEL = "slice_model"

_MODELS: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
_HELD: dict = {}  # models of layers the reader made and no viewer pages yet (see attach_when_added)


def show_boxes(layer, annotation: Annotation, index: int | None, colors: dict[str, str]) -> None:
    """Replace everything in ``layer`` with ``annotation``'s boxes, fast.

    ``index`` is the image's position in the stack (``None`` for a 2-D layer), or the
    leading coordinates (a tuple) of a plane of a stack read as data. Events are held back while data, features and colours change, and the
    layer refreshes once (about 20 ms for 100 boxes with napari 0.9 and bermuda).
    """
    vertices = rectangles_at(annotation.boxes, index)
    labels = list(annotation.labels)
    scores = annotation.scores if layer.metadata.get(conventions.LAYER_ROLE) == conventions.PREDICTIONS else None
    # An empty features table resets the defaults to None: new shapes would get no label, and
    # the label-coloured text fails on several None values. Keep the defaults across the replace.
    defaults = layer.feature_defaults.copy()
    if not conventions.text_fits(len(labels)):
        fit_text(layer, len(labels))  # before the new features: their labels would be laid out at once
    with layer.events.blocker_all(), layer.text.events.blocker_all(), _refresh_held(layer):
        layer.selected_data = set()
        layer.data = []
        if labels:
            layer.add(list(vertices), shape_type="rectangle", edge_color=conventions.edge_colors(labels, colors))
        layer.features = conventions.features_frame(labels, scores)
        layer.feature_defaults = defaults
    fit_text(layer, len(labels))  # (after the replace: labels switched back on are laid out for the new boxes)
    layer.refresh()


def rectangles_at(boxes: np.ndarray, at) -> np.ndarray:
    """Rectangle vertices of ``boxes``: 2-D (``at`` None), led by an image index (an int) or by a
    plane's leading coordinates (a tuple)."""
    if not isinstance(at, tuple):
        return boxes_to_rectangles(boxes, at) if at is not None else boxes_to_rectangles(boxes)
    flat = boxes_to_rectangles(boxes)
    lead = np.broadcast_to(np.asarray(at, dtype=np.float64), (len(flat), flat.shape[1], len(at)))
    return np.concatenate([lead, flat], axis=2)


def _leads(layer, depth: int) -> np.ndarray:
    """The first vertex's leading ``depth`` coordinates of every shape of ``layer``, rounded."""
    return np.rint(np.array([np.asarray(v)[0, :depth] for v in layer.data], dtype=np.float64)).reshape(-1, depth)


def fit_text(layer, count: int) -> None:
    """Switch the labels off for a page of more than :data:`~.conventions.TEXT_LIMIT` boxes, and back
    on for a smaller one when it was the count that switched them off (a person's choice stays: labels
    switched off stay off; labels switched on over the limit stay on while the pages are large)."""
    hidden = layer.metadata.get(conventions.TEXT_HIDDEN, False)
    if not conventions.text_fits(count):
        if layer.text.visible and not hidden:  # (visible and hidden: a person switched them on)
            layer.text.visible = False
            layer.metadata[conventions.TEXT_HIDDEN] = True
    elif hidden:
        layer.text.visible = True
        layer.metadata.pop(conventions.TEXT_HIDDEN, None)


def layer_shows(layer, annotation: Annotation, index: int | None) -> bool:
    """Whether ``layer`` holds exactly ``annotation``'s boxes as rectangles (at ``index`` for a stack),
    with their labels, scores (of predictions) and class colours."""
    if layer.nshapes != len(annotation) or len(layer.features) != len(annotation):
        return False
    if len(annotation) == 0:
        return True
    if any(kind != "rectangle" for kind in layer.shape_type):
        return False
    boxes, at = rectangles_to_boxes(layer.data)
    if isinstance(index, tuple):
        if layer.ndim != len(index) + 2 or np.any(_leads(layer, len(index)) != np.asarray(index)):
            return False
    elif (index is None) != (at is None) or (at is not None and np.any(at != index)):
        return False
    features = layer.features
    if "label" not in features or [str(label) for label in features["label"]] != list(annotation.labels):
        return False
    if layer.metadata.get(conventions.LAYER_ROLE) == conventions.PREDICTIONS:
        scores = np.ones(len(annotation)) if annotation.scores is None else annotation.scores
        if "score" not in features or not np.array_equal(np.asarray(features["score"], dtype=np.float64), scores):
            return False
    colors = layer.metadata.get(conventions.CLASS_COLORS, {})
    return bool(np.allclose(boxes, annotation.boxes, atol=1e-6)
                and np.allclose(layer.edge_color, conventions.edge_colors(annotation.labels, colors)))


def _refresh_held(layer):
    """Hold back the layer's own refreshes while its contents are replaced; the caller refreshes once.

    Setting ``data`` and adding shapes each refresh a Shapes layer (its slice, its
    thumbnail drawn shape by shape, its text), three times for one replace; napari's
    ``_block_refresh`` (private; napari 0.9 has it) holds them back. Without
    it the replace is only slower.
    """
    block = getattr(layer, "_block_refresh", None)
    return block() if callable(block) else contextlib.nullcontext()


def read_boxes(layer, sizes: tuple[int, int] | None, classes: Sequence[str], predictions: bool) -> Annotation:
    """The boxes in ``layer`` as one :class:`Annotation` (clipped to ``sizes`` when given)."""
    boxes, _ = rectangles_to_boxes(layer.data)
    if sizes is not None:
        boxes = clip_boxes(boxes, *sizes)
    features = layer.features
    labels = [str(v) for v in features["label"]] if "label" in features and len(features) == len(boxes) else ["object"] * len(boxes)
    scores = None
    if predictions:
        scores = np.asarray(features["score"], dtype=np.float64) if "score" in features else np.ones(len(boxes))
    return Annotation(boxes=boxes, labels=labels, scores=scores, classes=list(classes))


class SliceBoxes:
    """Page a stack's boxes through one Shapes layer as the dims slider moves.

    Parameters
    ----------
    viewer
        The napari viewer (only ``viewer.dims`` is used).
    layer
        The Shapes layer to show boxes in; its ``metadata`` carries the class
        colours and image sizes (see :mod:`~napari_faster_rcnn.layers.conventions`).
    annotations
        One annotation per image of the stack: the model.
    editable
        When true, what the user changed in the layer is read back into the
        model before the layer shows another image.
    on_leave
        Called as ``on_leave(index, changed)`` after the model took the edits
        of image ``index``, before another image is shown (saving goes here).
    axis
        The dims axis that walks through the images.
    planes_shape
        For a stack read as data (time, z): the number of planes along each leading
        dimension. Each plane is an "image" then, at position
        :func:`~napari_faster_rcnn.core.data.stack_planes.plane_index`, and its boxes are led by
        the plane's coordinates; ``axis`` is unused.
    """

    def __init__(
        self,
        viewer,
        layer,
        annotations: Sequence[Annotation],
        *,
        editable: bool = True,
        on_leave: Callable[[int, bool], None] | None = None,
        axis: int = 0,
        planes_shape: Sequence[int] | None = None,
    ):
        self.planes_shape = tuple(int(s) for s in planes_shape) if planes_shape else None
        self.viewer = viewer
        self.layer = layer
        self.annotations = list(annotations)
        self.editable = editable
        self.on_leave = on_leave
        self.axis = axis
        self.current: int | None = None
        self._shown: Annotation | None = None
        self._connected = False
        # A crowded image (see box_window): the boxes outside the editable window, the region the
        # window covers (None: no window, too many boxes in view), and what to tell the person.
        self._rest: Annotation | None = None
        self._covered: np.ndarray | None = None
        self._rest_counts: Counter | None = None
        self._picture: tuple | None = None  # (annotation, RGBA picture of all its boxes, scale)
        self.window_note = ""
        register(layer, self)
        self.show(self.viewer_index())
        viewer.dims.events.current_step.connect(self._on_step)
        box_window.camera(viewer).events.center.connect(self._on_camera)
        box_window.camera(viewer).events.zoom.connect(self._on_camera)
        viewer.canvas.events.size.connect(self._on_camera)
        viewer.layers.events.removed.connect(self._on_layer_removed)
        self._connected = True

    # --- model access -------------------------------------------------------

    @property
    def colors(self) -> dict[str, str]:
        return self.layer.metadata.get(conventions.CLASS_COLORS, {})

    @property
    def classes(self) -> list[str]:
        return list(self.layer.metadata.get(conventions.CLASSES, []))

    @property
    def predictions(self) -> bool:
        return self.layer.metadata.get(conventions.LAYER_ROLE) == conventions.PREDICTIONS

    def image_size(self, index: int):
        sizes = self.layer.metadata.get(conventions.IMAGE_SIZES)
        if self.planes_shape is not None:  # every plane of a stack has the one size
            return tuple(sizes[0]) if sizes else None
        return tuple(sizes[index]) if sizes and index < len(sizes) else None

    def lead(self, index: int):
        """What leads image ``index``'s vertices in the layer: None (a 2-D layer), the index (a stack
        of images) or the plane's coordinates (a stack read as data)."""
        if self.planes_shape is not None:
            return tuple(int(v) for v in np.unravel_index(int(index), self.planes_shape))
        return index if self.layer.ndim >= 3 else None

    def _plane_axes(self) -> list[int]:
        """The dims axes of a stack's leading dimensions (those just before the plane's two)."""
        ndim = len(self.viewer.dims.current_step)
        depth = len(self.planes_shape)
        return list(range(ndim - depth - 2, ndim - 2))

    def step_to(self, index: int) -> None:
        """Move the dims slider(s) to image ``index`` (the layer follows)."""
        if self.planes_shape is None:
            self.viewer.dims.set_current_step(self.axis, index)
            return
        step = list(self.viewer.dims.current_step)
        for axis, value in zip(self._plane_axes(), self.lead(index)):
            step[axis] = value
        self.viewer.dims.current_step = tuple(step)

    def viewer_index(self) -> int:
        if self.planes_shape is not None:
            axes = self._plane_axes()
            if not axes or axes[0] < 0:
                return 0
            step = self.viewer.dims.current_step
            plane = [int(np.clip(step[axis], 0, side - 1)) for axis, side in zip(axes, self.planes_shape)]
            return int(np.ravel_multi_index(plane, self.planes_shape))
        if len(self.viewer.dims.current_step) <= self.axis:
            return 0
        step = int(self.viewer.dims.current_step[self.axis])
        return int(np.clip(step, 0, max(len(self.annotations) - 1, 0)))

    # --- paging -------------------------------------------------------------

    def read_current(self) -> Annotation:
        """What the layer shows now, as an annotation of the current image (with the boxes outside
        the window of a crowded image: all of them, the window's last)."""
        shown = read_boxes(self.layer, self.image_size(self.current), self.classes, self.predictions)
        if self._rest is None:
            return shown
        return box_window.join(self._rest, shown, self.classes)

    @property
    def windowed(self) -> bool:
        """Whether the layer holds only the boxes around the view (a crowded image)."""
        return self._rest is not None

    def window_status(self) -> str:
        """For the widgets: how much of a crowded image is editable now ("" for an ordinary image)."""
        if self._rest is None:
            return ""
        if self.window_note:
            return self.window_note
        return f"{self.layer.nshapes:,} of {self.layer.nshapes + len(self._rest):,} boxes editable (those around the view)"

    @property
    def window_region(self) -> np.ndarray | None:
        """The region ``[x0, y0, x1, y1]`` (image pixels) whose boxes the layer holds (None: no window)."""
        return self._covered

    def outside_counts(self) -> Counter:
        """Boxes per class outside the window (counted once per window, not on every edit)."""
        if self._rest is None:
            return Counter()
        if self._rest_counts is None:
            self._rest_counts = Counter(self._rest.labels)
        return self._rest_counts

    def outside_window(self) -> Annotation | None:
        """The current image's boxes that the layer does not hold (None when it holds them all)."""
        return self._rest

    def _put(self, index: int, annotation: Annotation) -> None:
        """Replace image ``index``'s boxes in the model (subclasses keep their counts)."""
        self.annotations[index] = annotation

    def take_strays(self) -> bool:
        """A stack read as data: boxes put into the layer on another plane than the one shown (by
        code, not by hand) go to their plane in the model and leave the layer; returns whether any did."""
        if self.planes_shape is None or self.current is None or not self.layer.nshapes:
            return False
        leads = _leads(self.layer, len(self.planes_shape))
        away = np.flatnonzero((leads != np.asarray(self.lead(self.current))).any(axis=1))
        if not len(away):
            return False
        data = self.layer.data
        boxes, _ = rectangles_to_boxes([data[i] for i in away])
        size = self.image_size(self.current)
        if size is not None:
            boxes = clip_boxes(boxes, *size)
        features = self.layer.features
        labels = ([str(features["label"].iloc[i]) for i in away] if "label" in features and len(features) == len(data)
                  else ["object"] * len(away))
        scores = None
        if self.predictions:
            scores = (np.asarray(features["score"], dtype=np.float64)[away] if "score" in features
                      and len(features) == len(data) else np.ones(len(away)))
        planes = np.clip(leads[away].astype(np.int64), 0, np.asarray(self.planes_shape) - 1)
        flat = np.ravel_multi_index(tuple(planes.T), self.planes_shape)
        for index in np.unique(flat):
            keep = np.flatnonzero(flat == index)
            old = self.annotations[index]
            added = [labels[i] for i in keep]
            old_scores = old.scores if old.scores is not None else np.ones(len(old))
            self._put(int(index), Annotation(
                np.concatenate([old.boxes, boxes[keep]]), list(old.labels) + added,
                None if scores is None else np.concatenate([old_scores, scores[keep]]),
                self.classes + [label for label in dict.fromkeys(added) if label not in self.classes]))
        self.layer.selected_data = set(int(i) for i in away)
        self.layer.remove_selected()
        return True

    def commit(self) -> bool:
        """Take the layer's boxes into the model; returns whether anything changed."""
        if not self.editable or self.current is None:
            return False
        self.take_strays()
        annotation = self.read_current()
        if self._shown is not None and same_boxes(annotation, self._shown):
            return False
        self.annotations[self.current] = annotation
        self._shown = annotation
        return True

    def show(self, index: int) -> None:
        """Show image ``index``'s boxes (without committing the current ones).

        When the layer already holds exactly these boxes (a single image's layer
        that a widget starts paging) it is left as it is: replacing 100,000 boxes
        by themselves would take napari seconds.
        """
        annotation = self.annotations[index] if self.annotations else Annotation()
        at = self.lead(index)
        if conventions.windowed(len(annotation)):
            self._show_window(annotation, at, index)
        else:
            self._rest, self._covered, self.window_note = None, None, ""
            self._hide_display()
            if layer_shows(self.layer, annotation, at):
                fit_text(self.layer, len(annotation))
            else:
                show_boxes(self.layer, annotation, at, self.colors)
        self.current = index
        self._shown = self.read_current() if self.editable else annotation

    # --- the window of a crowded image (see box_window) -------------------------------------

    def _show_window(self, annotation: Annotation, at: int | None, index: int) -> None:
        view = box_window.view_rect(self.viewer, self.layer)
        mask, covered = box_window.choose_window(annotation.boxes, view, conventions.WINDOW_CAP)
        self._rest = box_window.subset(annotation, ~mask)
        self._rest_counts = None
        self._covered = covered
        self.window_note = "" if covered is not None else (
            f"{len(annotation):,} boxes: {box_window.ZOOM_IN_HINT} (at most {conventions.WINDOW_CAP:,} in view)")
        show_boxes(self.layer, box_window.subset(annotation, mask), at, self.colors)
        self._draw_display(annotation, covered, index)
        if self.window_note:
            self.viewer.status = self.window_note

    def _draw_display(self, annotation: Annotation, covered, index: int) -> None:
        """Draw ``annotation``'s boxes in the display layer, but for the region the window covers.

        The picture of every box is drawn once per version of the annotation (0.7 s for 100,000
        boxes) and kept; a window that moves only clears its region in a copy. Boxes of the window
        that reach out of its region show there as thin outlines under the box layer's edges.
        """
        size = self.image_size(index) or box_window.extent(annotation)
        if self._picture is None or self._picture[0] is not annotation:
            picture, scale = box_window.display_picture(annotation, size, self.colors)
            self._picture = (annotation, picture, scale)
        _, picture, scale = self._picture
        if covered is not None:
            picture = box_window.clear_region(picture, covered, scale)
        placement = box_window.display_placement(self.layer, scale)
        display = box_window.find_display(self.viewer, self.layer)
        if display is None:
            self.layer.metadata.setdefault(conventions.DISPLAY_ID, box_window.new_display_id())
            kwargs = box_window.display_layer_data(Annotation(), (1, 1), self.colors,
                                                   box_window.display_name(self.layer.name),
                                                   self.layer.metadata[conventions.DISPLAY_ID])[1]
            kwargs.update(placement)
            display = self.viewer.add_image(picture, **kwargs)
            layers = self.viewer.layers
            layers.move(layers.index(display), layers.index(self.layer))  # under the box layer
            layers.selection.active = self.layer
            return
        display.data = picture
        display.scale, display.translate = placement["scale"], placement["translate"]
        display.visible = True

    def _on_layer_removed(self, event) -> None:
        """The display layer goes with its box layer."""
        if event.value is not self.layer:
            return
        display = box_window.find_display(self.viewer, self.layer)
        if display is not None and display in self.viewer.layers:
            self.viewer.layers.remove(display)

    def _disconnect_camera(self) -> None:
        model = box_window.camera(self.viewer)
        for emitter in (model.events.center, model.events.zoom, self.viewer.canvas.events.size):
            emitter.disconnect(self._on_camera)
        # (_on_layer_removed stays: a session closes as its layer is being removed, before the display goes)

    def _hide_display(self) -> None:
        display = box_window.find_display(self.viewer, self.layer)
        if display is not None and display.visible:
            display.visible = False

    def _on_camera(self, event=None) -> None:
        """Move the window with the view: only when the view leaves the region it covers, zooms far
        into it, or (no window: too many boxes) comes close enough to edit."""
        if self._rest is None or self.current is None or not self._connected:
            return
        view = box_window.view_rect(self.viewer, self.layer)
        if self._covered is not None:
            if box_window.inside(view, self._covered) and box_window.area(view) * 16 >= box_window.area(self._covered):
                return
        else:
            boxes = self._rest.boxes
            if box_window.touching(boxes, view).sum() > conventions.WINDOW_CAP:
                return
        self.commit()
        self.show(self.current)

    def refresh(self) -> None:
        """Show the current image's boxes again, after the model changed."""
        self.show(self.current if self.current is not None else self.viewer_index())

    def go_to(self, index: int) -> None:
        """Commit the current image, then move the dims slider (and the layer) to ``index``."""
        self.step_to(index)

    def _on_step(self, event=None) -> None:
        index = self.viewer_index()
        if index == self.current:
            return
        self.leave()
        self.show(index)

    def leave(self) -> None:
        """Commit the current image and tell ``on_leave``."""
        if self.current is None:
            return
        changed = self.commit()
        if self.on_leave is not None:
            self.on_leave(self.current, changed)

    def all_annotations(self) -> list[Annotation]:
        """Every image's annotation, including unsaved edits on screen."""
        self.commit()
        return list(self.annotations)

    def disconnect(self, restore: bool = True) -> None:
        """Stop paging. With ``restore``, the layer gets every image's boxes back,
        so it stays a complete, saveable layer without this model."""
        if not self._connected:
            return
        self.viewer.dims.events.current_step.disconnect(self._on_step)
        self._disconnect_camera()
        self._connected = False
        annotations = self.all_annotations()
        if self._rest is not None and not restore:
            self.layer.metadata.pop(SLICE_MODEL, None)  # another model takes over at once
            return
        if self._rest is not None:
            return  # the layer holds a window only: it stays tied to this model, which saves every box
        self.layer.metadata.pop(SLICE_MODEL, None)
        if restore and self.planes_shape is not None:
            self._restore_planes(annotations)
        elif restore and self.layer.ndim >= 3:
            data, kwargs, _ = conventions.shapes_layer_data(
                annotations, stacked=True, name=self.layer.name, classes=self.classes, colors=self.colors
            )
            with self.layer.events.blocker_all():
                self.layer.selected_data = set()
                self.layer.data = []
                if data:
                    self.layer.add(data, shape_type="rectangle", edge_color=kwargs["edge_color"])
                self.layer.features = kwargs["features"]
            self.layer.refresh()


    def _restore_planes(self, annotations: list[Annotation]) -> None:
        """A stack read as data gets every plane's boxes back, each led by its plane."""
        data, labels, scores = [], [], []
        for index, annotation in enumerate(annotations):
            if len(annotation):
                data.extend(rectangles_at(annotation.boxes, self.lead(index)))
                labels.extend(annotation.labels)
                if self.predictions:
                    scores.extend(annotation.scores if annotation.scores is not None else np.ones(len(annotation)))
        with self.layer.events.blocker_all():
            self.layer.selected_data = set()
            self.layer.data = []
            if data:
                self.layer.add(data, shape_type="rectangle", edge_color=conventions.edge_colors(labels, self.colors))
            self.layer.features = conventions.features_frame(labels, scores if self.predictions else None)
        self.layer.refresh()


def keep_with_layer(layer, model) -> None:
    """Let ``layer`` hold its paging model, which lives as long as the layer then.

    The viewer's events and :func:`paging_model` refer to models
    weakly; a model nobody else holds would vanish and leave its layer showing
    one image, unsaveable.
    """
    layer._napari_faster_rcnn_model = model


def hold(layer_metadata: dict, held) -> str:
    """Tie the box layer to be made with ``layer_metadata`` to ``held`` (kept alive until a viewer pages it)."""
    key = uuid.uuid4().hex
    layer_metadata[SLICE_MODEL] = key
    _MODELS[key] = held
    _HELD[key] = held
    return key


def attach_when_added(viewer, key: str, held, make: Callable | None = None) -> None:
    """Page the layer that the reader tied to ``held`` (:class:`~.box_window.HeldBoxes`, registered under
    ``key``) with a :class:`SliceBoxes` as soon as it is added to ``viewer``; ``make(viewer, layer)``,
    when given, makes the paging model instead."""
    def added(event) -> None:
        layer = event.value
        if getattr(layer, "metadata", {}).get(SLICE_MODEL) != key or _MODELS.get(key) is not held:
            return
        viewer.layers.events.inserted.disconnect(added)
        _HELD.pop(key, None)
        model = make(viewer, layer) if make is not None else SliceBoxes(viewer, layer, held.annotations, editable=True)
        keep_with_layer(layer, model)

    viewer.layers.events.inserted.connect(added)


def same_boxes(a: Annotation, b: Annotation) -> bool:
    return len(a) == len(b) and a.labels == b.labels and np.allclose(a.boxes, b.boxes, atol=1e-6)


def register(layer, model) -> str:
    """Tie ``layer`` to ``model`` so that saving the layer saves the model."""
    key = layer.metadata.get(SLICE_MODEL) or uuid.uuid4().hex
    layer.metadata[SLICE_MODEL] = key
    _MODELS[key] = model
    return key


def paging_model(layer) -> SliceBoxes | None:
    """The :class:`SliceBoxes` that pages ``layer``, or None when the layer holds all its boxes.

    Code that changes boxes of images other than the one on screen (accepting
    predictions as labels, say) edits ``model.annotations[i]`` and calls
    ``model.refresh()``; on an ordinary layer it edits the layer itself.
    """
    key = layer.metadata.get(SLICE_MODEL)
    return _MODELS.get(key) if key else None


def metadata_model(metadata: dict):
    """The model that pages the layer with ``metadata``, or None for an ordinary layer.

    Raises
    ------
    ValueError
        If the layer is paged but its model is gone: the layer then holds one
        image's boxes, and saving it would wipe every other image's file.
    """
    key = metadata.get(SLICE_MODEL)
    if not key:
        return None
    model = _MODELS.get(key)
    if model is None:
        raise ValueError(
            "this box layer shows one image of a stack whose other boxes are no longer "
            "held (the widget that paged it was closed); not saving, so no annotation "
            "file is overwritten. Open the dataset folder again."
        )
    return model


def model_annotations(metadata: dict) -> list[Annotation] | None:
    """The annotations of every image of a paged layer, or None for an ordinary layer.

    Raises ``ValueError`` as :func:`metadata_model` does.
    """
    model = metadata_model(metadata)
    return None if model is None else model.all_annotations()
