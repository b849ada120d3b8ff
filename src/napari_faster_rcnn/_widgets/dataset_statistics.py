"""The "Dataset statistics" dock widget: image and box sizes as histograms, as stored or
after the model's transform, by class, and the boxes of each class in a table.

The source is a box layer open in the viewer (computed at once: the boxes are
in memory) or a dataset folder (read in a ``thread_worker``: headers and
annotation files only, with a progress bar). Changing ``min_size`` or
``max_size`` afterwards only re-derives the transformed values; nothing is read
again.
"""

from __future__ import annotations

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from napari.utils.notifications import show_error
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_faster_rcnn._widgets._common import (
    DockedWidget,
    LayerCombo,
    compact_table,
    fit_table_rows,
    set_progress,
    size_box,
    start_worker,
)
from napari_faster_rcnn.core.statistics.folders import iter_folder_statistics
from napari_faster_rcnn.core.statistics.measures import DEFAULT_MAX_SIZE, DEFAULT_MIN_SIZE
from napari_faster_rcnn.core.statistics.plots import THEMES, plot_statistics
from napari_faster_rcnn.layers import box_colors, conventions
from napari_faster_rcnn.layers.conventions import is_box_layer
from napari_faster_rcnn.layers.statistics import layer_statistics

LAYER, FOLDER = "box layer", "folder"
ALL_BY_CLASS, ALL_TOGETHER = "all classes, by class", "all classes together"
COLUMNS = ("class", "boxes", "images", "median w × h")


class DatasetStatisticsWidget(DockedWidget):
    """Histograms and class counts of a box layer or a dataset folder."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.stats = None
        self.colors: dict[str, str] = {}
        self.worker = None

        self.source = QComboBox()
        self.source.addItems([LAYER, FOLDER])
        self.layer = LayerCombo(napari_viewer, is_box_layer)
        self.layer.setToolTip("a box or predictions layer: every image's boxes and sizes")
        self.folder = QLineEdit()
        self.folder.setPlaceholderText("a dataset folder")
        self.folder.setToolTip("input/ + target/, or images with their annotations beside them; "
                               "image sizes are read from the file headers")
        self.browse = QPushButton("…")
        self.browse.setFixedWidth(30)
        self.folder_row = QWidget()
        folder_layout = QHBoxLayout(self.folder_row)
        folder_layout.setContentsMargins(0, 0, 0, 0)
        folder_layout.addWidget(self.folder)
        folder_layout.addWidget(self.browse)
        self.min_size = size_box(DEFAULT_MIN_SIZE, "the model's min_size: each image's short side after resizing")
        self.max_size = size_box(DEFAULT_MAX_SIZE, "the model's max_size: no long side passes it after resizing")
        self.compute = QPushButton("Compute")
        self.summary = QLabel("choose a box layer or a folder, then Compute")
        self.summary.setWordWrap(True)
        self.transformed = QCheckBox("after transform")
        self.transformed.setToolTip("sizes as the model sees them: resized by min_size / max_size")
        self.classes = QComboBox()
        self.classes.setToolTip("whose boxes the box histograms count")

        self.figure = Figure(figsize=(3.8, 5.4), dpi=90, facecolor=THEMES["dark"]["background"], layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(340)
        self.canvas.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.table = compact_table(COLUMNS)

        sizes = QHBoxLayout()
        sizes.addWidget(self.min_size)
        sizes.addWidget(QLabel("max"))
        sizes.addWidget(self.max_size)
        view = QHBoxLayout()
        view.addWidget(self.classes, 1)
        view.addWidget(self.transformed)
        form = QFormLayout()
        form.addRow("source", self.source)
        form.addRow("layer", self.layer)
        form.addRow("folder", self.folder_row)
        form.addRow("min size", sizes)
        form.addRow(self.compute)
        form.addRow(self.summary)
        form.addRow("show", view)
        self.form = form
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.canvas, 1)
        layout.addWidget(self.table)

        self.source.currentTextChanged.connect(self._show_source)
        self.layer.currentIndexChanged.connect(self._layer_chosen)
        self.browse.clicked.connect(self._browse)
        self.compute.clicked.connect(self.run)
        self.min_size.valueChanged.connect(self._transform_changed)
        self.max_size.valueChanged.connect(self._transform_changed)
        self.transformed.toggled.connect(self.draw)
        self.classes.currentIndexChanged.connect(self.draw)
        self._show_source()
        self._layer_chosen()

    # --- controls -------------------------------------------------------------

    def _show_source(self, *_) -> None:
        from_folder = self.source.currentText() == FOLDER
        for field, visible in ((self.layer, not from_folder), (self.folder_row, from_folder)):
            field.setVisible(visible)
            self.form.labelForField(field).setVisible(visible)

    def _layer_chosen(self, *_) -> None:
        layer = self.layer.layer()
        root = layer.metadata.get(conventions.DATASET_ROOT) if layer is not None else None
        if root and not self.folder.text():
            self.folder.setText(str(root))  # the folder it was opened from, should the user switch

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Dataset folder", self.folder.text())
        if folder:
            self.folder.setText(folder)

    def _transform_changed(self, *_) -> None:
        if self.stats is not None:
            self.stats = self.stats.with_transform(self.min_size.value(), self.max_size.value())
            self._show(self.stats, self.colors)

    # --- computing ------------------------------------------------------------

    def run(self):
        """Compute from the chosen source: at once for a layer (returns None), in a worker for a folder
        (returns the worker)."""
        min_size, max_size = self.min_size.value(), self.max_size.value()
        if self.source.currentText() == LAYER:
            layer = self.layer.layer()
            if layer is None:
                self.summary.setText("open a box layer (a dataset folder or an image with the plugin) first")
                return None
            try:
                stats = layer_statistics(layer, min_size, max_size)
            except ValueError as error:
                self._failed(error)
                return None
            self._show(stats, dict(layer.metadata.get(conventions.CLASS_COLORS) or {}))
            return None
        folder = self.folder.text().strip()
        if not folder:
            self.summary.setText("choose a dataset folder first")
            return None
        self.summary.setText(f"reading {folder} ...")
        self.worker = start_worker(iter_folder_statistics, folder, min_size, max_size, desc="Dataset statistics",
                                   errored=self._failed, button=self.compute, yielded=self._progress,
                                   returned=lambda stats: self._show(stats, box_colors.class_colors(stats.classes)))
        return self.worker

    def _progress(self, step) -> None:
        done, total = step
        set_progress(self.worker, done, total)
        self.summary.setText(f"reading {done} / {total} images ...")

    def _failed(self, error) -> None:
        self.summary.setText(f"no statistics: {error}")
        show_error(f"Dataset statistics: {error}")

    # --- showing --------------------------------------------------------------

    def _show(self, stats, colors: dict) -> None:
        self.stats, self.colors = stats, colors
        text = (f"{stats.images} images · {stats.boxes} boxes · {stats.images_without_boxes} without boxes"
                + (f" · {stats.clipped_boxes} boxes cut at the border" if stats.clipped_boxes else "")
                + (f" · {len(stats.skipped)} files skipped" if stats.skipped else ""))
        self.summary.setText(text)
        self.summary.setToolTip("\n".join(f"{path}: {reason}" for path, reason in stats.skipped[:30]))
        chosen = self.classes.currentText()
        self.classes.blockSignals(True)
        self.classes.clear()
        self.classes.addItems([ALL_BY_CLASS, ALL_TOGETHER, *stats.classes])
        self.classes.setCurrentIndex(max(0, self.classes.findText(chosen)))
        self.classes.blockSignals(False)
        self.draw()

    def shown_classes(self):
        """The classes the box histograms count (None: all)."""
        choice = self.classes.currentText()
        return None if choice in (ALL_BY_CLASS, ALL_TOGETHER, "") else [choice]

    def draw(self, *_) -> None:
        """Draw the histograms and fill the table for the current choices."""
        if self.stats is None:
            return
        transformed = self.transformed.isChecked()
        plot_statistics(self.stats, self.figure, per_class=self.classes.currentText() != ALL_TOGETHER,
                        transformed=transformed, classes=self.shown_classes(), colors=self.colors, theme="dark")
        self.canvas.draw_idle()
        self._fill_table(transformed)

    def _fill_table(self, transformed: bool) -> None:
        stats = self.stats
        counts, images = stats.class_counts, stats.class_image_counts
        rows = [*stats.classes, None]
        fit_table_rows(self.table, len(rows), most=4)
        for row, name in enumerate(rows):
            width, height = (stats.values(q, transformed, name) for q in ("box_width", "box_height"))
            median = f"{_median(width)} × {_median(height)}" if len(width) else "-"
            cells = (name or "all", counts[name] if name else stats.boxes,
                     images[name] if name else stats.images - stats.images_without_boxes, median)
            for column, value in enumerate(cells):
                self.table.setItem(row, column, QTableWidgetItem(str(value)))

    def teardown(self) -> None:
        self.layer.disconnect_viewer()


def _median(values) -> str:
    return f"{float(np.median(values)):.0f}"
