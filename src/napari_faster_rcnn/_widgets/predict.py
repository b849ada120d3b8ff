"""The "Predict" dock widget: a trained checkpoint over the current image, the whole stack or a folder.

The checkpoint is read weights-only in a worker (a file that would run code is
refused, and the refusal shown); prediction runs
:func:`~napari_faster_rcnn.core.prediction.run.iter_predictions` in a napari ``thread_worker`` with
a progress bar. The result is a predictions layer beside the image
(:func:`~napari_faster_rcnn.layers.prediction_targets.add_predictions`) holding the raw detections, so
that "Tune predictions" moves its score and NMS thresholds without running the
model again. Cancel stops after the batch in progress and keeps the images
predicted so far (the first ones of the stack, in order): a layer of those.

An image larger than the tile size is predicted in overlapping tiles, merged
(:mod:`~napari_faster_rcnn.core.prediction.tiles`); the tile size and overlap
start from the checkpoint's training images, and 0 predicts each image whole.
The progress bar then counts tiles.

On a stack read as data (a time-lapse or z stack) "current image" predicts the plane shown,
"whole stack" every plane and "range of planes" the planes the text chooses (``3:7``: planes 3
to 6, the end excluded; ``5``; ``3:``; several joined by commas; counted from 0 along the first
leading dimension). The result is a predictions layer whose boxes carry their planes.

"folder" predicts a dataset folder's 2-D images (the folder's predictions layer) and every plane
of each stack in it (each stack opens as its own layers, as the reader opens it; a stack's
predictions layer each), in one run.
"""

from __future__ import annotations

from pathlib import Path

from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_warning
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
)

from napari_faster_rcnn._widgets._common import DockedWidget, LayerCombo, row, set_progress, start_worker
from napari_faster_rcnn.core.prediction.run import TileProgress, iter_predictions
from napari_faster_rcnn.core.prediction.settings import resolve_device, starting_thresholds
from napari_faster_rcnn.core.prediction.thresholds import Thresholds
from napari_faster_rcnn.core.prediction.tiles import DEFAULT_OVERLAP, Tiling, default_tiling
from napari_faster_rcnn.layers import prediction_targets
from napari_faster_rcnn.layers.predictions import prediction_pages

CURRENT, STACK, PLANES, FOLDER = "current image", "whole stack", "range of planes", "folder"
DEVICES = ("auto", "cpu", "cuda", "mps")


def _threshold_box(tooltip: str) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(0.0, 1.0)
    box.setSingleStep(0.05)
    box.setDecimals(2)
    box.setValue(0.5)
    box.setToolTip(tooltip)
    return box


class PredictionFailed(Exception):
    """A RuntimeError of the model (out of memory, say), passed on as another type: superqt's
    generator worker takes a RuntimeError for its own deletion and ends without a signal."""


def _drain(generator):
    """The worker's generator: the records of ``generator``, then its summary."""
    try:
        return (yield from generator)
    except RuntimeError as error:
        raise PredictionFailed(str(error)) from error


class PredictWidget(DockedWidget):
    """Load a checkpoint and predict images into a predictions layer."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.checkpoint = None  # the LoadedCheckpoint
        self.loader = None
        self.worker = None
        self.records: list = []
        self._generator = None
        self._target = None
        self._thresholds = None
        self.layer = None  # the predictions layer of the last run
        self._total_passes = self._done_passes = 0  # the progress bar counts forward passes: tiles, or images
        self._passes: dict[int, int] = {}  # per image, its passes done
        self._unit = "image"  # what the run counts: images, or planes of a stack

        self.path = QLineEdit()
        self.path.setPlaceholderText("best.ckpt of a training run")
        self.path.setToolTip("a checkpoint written by training; read weights-only, nothing in it runs")
        self.browse = QPushButton("…")
        self.browse.setFixedWidth(30)
        self.load_button = QPushButton("Load")
        self.info = QLabel("no checkpoint loaded")
        self.info.setWordWrap(True)

        self.target = QComboBox()
        self.target.addItems([CURRENT, STACK, PLANES, FOLDER])
        self.target.setToolTip("the image (or plane) on screen, every image of the layer's stack (every plane of a "
                               "time-lapse or z stack), a range of a stack's planes, or a folder's images")
        self.planes = QLineEdit()
        self.planes.setPlaceholderText("3:7")
        self.planes.setToolTip("planes along the stack's first dimension (time or z), counted from 0: 5, 3:7 "
                               "(3 to 6, the end excluded), 3:, :4, or several joined by commas")
        self.image_layer = LayerCombo(napari_viewer, prediction_targets.is_image_layer)
        self.image_layer.setToolTip("the image layer to predict")
        self.folder = QLineEdit()
        self.folder.setPlaceholderText("a folder of images (any dataset layout)")
        self.folder_browse = QPushButton("…")
        self.folder_browse.setFixedWidth(30)
        self.folder_row = row(self.folder, self.folder_browse)
        self.batch_size = QSpinBox()
        self.batch_size.setRange(1, 64)
        self.batch_size.setValue(4)
        self.batch_size.setToolTip("images per forward pass")
        self.tile = QSpinBox()
        self.tile.setRange(0, 1_000_000)
        self.tile.setSingleStep(64)
        self.tile.setSuffix(" px")
        self.tile.setSpecialValueText("whole")  # (0) short enough for the box: "whole image" was cut
        self.tile.setToolTip("predict images larger than this in overlapping tiles of this size, merged; 0: each "
                             "image whole (default: the checkpoint's training images at the model's scale)")
        self.overlap = QDoubleSpinBox()
        self.overlap.setRange(0.0, 0.9)
        self.overlap.setSingleStep(0.05)
        self.overlap.setDecimals(2)
        self.overlap.setValue(DEFAULT_OVERLAP)
        self.overlap.setToolTip("how much neighbouring tiles overlap, a fraction of the tile")
        self.device = QComboBox()
        self.device.addItems(DEVICES)
        self.device.setToolTip("auto: a CUDA GPU, else Apple's MPS, else the CPU")
        self.score = _threshold_box("show boxes scoring at least this (Tune predictions moves it later)")
        self.nms = _threshold_box("per-class NMS IoU: drop a box overlapping a better one of its class by more "
                                  "(1 keeps all)")
        self.predict_button = QPushButton("Predict")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("stop after the batch in progress; the images done so far are kept")
        self.status = QLabel("")
        self.status.setWordWrap(True)

        form = QFormLayout()
        form.addRow("checkpoint", row(self.path, self.browse, self.load_button))
        form.addRow(self.info)
        form.addRow("predict", self.target)
        form.addRow("image layer", self.image_layer)
        form.addRow("planes", self.planes)
        form.addRow("folder", self.folder_row)
        form.addRow("batch size", row(self.batch_size, QLabel("device"), self.device))
        form.addRow("tiles", row(self.tile, QLabel("overlap"), self.overlap))
        form.addRow("score ≥", row(self.score, QLabel("NMS IoU"), self.nms))
        form.addRow(row(self.predict_button, self.cancel_button))
        form.addRow(self.status)
        self.form = form
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addStretch(1)

        self.browse.clicked.connect(self._browse_checkpoint)
        self.load_button.clicked.connect(self.load)
        self.path.returnPressed.connect(self.load)
        self.path.textEdited.connect(self._path_edited)
        self.folder_browse.clicked.connect(self._browse_folder)
        self.target.currentTextChanged.connect(self._show_target)
        self.predict_button.clicked.connect(self.predict)
        self.cancel_button.clicked.connect(self.cancel)
        self._show_target()
        self._set_running(False)

    # --- checkpoint --------------------------------------------------------------

    def _browse_checkpoint(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Checkpoint", self.path.text(), "Checkpoints (*.ckpt *.pt *.pth)")
        if path:
            self.path.setText(path)
            self.load()

    def _path_edited(self, *_) -> None:
        if self.checkpoint is not None and Path(self.path.text().strip()) != self.checkpoint.path:
            self.info.setText("press Load to read this checkpoint")

    def load(self):
        """Read the checkpoint in the path field, in a worker; returns the worker (None without a path)."""
        path = self.path.text().strip()
        if not path:
            self.info.setText("choose a checkpoint file first")
            return None
        self.load_button.setEnabled(False)
        self.predict_button.setEnabled(False)
        self.info.setText(f"reading {Path(path).name} ...")
        from napari_faster_rcnn.core.model.checkpoints import load_checkpoint  # Lightning: imported when first needed

        self.loader = start_worker(load_checkpoint, path, errored=self._load_failed, returned=self._loaded,
                                   finished=lambda: self._set_running(False))
        return self.loader

    def _load_failed(self, error) -> None:
        self.checkpoint = None
        self.info.setText(f"not loaded: {error}")
        show_error(f"Predict: {error}")

    def _loaded(self, checkpoint) -> None:
        self.checkpoint = checkpoint
        self.info.setText(checkpoint.description())
        self.info.setToolTip(str(checkpoint.path))
        start = starting_thresholds(checkpoint.config)
        self.score.setValue(start.score_threshold)
        self.nms.setValue(start.nms_threshold)
        tiling = default_tiling(checkpoint.config, checkpoint.training_images)
        self.tile.setValue(tiling.tile)
        self.overlap.setValue(tiling.overlap)

    # --- target --------------------------------------------------------------------

    def _show_target(self, *_) -> None:
        from_folder = self.target.currentText() == FOLDER
        ranged = self.target.currentText() == PLANES
        for field, visible in ((self.image_layer, not from_folder), (self.folder_row, from_folder),
                               (self.planes, ranged)):
            field.setVisible(visible)
            self.form.labelForField(field).setVisible(visible)

    def _browse_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Images", self.folder.text())
        if folder:
            self.folder.setText(folder)

    def _prediction_target(self):
        kind = self.target.currentText()
        if kind == FOLDER:
            folder = self.folder.text().strip()
            if not folder:
                raise ValueError("choose a folder of images first")
            # the folder's 2-D images and every plane of each of its stacks (as the command line predicts them)
            target = prediction_targets.folder_target(self.viewer, folder)
            self.image_layer.set_layer(target.image_layer)
            return target
        layer = self.image_layer.layer()
        if layer is None:
            raise ValueError("open an image (or a dataset folder) first")
        planes = None
        if kind == PLANES:
            planes = self.planes.text().strip()
            if not planes:
                raise ValueError("type the planes to predict, e.g. 3:7 (planes 3 to 6)")
        return prediction_targets.layer_target(self.viewer, layer, whole_stack=kind == STACK, planes=planes)

    # --- predicting ---------------------------------------------------------------

    def thresholds(self) -> Thresholds:
        """The starting thresholds the controls show."""
        return Thresholds(float(self.score.value()), float(self.nms.value()))

    def predict(self):
        """Start predicting the chosen images; returns the worker (None when nothing can start)."""
        if self.checkpoint is None:
            self.status.setText("load a checkpoint first")
            return None
        try:
            device = resolve_device(self.device.currentText())
            tiling = Tiling(self.tile.value(), round(self.overlap.value(), 2))
            target = self._prediction_target()
        except (ValueError, OSError) as error:
            self.status.setText(str(error))
            return None
        self._target, self._thresholds, self.records = target, self.thresholds(), []
        self._generator = iter_predictions(self.checkpoint.model, target.images, self.checkpoint.classes,
                                           batch_size=self.batch_size.value(), device=device, tiling=tiling,
                                           tile_progress=True)
        self._expected_passes = [tiling.passes(size) for size in target.sizes]
        passes = sum(self._expected_passes)
        tiled = f" in {passes} tiles" if passes > len(target) else ""
        self._unit = "plane" if target.planes is not None else "image"
        self.status.setText(f"predicting {len(target)} {self._unit}{'s' if len(target) != 1 else ''}{tiled} on "
                            f"{device} ...")
        self._total_passes, self._done_passes, self._passes = passes, 0, {}
        self.worker = create_worker(
            _drain, self._generator,
            _progress={"total": passes, "desc": "Predicting"},
            # errored given here, so the worker does not also re-raise the error in the main thread
            _connect={"errored": self._failed},
            _start_thread=False,  # started below, once every signal is connected
        )
        self.worker.yielded.connect(self._on_record)
        self.worker.returned.connect(self._finished)
        self.worker.aborted.connect(self._cancelled)
        self.worker.finished.connect(self._cleanup)
        self._set_running(True)
        self.worker.start()
        return self.worker

    def cancel(self) -> None:
        """Stop after the batch in progress (the images predicted so far are kept)."""
        if self.worker is not None:
            self.status.setText("cancelling after this batch ...")
            self.worker.quit()

    def _on_record(self, record) -> None:
        if isinstance(record, TileProgress):
            self._advance(record.index, record.done)
            self.status.setText(f"{self._unit} {record.images_done + 1} / {record.total}: "
                                f"tile {record.done} / {record.tiles} ...")
            return
        self.records.append(record)
        if record.error is not None:  # unreadable: its passes leave the total, as the core leaves it out of its count
            self._total_passes -= self._expected_passes[record.index]
            set_progress(self.worker, self._done_passes, self._total_passes)
        else:
            self._advance(record.index, max(record.tiles, 1))
        if record.done % 4 == 0 or record.done == record.total:
            self.status.setText(f"predicted {record.done} / {record.total} {self._unit}s ...")

    def _advance(self, index: int, done: int) -> None:
        """The progress bar counts forward passes: tiles, or whole images."""
        self._done_passes += done - self._passes.get(index, 0)
        self._passes[index] = done
        set_progress(self.worker, self._done_passes, self._total_passes)

    def _finished(self, summary) -> None:
        self._show_result(len(self._target), cancelled=False)

    def _cancelled(self) -> None:
        self._show_result(len(self.records), cancelled=True)

    def _show_result(self, count: int, cancelled: bool) -> None:
        target = self._target
        unreadable = [record.error for record in self.records if record.error and record.index < count]
        if count == 0:
            self.status.setText("cancelled before the first image: no predictions")
            return
        layers = prediction_targets.add_folder_predictions(
            self.viewer, target, self.records, self.checkpoint.classes, self._thresholds, count=count,
            checkpoint=str(self.checkpoint.path))
        self.layer = layers[0]
        raw = sum(len(r.annotation) for r in self.records if r.annotation is not None and r.index < count)
        shown = sum(len(a) for layer in layers for a in prediction_pages(layer).annotations)
        unit = self._unit
        stacks = sum(part.planes is not None for part in target.parts or ())
        parts = f" ({stacks} stack{'s' if stacks != 1 else ''}: a predictions layer each)" if stacks else ""
        text = (f"{count} {unit}{'s' if count != 1 else ''}{parts}: {shown:,} boxes pass score ≥ "
                f"{self._thresholds.score_threshold:g} and NMS {self._thresholds.nms_threshold:g} "
                f"({raw:,} raw detections kept for Tune predictions)")
        if cancelled:
            text = f"cancelled after {count} of {len(target)} {unit}s; " + text
        if unreadable:
            text += f"; {len(unreadable)} unreadable (no boxes)"
            show_warning("Predict: could not read " + "; ".join(unreadable[:5])
                         + (f"; and {len(unreadable) - 5} more" if len(unreadable) > 5 else ""))
        self.status.setText(text)

    def _failed(self, error) -> None:
        self.status.setText(f"prediction failed: {error}")
        show_error(f"Predict: {error}")

    def _cleanup(self) -> None:
        if self._generator is not None:
            self._generator.close()  # stops the reader thread, restores the model's settings
            self._generator = None
        self.worker = None
        self._set_running(False)

    def _set_running(self, running: bool) -> None:
        loading = self.loader is not None and self.loader.is_running
        self.predict_button.setEnabled(not running and not loading and self.checkpoint is not None)
        self.cancel_button.setEnabled(running)
        self.load_button.setEnabled(not running and not loading)

    def teardown(self) -> None:
        if self.worker is not None:
            self.worker.quit()
        self.image_layer.disconnect_viewer()

