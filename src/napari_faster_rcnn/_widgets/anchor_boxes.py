"""The "Anchor boxes" dock widget: the anchors of a backbone on one image as the model sees it,
and how well they reach every box of the dataset.

The controls make a :class:`~napari_faster_rcnn.core.model.config.ModelConfig` (a preset to start from,
backbone, FPN, anchor sizes and aspect ratios as text, ``min_size`` and
``max_size``); :class:`~napari_faster_rcnn.layers.anchors.AnchorLayers` shows the result and
:func:`~napari_faster_rcnn.core.model.anchors.anchor_coverage` measures it over the whole dataset (a
box layer, at once, or a folder read in a ``thread_worker``). A setting that does
not fit the backbone leaves the layers as they are and says why. "Suggest" runs
the k-means in a ``thread_worker`` and fills the fields; "Apply" uses them.
"""

from __future__ import annotations

import numpy as np
from napari.layers import Image
from napari.utils.notifications import show_error
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
)

from napari_faster_rcnn._widgets._anchor_settings import AnchorSettings
from napari_faster_rcnn._widgets._common import DockedWidget, LayerCombo, row, set_progress, start_worker
from napari_faster_rcnn.core.data.annotations import Annotation
from napari_faster_rcnn.core.data.images import read_image
from napari_faster_rcnn.core.data.stack_files import read_plane
from napari_faster_rcnn.core.model.anchor_inputs import iter_folder_items
from napari_faster_rcnn.core.model.anchor_suggestion import suggest_anchors
from napari_faster_rcnn.core.model.anchors import BACKGROUND_IOU, FOREGROUND_IOU, REACHED_IOU, anchor_coverage
from napari_faster_rcnn.core.model.config_rules import ConfigError
from napari_faster_rcnn.core.model.detector import padded_image_size, resized_image_size
from napari_faster_rcnn.layers import anchor_sources, anchors, box_colors, box_window, conventions
from napari_faster_rcnn.layers.conventions import is_box_layer

LAYERS, FOLDER = "layers", "folder"


def is_source_image(layer) -> bool:
    return isinstance(layer, Image) and not anchors.is_anchor_layer(layer)


def coverage_text(coverage) -> str:
    if coverage is None or len(coverage) == 0:
        return "no boxes to reach"
    unreached = int((coverage.best_iou < REACHED_IOU).sum())
    return (f"{len(coverage)} boxes in {coverage.images} images: {coverage.share(FOREGROUND_IOU):.0%} reach IoU "
            f"≥ {FOREGROUND_IOU} · {coverage.share(REACHED_IOU):.0%} ≥ {REACHED_IOU} · "
            f"{1 - coverage.share(BACKGROUND_IOU):.0%} below {BACKGROUND_IOU} · {unreached} unreached")


def _reach(coverage) -> str:
    return (f"{coverage.share(FOREGROUND_IOU):.0%} of the boxes at IoU ≥ {FOREGROUND_IOU}, "
            f"{coverage.share(REACHED_IOU):.0%} ≥ {REACHED_IOU}")


class AnchorBoxesWidget(DockedWidget):
    """Anchors of a backbone on the model's view of an image, and their coverage of a dataset."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.view = anchors.AnchorLayers(napari_viewer, on_click=self.move_point)
        self.config = None
        self.items, self.names, self.colors, self.paths = [], [], {}, None
        self.planes: list = []  # a folder's: each item's plane of its stack, None for a 2-D image
        self.coverage = self.suggestion = self.worker = None
        self.fraction = None  # the point, as a share of the resized image's width and height
        self.hidden: list = []  # source layers hidden while the anchor layers show
        self.unreached_entries: list = []
        self._stale = True
        self._shown_once = False

        self.source = QComboBox()
        self.source.addItems([LAYERS, FOLDER])
        self.image_layer = LayerCombo(napari_viewer, is_source_image)
        self.box_layer = LayerCombo(napari_viewer, is_box_layer)
        self.box_layer.setToolTip("the boxes to reach: every image's, for the coverage")
        self.folder = QLineEdit()
        self.folder.setPlaceholderText("a dataset folder")
        browse, self.read = QPushButton("…"), QPushButton("Read")
        browse.setFixedWidth(30)
        self.folder_row = row(self.folder, browse, self.read)
        self.index = QSpinBox()
        self.index.setToolTip("the image shown (follows the dims slider for a stack)")
        self.image_name = QLabel("")
        self.settings = AnchorSettings(self)
        # its controls under their own names here too, for scripts and tests
        for name in ("preset", "backbone", "fpn", "sizes", "ratios", "min_size", "max_size", "apply_button",
                     "error"):
            setattr(self, name, getattr(self.settings, name))
        self.maps = QLabel("")
        self.report = QLabel("")
        self.suggest_button = QPushButton("Suggest anchors")
        self.suggest_button.setToolTip("k-means of the boxes' sizes and shapes as the model sees them")
        self.suggested = QLabel("")
        self.unreached = QListWidget()
        self.unreached.setMaximumHeight(110)
        self.unreached.setVisible(False)
        self.unreached.setToolTip("boxes whose best anchor has IoU below 0.5; choose one to go to it")
        for label in (self.maps, self.report, self.suggested, self.image_name):
            label.setWordWrap(True)

        form = QFormLayout()
        form.addRow("source", self.source)
        form.addRow("image layer", self.image_layer)
        form.addRow("box layer", self.box_layer)
        form.addRow("folder", self.folder_row)
        form.addRow("image", self.index)
        form.addRow(self.image_name)
        self.settings.add_rows(form)
        form.addRow(self.maps)
        self.form = form
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.report)
        layout.addWidget(self.unreached)
        layout.addWidget(self.suggest_button)
        layout.addWidget(self.suggested)
        layout.addStretch(1)

        self.source.currentTextChanged.connect(self._source_changed)
        self.image_layer.currentIndexChanged.connect(self._layers_changed)
        self.box_layer.currentIndexChanged.connect(self._layers_changed)
        browse.clicked.connect(self._browse)
        self.read.clicked.connect(self.read_folder)
        self.index.valueChanged.connect(self._index_chosen)
        self.settings.changed.connect(self.apply)
        self.suggest_button.clicked.connect(self.suggest)
        self.unreached.currentRowChanged.connect(self._go_to_unreached)
        napari_viewer.dims.events.current_step.connect(self._dims_moved)
        self._source_changed()

    # --- the data -------------------------------------------------------------------------

    def _source_changed(self, *_) -> None:
        folder = self.source.currentText() == FOLDER
        for field, visible in ((self.image_layer, not folder), (self.box_layer, not folder),
                               (self.folder_row, folder)):
            field.setVisible(visible)
            self.form.labelForField(field).setVisible(visible)
        if not folder:
            self._layers_changed()

    def _layers_changed(self, *_) -> None:
        if self.source.currentText() != LAYERS:
            return
        layer = self.box_layer.layer()
        if layer is not None:
            layer.events.data.connect(self._boxes_edited)  # napari ignores a second connect
            if not self.folder.text() and layer.metadata.get(conventions.DATASET_ROOT):
                self.folder.setText(str(layer.metadata[conventions.DATASET_ROOT]))
        self._stale = True
        self.apply()

    def _boxes_edited(self, event=None) -> None:
        self._stale = True

    def _read_layers(self) -> bool:
        image_layer, box_layer = self.image_layer.layer(), self.box_layer.layer()
        self.paths = None
        try:
            self.planes = []
            if box_layer is not None:
                self.items, self.names, self.colors = anchor_sources.layer_items(box_layer, image_layer)
                self.planes = anchor_sources.layer_planes(box_layer) or []
            elif image_layer is not None:
                count = anchor_sources.stack_length(image_layer)
                sizes = (image_layer.metadata.get(conventions.IMAGE_SIZES)
                         or [anchor_sources.image_shape(image_layer)] * count)
                self.items = [(tuple(size), Annotation()) for size in sizes]
                self.names, self.colors = [str(k) for k in range(count)], {}
            else:
                self.items = []
        except ValueError as error:
            self._failed(error)
            return False
        self._stale = False
        self.index.blockSignals(True)
        self.index.setRange(0, max(0, len(self.items) - 1))
        shown = anchor_sources.shown_plane(self.viewer, image_layer, self.planes) if self.planes else None
        self.index.setValue(shown if shown is not None else 0 if self.planes else
                            anchor_sources.stack_index(self.viewer, image_layer))
        self.index.blockSignals(False)
        return True

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Dataset folder", self.folder.text())
        if folder:
            self.folder.setText(folder)

    def read_folder(self):
        """Read the folder's sizes and boxes in a worker (returned), then show its first image."""
        folder = self.folder.text().strip()
        if not folder:
            self.report.setText("choose a dataset folder first")
            return None
        self.report.setText(f"reading {folder} ...")
        self.worker = start_worker(iter_folder_items, folder, desc="Anchor boxes", errored=self._failed,
                                   button=self.read, yielded=self._progress, returned=self._folder_read)
        return self.worker

    def _progress(self, step) -> None:
        done, total = step
        set_progress(self.worker, done, total)
        self.report.setText(f"reading {done} / {total} images ...")

    def _folder_read(self, result) -> None:
        self.items, self.names, self.paths = result.items, result.names, result.images
        self.planes = result.planes
        self.colors = box_colors.class_colors(result.classes)
        self._stale = False
        self.index.setRange(0, max(0, len(self.items) - 1))
        self.coverage = None
        self.apply()

    # --- settings -------------------------------------------------------------------------

    def apply(self, *_) -> bool:
        """Take the settings and update the layers and the coverage; False (layers untouched) when
        they do not fit, with the reason shown."""
        try:
            config = self.settings.config()
        except ConfigError:
            return False  # the reason is shown
        if self._stale and self.source.currentText() == LAYERS:
            if not self._read_layers():
                return False
            self.coverage = None
        changed = self.config is None or config != self.config
        self.config = config
        if changed or self.coverage is None:
            self.coverage = anchor_coverage(config, self.items) if self.items else None
            self._fill_report()
        if self.suggestion is not None and config.anchors() == self.suggestion[:2]:
            self.suggested.setText(f"suggested, in use: {_reach(self.suggestion.coverage)}")
        self.show()
        return True

    # --- showing --------------------------------------------------------------------------

    def scene(self) -> anchors.AnchorScene | None:
        if not self.items or self.config is None:
            return None
        index = min(self.index.value(), len(self.items) - 1)
        size, annotation = self.items[index]
        if self.paths is not None:
            plane = self.planes[index] if index < len(self.planes) else None
            key = (str(self.paths[index]), index)
            read = ((lambda path=self.paths[index]: read_image(path)) if plane is None
                    else (lambda path=self.paths[index], plane=plane: read_plane(path, plane)))
        elif (layer := self.image_layer.layer()) is not None:
            where = self.planes[index] if index < len(self.planes) else index  # a labeled plane of a stack
            key, read = (id(layer), where), (lambda: anchor_sources.layer_image(layer, where))
        else:
            key, read = ("blank", size), (lambda: np.zeros((*size, 3), np.uint8))
        point = None
        if self.fraction is not None:
            height, width = resized_image_size(self.config, size)
            point = (self.fraction[0] * width, self.fraction[1] * height)
        return anchors.AnchorScene(self.config, key, read, size, annotation, self.colors, point, self.coverage, index)

    def show(self) -> None:
        """Show the current image's layers (nothing when there is no image)."""
        scene = self.scene()
        if scene is None:
            self.report.setText("open a dataset (an image layer, a box layer) or read a folder")
            return
        self._hide_sources()
        grids = self.view.show(scene)
        size = scene.image_size
        resized, padded = resized_image_size(scene.config, size), padded_image_size(scene.config, size)
        self.image_name.setText(f"{self.names[scene.index]}: {size[1]} × {size[0]} px → {resized[1]} × "
                                f"{resized[0]}, padded to {padded[1]} × {padded[0]} (width × height)")
        self.maps.setText(" · ".join(f"'{g.name}' stride {g.stride}: {g.columns} × {g.rows}" for g in grids))

    def _hide_sources(self) -> None:
        if self.source.currentText() != LAYERS:
            return
        for layer in (self.image_layer.layer(), self.box_layer.layer()):
            if layer is not None and layer.visible and layer not in self.hidden:
                layer.visible = False  # the anchor layers are on the transformed image: they would not line up
                self.hidden.append(layer)

    def _fill_report(self) -> None:
        self.report.setText(coverage_text(self.coverage))
        self.unreached.blockSignals(True)
        self.unreached.clear()
        self.unreached_entries = self.coverage.unreached() if self.coverage is not None else []
        for image, box, iou in self.unreached_entries[:500]:
            name = f"image {image}" + (f" ({self.names[image]})" if self.names[image] != str(image) else "")
            self.unreached.addItem(f"{name}, box {box}: best IoU {iou:.2f}")
        self.unreached.blockSignals(False)
        self.unreached.setVisible(bool(self.unreached_entries))

    def move_point(self, x: float, y: float) -> None:
        """Show the anchors nearest ``(x, y)`` on the transformed image (a click there)."""
        scene = self.scene()
        if scene is None:
            return
        height, width = resized_image_size(scene.config, scene.image_size)
        self.fraction = (x / width, y / height)
        self.view.move_point(scene, (x, y))

    def _index_chosen(self, index: int) -> None:
        image_layer = self.image_layer.layer()
        if self.source.currentText() == LAYERS and image_layer is not None and index < len(self.planes):
            anchor_sources.show_plane(self.viewer, image_layer, self.planes[index])  # a labeled plane of a stack
        elif self.source.currentText() == LAYERS and image_layer is not None and anchor_sources.is_stack(image_layer):
            axis = self.viewer.dims.ndim - image_layer.ndim
            if self.viewer.dims.current_step[axis] != index:
                self.viewer.dims.set_current_step(axis, index)  # the slider follows (_dims_moved: nothing to do)
        self.show()

    def _dims_moved(self, event=None) -> None:
        if self.source.currentText() != LAYERS:
            return
        if self.planes:  # a stack's labeled planes: follow the slider onto one of them
            index = anchor_sources.shown_plane(self.viewer, self.image_layer.layer(), self.planes)
        else:
            index = anchor_sources.stack_index(self.viewer, self.image_layer.layer())
        if index is not None and index != self.index.value():
            self.index.setValue(index)  # _index_chosen shows it

    def _go_to_unreached(self, row: int) -> None:
        if row < 0 or row >= len(self.unreached_entries) or self.coverage is None:
            return
        image, box, _ = self.unreached_entries[row]
        self.fraction = None
        position = int(np.flatnonzero((self.coverage.image == image) & (self.coverage.box == box))[0])
        self.index.setValue(image)
        x1, y1, x2, y2 = self.coverage.boxes[position]
        self.move_point((x1 + x2) / 2, (y1 + y2) / 2)
        box_window.camera(self.viewer).center = ((y1 + y2) / 2 - 0.5, (x1 + x2) / 2 - 0.5)  # napari's (row, col)
        layer = self.view.layers.get(anchors.UNREACHED)
        if layer is not None:
            selected = np.flatnonzero(np.asarray(layer.features["box"]) == box)
            layer.selected_data = set(int(k) for k in selected)

    # --- suggestions ----------------------------------------------------------------------

    def suggest(self):
        """Suggest anchors for the dataset in a worker (returned); they fill the fields when done."""
        if self.config is None or not self.items:
            self.suggested.setText("no dataset to suggest anchors for")
            return None
        self.suggested.setText("suggesting ...")
        self.worker = start_worker(suggest_anchors, self.config, list(self.items), errored=self._failed,
                                   button=self.suggest_button, returned=self._suggested)
        return self.worker

    def _suggested(self, suggestion) -> None:
        self.suggestion = suggestion
        self.settings.fill(suggestion.sizes, suggestion.ratios)
        now = f" (now {_reach(self.coverage)})" if self.coverage is not None and len(self.coverage) else ""
        self.suggested.setText(f"suggested: {_reach(suggestion.coverage)}{now}; Apply to use them")

    def _failed(self, error) -> None:
        self.report.setText(f"Anchor boxes: {error}")
        show_error(f"Anchor boxes: {error}")

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self._shown_once:  # the dock has taken its room from the canvas only now
            self._shown_once = True
            QTimer.singleShot(0, self.view.look_again)

    def teardown(self) -> None:
        self.viewer.dims.events.current_step.disconnect(self._dims_moved)
        for combo in (self.image_layer, self.box_layer):
            combo.disconnect_viewer()
        for layer in self.hidden:
            if layer in self.viewer.layers:
                layer.visible = True

