"""The "Anchor boxes" layers: what the RPN sees of one image, in the viewer. No Qt.

Every layer lives on the transformed image (resized and padded as
``GeneralizedRCNNTransform`` makes it), so they line up with each other but not
with the source image; the widget hides the source layers while it shows these.

- ``anchors · model input``: the image as the model's batch holds it;
- ``anchors · centres NAME (stride S)``: a Points layer per feature map, one point
  per anchor position, in the map's colour (one layer per map, so a dense fine
  map can be hidden while the coarse ones stay);
- ``anchors · ground truth``: the image's boxes scaled as training scales them,
  in their class colours, with their best anchor's IoU;
- ``anchors · at point``: a Shapes layer of the anchors at the cell nearest the
  clicked point on every map, in the maps' colours;
- ``anchors · unreached``: the boxes whose best anchor stays below IoU 0.5, in red
  with that IoU, selectable.

:class:`AnchorLayers` updates them in place and only what changed: the image is
transformed once per (image, min_size, max_size), the centres change only with
the grids, so a new anchor size redraws only the few anchor boxes. A click on
the model input (``mouse_drag_callbacks``) moves the point. The images and boxes they show are
read from the viewer's own layers by :mod:`~napari_faster_rcnn.layers.anchor_sources`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from napari_faster_rcnn.core.data.annotations import Annotation
from napari_faster_rcnn.core.data.boxes import PIXEL_OFFSET, boxes_to_rectangles
from napari_faster_rcnn.core.model.anchor_inputs import transform_boxes, transform_image
from napari_faster_rcnn.core.model.anchors import REACHED_IOU, AnchorGrid, Coverage, anchor_grids
from napari_faster_rcnn.core.model.config import ModelConfig
from napari_faster_rcnn.core.model.detector import padded_image_size, resized_image_size
from napari_faster_rcnn.layers import box_colors, conventions
from napari_faster_rcnn.layers.box_window import camera

#: metadata key naming what an anchor layer shows ("image", "centres", "at point", ...)
ANCHOR_ROLE = "napari_faster_rcnn_anchors"
PREFIX = "anchors · "
IMAGE, AT_POINT, TRUTH, UNREACHED = (PREFIX + name for name in ("model input", "at point", "ground truth",
                                                                "unreached"))
#: feature maps from fine to coarse: warm to cold, readable on photos
MAP_COLORS = ("#ffd92f", "#ff7f0e", "#ff4fb8", "#17becf", "#1f9bff", "#b15cff", "#a6d854")
UNREACHED_COLOR = "#e31a1c"
#: maps with more anchor positions start hidden: a carpet of points hides the image
VISIBLE_CENTRES = 3_000


def map_color(position: int) -> str:
    return MAP_COLORS[position % len(MAP_COLORS)]


def centres_name(grid: AnchorGrid) -> str:
    return f"{PREFIX}centres {grid.name} (stride {grid.stride})"


def is_anchor_layer(layer) -> bool:
    return ANCHOR_ROLE in getattr(layer, "metadata", {})


@dataclass
class AnchorScene:
    """One image and the settings to show its anchors with.

    ``point`` is ``(x, y)`` on the transformed image, or None for the centre of the
    resized image; ``coverage`` (of the whole dataset, ``index`` being this image's
    position in it) gives the IoU of the boxes and the unreached ones.
    """

    config: ModelConfig
    image_key: object
    image: Callable[[], np.ndarray]
    image_size: tuple[int, int]
    annotation: Annotation | None = None
    colors: dict = field(default_factory=dict)
    point: tuple[float, float] | None = None
    coverage: Coverage | None = None
    index: int = 0


class AnchorLayers:
    """The anchor layers of one viewer, created on first :meth:`show` and updated in place."""

    def __init__(self, viewer, on_click: Callable[[float, float], None] | None = None, cache: int = 4):
        self.viewer = viewer
        self.on_click = on_click
        self.layers: dict[str, object] = {}
        self.centre_layers: list = []
        self._images: OrderedDict = OrderedDict()
        self._cache = cache
        self._keys: dict[str, object] = {}
        self.point: tuple[float, float] | None = None
        self._made_image = False
        self._looked_at = None
        self.edge_width = 1.5

    # --- layers -----------------------------------------------------------------------

    def _layer(self, name: str, make: Callable):
        layer = self.layers.get(name)
        if layer is None or layer not in self.viewer.layers:
            layer = make()
            self.layers[name] = layer
            self._keys.pop(name, None)
        return layer

    def _shapes(self, name: str, role: str, color: str, text=None, width: float = 1.5, features=None):
        def make():
            return self.viewer.add_shapes(name=name, ndim=2, edge_color=color, face_color="transparent",
                                          edge_width=width, text=text, features=features,
                                          metadata={ANCHOR_ROLE: role})

        return self._layer(name, make)

    def transformed(self, config: ModelConfig, key, image: Callable[[], np.ndarray]) -> np.ndarray:
        """The transformed image, kept for the last few (image, resize) pairs."""
        cache_key = (key, config.min_size, config.max_size, config.image_mean)
        if cache_key in self._images:
            self._images.move_to_end(cache_key)
            return self._images[cache_key]
        shown = transform_image(config, image())
        self._images[cache_key] = shown
        while len(self._images) > self._cache:
            self._images.popitem(last=False)
        return shown

    # --- showing ----------------------------------------------------------------------

    def show(self, scene: AnchorScene) -> list[AnchorGrid]:
        """Bring every layer up to ``scene``; returns the grids shown."""
        config = scene.config
        grids = anchor_grids(config, scene.image_size)
        # edges under a screen pixel wide drop out of the software renderer: widths grow with the image
        self.edge_width = max(1.5, max(padded_image_size(config, scene.image_size)) / 400)
        self._show_image(scene)
        self._show_centres(grids)
        height, width = resized_image_size(config, scene.image_size)
        self.point = scene.point if scene.point is not None else (width / 2, height / 2)
        self._show_truth(scene)
        self._show_at_point(grids)
        self._show_unreached(scene)  # on top: what needs looking at
        if self._made_image:  # clicks reach the active layer: make it the model input
            self.viewer.layers.selection.active = self.layers[IMAGE]
            self._made_image = False
        shape = self.layers[IMAGE].data.shape[:2]
        if shape != self._looked_at:  # a new size: the old view shows the wrong place
            self._look_at(shape)
        return grids

    def look_again(self) -> None:
        """Fit the model input to the canvas again (after the canvas changed size)."""
        if IMAGE in self.layers and self.layers[IMAGE] in self.viewer.layers:
            self._look_at(self.layers[IMAGE].data.shape[:2])

    def _look_at(self, shape: tuple[int, int], margin: float = 0.95) -> None:
        """Centre the camera on the model input and fit it to the canvas. (``viewer.fit_to_view`` with
        a 2-D layer among a stack's 3-D ones fails in napari 0.9.)"""
        self._looked_at = shape
        height, width = shape
        camera(self.viewer).center = (height / 2 - PIXEL_OFFSET, width / 2 - PIXEL_OFFSET)
        canvas = getattr(self.viewer, "canvas", None)
        size = canvas.viewbox_size(self.viewer.layers) if hasattr(canvas, "viewbox_size") else None
        if size is not None and min(size) > 0:
            camera(self.viewer).zoom = margin * min(size[0] / height, size[1] / width)

    def _show_image(self, scene: AnchorScene) -> None:
        shown = self.transformed(scene.config, scene.image_key, scene.image)

        def make():
            limits = [0, 255] if shown.dtype == np.uint8 else None
            layer = self.viewer.add_image(shown, name=IMAGE, rgb=True, contrast_limits=limits,
                                          metadata={ANCHOR_ROLE: "image"})
            layer.mouse_drag_callbacks.append(self._clicked)
            self._made_image = True
            return layer

        layer = self._layer(IMAGE, make)
        if layer.data is not shown:
            layer.data = shown

    def _show_centres(self, grids: list[AnchorGrid]) -> None:
        key = [(grid.name, grid.stride, grid.rows, grid.columns, grid.step) for grid in grids]
        alive = [layer for layer in self.centre_layers if layer in self.viewer.layers]
        if key == self._keys.get("centres") and len(alive) == len(grids):
            return
        for layer in alive[len(grids):]:
            self.viewer.layers.remove(layer)
        self.centre_layers = alive[:len(grids)]
        for position, grid in enumerate(grids):
            points = grid.centres()[:, ::-1] - PIXEL_OFFSET  # (x, y) to napari's (row, col)
            size = float(np.clip(grid.step[1] / 4, 2, 6))
            dense = len(points) > VISIBLE_CENTRES
            if position < len(self.centre_layers):
                layer = self.centre_layers[position]
                layer.data = points
                layer.size = size
                layer.face_color = map_color(position)
                layer.name = centres_name(grid)
                if layer.metadata.get("dense") != dense:  # else the user's choice stays
                    layer.visible = not dense
            else:
                layer = self.viewer.add_points(points, name=centres_name(grid), size=size, border_width=0,
                                               face_color=map_color(position), opacity=0.85, visible=not dense,
                                               metadata={ANCHOR_ROLE: "centres"})
                self.centre_layers.append(layer)
            layer.metadata.update(feature_map=grid.name, dense=dense)
        self._keys["centres"] = key
        # keep the shapes above the points, in the order the names above give
        for name in (TRUTH, AT_POINT, UNREACHED):
            layer = self.layers.get(name)
            if layer is not None and layer in self.viewer.layers:
                self.viewer.layers.move(self.viewer.layers.index(layer), len(self.viewer.layers))

    def _show_truth(self, scene: AnchorScene) -> None:
        annotation = scene.annotation if scene.annotation is not None else Annotation()
        key = (scene.image_key, scene.image_size, scene.config.min_size, scene.config.max_size,
               annotation.boxes.tobytes(), tuple(annotation.labels), scene.coverage)
        classes = list(dict.fromkeys([*scene.colors, *annotation.labels]))
        colors = box_colors.class_colors(classes, scene.colors)
        layer = self.layers.get(TRUTH)
        if layer is not None and layer in self.viewer.layers and set(colors) - set(layer.metadata[conventions.CLASS_COLORS]):
            self.viewer.layers.remove(layer)  # new classes: the text takes its colours when the layer is made
        text = {**box_colors.text_properties(colors, predictions=False, size=8), "string": "{best_iou:.2f}"}
        layer = self._shapes(TRUTH, "ground truth", box_colors.class_color(0), text=text, width=2,
                             features=pd.DataFrame({"label": pd.Series([], dtype=object), "best_iou": []}))
        layer.metadata[conventions.CLASS_COLORS] = colors
        if self._keys.get(TRUTH) == key:
            return
        boxes = transform_boxes(scene.config, scene.image_size, annotation.boxes)
        best = np.full(len(boxes), np.nan)
        if scene.coverage is not None:
            positions = scene.coverage.in_image(scene.index)
            best[scene.coverage.box[positions]] = scene.coverage.best_iou[positions]
        edges = box_colors.edge_colors(annotation.labels, colors)
        features = pd.DataFrame({"label": pd.Series(list(annotation.labels), dtype=object), "best_iou": best})
        replace_rectangles(layer, boxes, edges, features, self.edge_width * 1.3)
        self._keys[TRUTH] = key

    def _show_unreached(self, scene: AnchorScene) -> None:
        layer = self._shapes(UNREACHED, "unreached", UNREACHED_COLOR, width=3,
                             text={"string": "IoU {best_iou:.2f}", "size": 9, "color": UNREACHED_COLOR,
                                   "anchor": "lower_left"},
                             features=pd.DataFrame({"image": [], "box": [], "best_iou": []}))
        key = (scene.coverage, scene.index)
        if self._keys.get(UNREACHED) == key:
            return
        boxes, features = np.zeros((0, 4)), pd.DataFrame({"image": [], "box": [], "best_iou": []})
        if scene.coverage is not None:
            coverage = scene.coverage
            positions = coverage.in_image(scene.index)
            positions = positions[coverage.best_iou[positions] < REACHED_IOU]
            boxes = coverage.boxes[positions]
            features = pd.DataFrame({"image": coverage.image[positions], "box": coverage.box[positions],
                                     "best_iou": coverage.best_iou[positions]})
        replace_rectangles(layer, boxes, np.tile(box_colors.hex_to_rgba(UNREACHED_COLOR), (len(boxes), 1)), features,
                           self.edge_width * 2)
        self._keys[UNREACHED] = key

    def _show_at_point(self, grids: list[AnchorGrid]) -> None:
        layer = self._shapes(AT_POINT, "at point", map_color(0), width=1.5)
        x, y = self.point
        boxes = [grid.at(x, y) for grid in grids]
        counts = [len(anchors) for anchors in boxes]
        colors = np.concatenate([np.tile(box_colors.hex_to_rgba(map_color(k)), (count, 1)) for k, count in enumerate(counts)])
        features = pd.DataFrame({
            "feature_map": np.repeat([grid.name for grid in grids], counts),
            "size": np.concatenate([grid.sizes for grid in grids]),
            "ratio": np.concatenate([grid.ratios for grid in grids]),
        })
        replace_rectangles(layer, np.concatenate(boxes), colors, features, self.edge_width)

    def move_point(self, scene: AnchorScene, point: tuple[float, float]) -> None:
        """Show the anchors at ``point`` (``(x, y)`` on the transformed image), nothing else."""
        self.point = point
        self._show_at_point(anchor_grids(scene.config, scene.image_size))

    def _clicked(self, layer, event) -> None:
        row, column = event.position[-2:]
        if self.on_click is not None:
            self.on_click(float(column) + PIXEL_OFFSET, float(row) + PIXEL_OFFSET)

    def remove(self) -> None:
        """Take every anchor layer out of the viewer."""
        for layer in [*self.layers.values(), *self.centre_layers]:
            if layer in self.viewer.layers:
                self.viewer.layers.remove(layer)
        self.layers, self.centre_layers, self._keys = {}, [], {}


def replace_rectangles(layer, boxes: np.ndarray, colors: np.ndarray, features: pd.DataFrame,
                       edge_width: float = 1.5) -> None:
    """Replace every shape in a 2-D Shapes layer with xyxy ``boxes``, their edge colours and features,
    with events held back until the layer refreshes once."""
    with layer.events.blocker_all():
        layer.selected_data = set()
        layer.data = []
        layer.features = features.iloc[:0]
        if len(boxes):
            # new shapes take the defaults first, and a label-coloured text fails on None
            layer.feature_defaults = {column: features[column].iloc[0] for column in features}
            layer.current_edge_width = edge_width
            layer.add(list(boxes_to_rectangles(boxes)), shape_type="rectangle", edge_color=colors,
                      edge_width=edge_width)
        layer.features = features.reset_index(drop=True)
    layer.refresh()
