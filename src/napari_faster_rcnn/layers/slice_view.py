"""Page a stack's boxes through one Shapes layer: every image's boxes in a model.

napari's Shapes layer does work proportional to *all* its shapes on every dims
step and every edit (measured with napari 0.9: 100,000 boxes take 19 s to
create and 0.7 s per step of the slider). Widgets that page through large
stacks therefore keep the boxes of all images in a list of
:class:`~napari_faster_rcnn.core.data.annotations.Annotation` and show only the
current image's boxes in the layer (at their image index, so they sit on the
image stack). :class:`SliceBoxes` does the paging; drawing and reading back one
page's boxes is in :mod:`~napari_faster_rcnn.layers.page_boxes`, the window of a
crowded image in :mod:`~napari_faster_rcnn.layers.window_paging`.

Saving a paged layer through napari's writer must save every image, not only the
one on screen: :class:`SliceBoxes` registers its layer in
:mod:`~napari_faster_rcnn.layers.paging_registry`. :func:`attach_when_added` pages a
layer that the reader made as soon as a viewer has it.

No Qt here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np

from napari_faster_rcnn.core.data.annotations import Annotation
from napari_faster_rcnn.core.data.boxes import clip_boxes, rectangles_to_boxes
from napari_faster_rcnn.layers import box_colors, box_window, conventions
from napari_faster_rcnn.layers.page_boxes import (
    fit_text,
    layer_shows,
    read_boxes,
    rectangles_at,
    same_boxes,
    shape_leads,
    show_boxes,
)
from napari_faster_rcnn.layers.paging_registry import (
    SLICE_MODEL,
    keep_with_layer,
    paging_model,
    register,
    release_held,
)
from napari_faster_rcnn.layers.window_paging import WindowPaging


class SliceBoxes(WindowPaging):
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

    def _put(self, index: int, annotation: Annotation) -> None:
        """Replace image ``index``'s boxes in the model (subclasses keep their counts)."""
        self.annotations[index] = annotation

    def take_strays(self) -> bool:
        """A stack read as data: boxes put into the layer on another plane than the one shown (by
        code, not by hand) go to their plane in the model and leave the layer; returns whether any did."""
        if self.planes_shape is None or self.current is None or not self.layer.nshapes:
            return False
        leads = shape_leads(self.layer, len(self.planes_shape))
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
                self.layer.add(data, shape_type="rectangle", edge_color=box_colors.edge_colors(labels, self.colors))
            self.layer.features = conventions.features_frame(labels, scores if self.predictions else None)
        self.layer.refresh()


def attach_when_added(viewer, key: str, held, make: Callable | None = None) -> None:
    """Page the layer that the reader tied to ``held`` (:class:`~.box_window.HeldBoxes`, registered under
    ``key``) with a :class:`SliceBoxes` as soon as it is added to ``viewer``; ``make(viewer, layer)``,
    when given, makes the paging model instead."""
    def added(event) -> None:
        layer = event.value
        if getattr(layer, "metadata", {}).get(SLICE_MODEL) != key or paging_model(layer) is not held:
            return
        viewer.layers.events.inserted.disconnect(added)
        release_held(key)
        model = make(viewer, layer) if make is not None else SliceBoxes(viewer, layer, held.annotations, editable=True)
        keep_with_layer(layer, model)

    viewer.layers.events.inserted.connect(added)

