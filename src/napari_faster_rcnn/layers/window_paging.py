"""The window of a crowded image, the part of :class:`~napari_faster_rcnn.layers.slice_view.SliceBoxes` that
shows an image with very many boxes.

An image with more than :data:`~napari_faster_rcnn.layers.conventions.WINDOW_THRESHOLD` boxes is
shown through a window: the layer holds only the boxes around the view, a display-only picture
draws the others, and the window follows the camera (the geometry and the picture are in
:mod:`~napari_faster_rcnn.layers.box_window`); the paging model's ``read_current`` gives all of
them back.

:class:`WindowPaging` is a mixin of the paging model: it uses the model's ``viewer``, ``layer``,
``colors``, ``current``, ``image_size``, ``commit`` and ``show``, and the window state the model
sets up (``_rest``: the boxes outside the window; ``_covered``: the region the window covers;
``_rest_counts``; ``_picture``; ``window_note``; ``_connected``).

No Qt here.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from napari_faster_rcnn.core.data.annotations import Annotation
from napari_faster_rcnn.layers import box_window, conventions
from napari_faster_rcnn.layers.page_boxes import show_boxes


class WindowPaging:
    """The editable window of a crowded image and the picture of the boxes outside it (a mixin)."""

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
