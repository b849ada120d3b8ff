"""The "Train detector" dock widget: train a Faster R-CNN on a box layer or a dataset folder in
a ``thread_worker``, watch the loss and the validation mAP, stop, continue, preview the
augmentation, and export the run as a ``napari-faster-rcnn fit`` command.

The form (:mod:`._train_form`) becomes a :class:`~napari_faster_rcnn.core.training.run.TrainingSettings`;
the run is :func:`~napari_faster_rcnn.core.training.run.iter_training` in a napari generator worker
(through :class:`~napari_faster_rcnn.layers.training.TrainingJob`). The main thread only takes in events:
each adds to a :class:`~napari_faster_rcnn.layers.training.TrainingProgress`; the bar in napari's
activity panel, the status text and the plot (drawn in a thread of its own)
follow at most every :data:`~._training_plot.REDRAW_INTERVAL_MS`, so a fast GPU's
hundreds of steps a second cost the event loop microseconds each. **Stop** (and closing the viewer or removing the dock) asks the run to end
after the step in progress; it then saves ``last.ckpt``, and the widget says where.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_warning
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import QApplication, QLabel, QLineEdit, QPushButton, QScrollArea, QVBoxLayout

from napari_faster_rcnn._widgets._common import DockedWidget, row
from napari_faster_rcnn._widgets._train_form import TrainingForm
from napari_faster_rcnn._widgets._training_plot import REDRAW_INTERVAL_MS, TrainingPlot
from napari_faster_rcnn._widgets._training_worker import CloseWatcher, QuietFunctionWorker, TrainingWorker
from napari_faster_rcnn.core.data.channels import check_channels
from napari_faster_rcnn.core.data.intensity import normalize_text
from napari_faster_rcnn.layers import conventions
from napari_faster_rcnn.layers.training import (
    TrainingJob,
    TrainingProgress,
    error_message,
    preload_training_modules,
    result_summary,
    suggest_output_folder,
)
from napari_faster_rcnn.layers.training_data import (
    augmentation_preview,
    export_run,
    show_preview,
)

logger = logging.getLogger(__name__)
preload_training_modules()  # now, not in the training thread while napari runs (see its docstring)

PREVIEW_COUNT = 8
#: How long closing the viewer waits for the step in progress and the checkpoint.
SHUTDOWN_SECONDS = 60.0
CONFIG_NAME = "run.yaml"


class TrainDetectorWidget(DockedWidget):
    """Train a detector on a box layer or a folder, in the background."""

    def __init__(self, napari_viewer):
        super().__init__()
        napari_viewer = getattr(napari_viewer, "__wrapped__", napari_viewer)  # napari hands plugins a proxy
        self.viewer = napari_viewer
        self.job: TrainingJob | None = None
        self.worker = None
        self.progress: TrainingProgress | None = None
        self.result = None
        self.last_run: Path | None = None
        self.reporting_seconds = 0.0  # main-thread time spent taking in events (benchmarks report it)
        self._output_chosen = False
        self._previews = 0
        self.last_preview = None

        self.form = TrainingForm(napari_viewer)
        scroll = QScrollArea()
        scroll.setWidget(self.form)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumHeight(260)
        self.scroll = scroll
        self.train_button = QPushButton("Train")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("end after the step in progress, saving a checkpoint")
        self.continue_button = QPushButton("Continue last run")
        self.continue_button.setToolTip("train on from the last run's last.ckpt, in its folder (raise the epochs "
                                        "first if it finished)")
        self.finetune_button = QPushButton("Continue training")
        self.finetune_button.setToolTip(
            "fine-tune the last run's model on the labels as they are now: its checkpoint's weights, model config "
            "and classes, a fresh optimizer, the form's data, epochs and learning rate, into a new run folder "
            "(labels of classes the model does not know are refused)")
        self.preview_button = QPushButton("Preview augmentations")
        self.preview_button.setToolTip(f"{PREVIEW_COUNT} training images as the training sees them, with their "
                                       "boxes, as layers")
        self.export_button = QPushButton("Export as command")
        self.export_button.setToolTip(f"write the settings to {CONFIG_NAME} in the output folder and show the "
                                      "napari-faster-rcnn fit command that repeats the run headless")
        self.status = QLabel("choose the data, then Train")
        self.status.setWordWrap(True)
        # two lines always: a text that wraps otherwise would resize the plot, which then redraws its axes
        self.status.setMinimumHeight(2 * self.status.fontMetrics().lineSpacing() + 4)
        self.checkpoint = _read_only("the best checkpoint of the last run")
        self.command = _read_only("napari-faster-rcnn fit --config …")
        self.copy_button = QPushButton("Copy")
        self.plot = TrainingPlot()
        self._view_timer = QTimer(self)
        self._view_timer.setSingleShot(True)
        self._view_timer.setInterval(REDRAW_INTERVAL_MS)
        self._view_timer.timeout.connect(self.refresh_view)

        layout = QVBoxLayout(self)
        layout.addWidget(scroll, 3)
        layout.addWidget(row(self.train_button, self.stop_button, self.continue_button, self.finetune_button))
        layout.addWidget(row(self.preview_button, self.export_button))
        layout.addWidget(self.status)
        layout.addWidget(row(QLabel("checkpoint"), self.checkpoint))
        layout.addWidget(row(self.command, self.copy_button))
        layout.addWidget(self.plot, 2)

        self.train_button.clicked.connect(self.train)
        self.stop_button.clicked.connect(self.stop)
        self.continue_button.clicked.connect(self.continue_last_run)
        self.finetune_button.clicked.connect(self.continue_training)
        self.preview_button.clicked.connect(self.preview)
        self.export_button.clicked.connect(self.export)
        self.copy_button.clicked.connect(lambda: QApplication.clipboard().setText(self.command.text()))
        self.form.output.textEdited.connect(self._output_edited)
        for signal in (self.form.layer.currentIndexChanged, self.form.folder.textChanged,
                       self.form.source.currentTextChanged):
            signal.connect(self._suggest_output)
        self._watcher = CloseWatcher(napari_viewer, self)
        self._suggest_output()
        self._set_running(False)

    # --- the data ---------------------------------------------------------------------------

    def _suggest_output(self, *_) -> None:
        if not self._output_chosen:
            self.form.output.setText(str(suggest_output_folder(self.form.dataset_root())))

    def _output_edited(self, text: str) -> None:
        self._output_chosen = bool(text.strip())

    # --- training ---------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.job is not None and not self.job.done

    def train(self):
        """Start a run with the form's settings; returns its worker (None when the settings are wrong)."""
        if self.running:
            return self.worker
        try:
            data, validation, classes, layer_data = self.form.data()
            settings = self.form.settings(data, validation, classes)
        except (ValueError, OSError) as error:
            self._failed(error)
            return None
        return self._start(settings, layer_data.describe() if layer_data is not None else str(data))

    def continue_training(self):
        """Fine-tune the last run's model (the checkpoint shown) on the current labels, as a new run:
        see :func:`~napari_faster_rcnn.core.training.finetune.finetune_settings`. Returns its worker, or None."""
        from napari_faster_rcnn.core.training.finetune import finetune_settings

        if self.running:
            return self.worker
        checkpoint = self.checkpoint.text().strip()
        if not checkpoint:
            self.status.setText("not continued: no model yet; train one first")
            return None
        try:
            data, validation, classes, layer_data = self.form.data()
            settings = finetune_settings(checkpoint, self.form.settings(data, validation, classes))
        except (ValueError, OSError) as error:
            self._failed(error, "not continued")
            return None
        source = layer_data.describe() if layer_data is not None else str(data)
        return self._start(settings, f"fine-tuning {Path(checkpoint).name} of {Path(checkpoint).parent.parent.name} "
                                     f"on {source}")

    def _start(self, settings, source: str):
        self.job = TrainingJob(settings)
        self.progress = TrainingProgress(settings.epochs)
        self.result = None
        self.reporting_seconds = 0.0
        self.plot.show_progress(self.progress, settings.iou_threshold)
        self.worker = create_worker(self.job.events, _worker_class=TrainingWorker,
                                    _progress={"desc": "Train detector"}, _connect={"errored": self._failed},
                                    _start_thread=False)
        self.worker.job = self.job
        self.worker.yielded.connect(self._on_event)
        self.worker.returned.connect(self._on_result)
        self.worker.finished.connect(self._on_finished)
        self._set_running(True)
        self.status.setText(f"starting: {source}")
        self.worker.start()
        return self.worker

    def stop(self) -> None:
        """End the run after the step in progress (a checkpoint is saved)."""
        if self.running:
            self.job.stop()
            self.stop_button.setEnabled(False)
            self.status.setText(f"stopping after step {self.progress.step + 1}, then saving a checkpoint …")

    def continue_last_run(self):
        """Train on from the last run's ``last.ckpt``, into its folder."""
        if self.last_run is None or self.running:
            return None
        self.form.resume.setText(str(self.last_run / "checkpoints" / "last.ckpt"))
        self.form.output.setText(str(self.last_run))
        self._output_chosen = True
        return self.train()

    def _on_event(self, event) -> None:
        """Take in one event of the run (main thread). Steps only add to the progress; the bar, the
        texts and the plot follow at most every REDRAW_INTERVAL_MS (refresh_view): each update of
        napari's bar or a label costs milliseconds of the event loop, a step on a GPU less."""
        start = time.perf_counter()
        progress = self.progress
        progress.update(event)
        if event.kind == "start":
            bar = getattr(self.worker, "pbar", None)
            if bar is not None:
                bar.total = progress.total_steps or 0
            self._schedule_view()
        elif event.kind in ("step", "epoch"):
            self._schedule_view()
        elif event.kind == "log":
            self.status.setText(progress.status())
        elif event.kind == "warning":  # shown below the progress until the end, and as a notification
            logger.warning("Train detector: %s", event.message)
            self.status.setText(progress.status())
            show_warning(f"Train detector: {event.message}")
        self.reporting_seconds += time.perf_counter() - start

    def _schedule_view(self) -> None:
        """Refresh the texts and the plot within REDRAW_INTERVAL_MS, once for all events meanwhile."""
        if not self._view_timer.isActive():
            self._view_timer.start()

    def refresh_view(self) -> None:
        """Show the progress: the bar's and the status's text, and the plot."""
        start = time.perf_counter()
        self._view_timer.stop()
        progress = self.progress
        if progress is None:
            return
        bar = getattr(self.worker, "pbar", None)
        if bar is not None:
            if progress.step != bar.n:
                bar.update(progress.step - bar.n)
            bar.set_description(f"Train detector: {progress.description()}")
        if self.running and not self.job.stopping and progress.total_steps is not None:
            self.status.setText(progress.status())
        self.plot.refresh()
        self.reporting_seconds += time.perf_counter() - start

    def _on_result(self, result) -> None:
        self.result = result
        self.last_run = Path(result.output)
        # the last step's text on the bar (which closes when the worker finishes); napari may process
        # events in there, the worker's "finished" among them
        self.refresh_view()
        checkpoint = result.best_checkpoint or result.last_checkpoint
        if checkpoint is not None:
            self.checkpoint.setText(str(checkpoint))
        self.status.setText(result_summary(result))  # the summary the fit command ends on
        self.form.resume.clear()
        self._output_chosen = False
        self._suggest_output()  # a new folder, so that Train again does not meet this run's checkpoints
        self._set_running(self.running)

    def _failed(self, error, what: str = "not trained") -> None:
        message = error_message(error)
        logger.error("Train detector: %s", message, exc_info=error if isinstance(error, BaseException) else None)
        self.status.setText(f"{what}: {message}")
        show_error(f"Train detector: {message}")

    def _on_finished(self) -> None:
        self._set_running(False)
        self._view_timer.stop()
        self.plot.refresh()

    def _set_running(self, running: bool) -> None:
        self.train_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        self.continue_button.setEnabled(not running and self.last_run is not None)
        self.finetune_button.setEnabled(not running and bool(self.checkpoint.text().strip()))
        self.form.setEnabled(not running)

    # --- preview and export -----------------------------------------------------------------

    def preview(self):
        """Show augmented training images with their boxes as layers (read in a worker); returns it."""
        try:
            data, validation, classes, layer_data = self.form.data()
            augmentation = self.form.augmentation()
            normalization = normalize_text(self.form.model_fields.values().get("normalization", "auto"))
            channels = check_channels(self.form.model_fields.values().get("channels"))
        except (ValueError, OSError) as error:
            self._failed(error, "no preview")
            return None
        ratios = None if validation is not None else self.form.split_ratios()
        self._previews += 1
        colors = None
        if layer_data is not None:
            colors = self.form.layer.layer().metadata.get(conventions.CLASS_COLORS)
        worker = create_worker(augmentation_preview, data, augmentation, ratios, self.form.split_seed.value(),
                               PREVIEW_COUNT, self._previews, classes, normalization=normalization,
                               channels=channels,
                               _worker_class=QuietFunctionWorker,
                               _connect={"errored": lambda error: self._failed(error, "no preview")},
                               _start_thread=False)
        worker.returned.connect(lambda preview: self._show_preview(preview, colors))
        self.preview_button.setEnabled(False)
        worker.finished.connect(lambda: self.preview_button.setEnabled(True))
        worker.start()
        return worker

    def _show_preview(self, preview, colors) -> None:
        self.last_preview = preview
        show_preview(self.viewer, preview, colors)
        count = len(preview.names)
        self.status.setText(f"preview: {count} training image{'' if count == 1 else 's'} augmented as in training "
                            f"({', '.join(preview.names[:4])}{' …' if len(preview.names) > 4 else ''})")

    def export(self):
        """Write the run's config file and show the command that repeats it; returns the file (None on error)."""
        try:
            data, validation, classes, layer_data = self.form.data(export=True)
            settings = self.form.settings(data, validation, classes)
            path, command = export_run(settings, Path(settings.output) / CONFIG_NAME, layer_data)
        except (ValueError, OSError) as error:
            self._failed(error, "not exported")
            return None
        self.command.setText(command)
        self.command.setCursorPosition(0)
        self.status.setText(f"wrote {path}; the command repeats this run headless (add --trainer.devices N "
                            "--trainer.strategy ddp for several GPUs)")
        return path

    # --- closing ----------------------------------------------------------------------------

    def shutdown(self, timeout: float = SHUTDOWN_SECONDS) -> None:
        """On closing: stop a run in progress and wait (at most ``timeout`` s) for its step and
        checkpoint; end the plot's thread."""
        self.plot.stop()
        if not self.running:
            return
        job, worker = self.job, self.worker
        job.stop()
        for signal, slot in ((worker.yielded, self._on_event), (worker.returned, self._on_result),
                             (worker.finished, self._on_finished)):
            try:
                signal.disconnect(slot)
            except (TypeError, RuntimeError):
                pass
        if not job.wait(timeout):
            logger.warning("Train detector: the run did not end within %.0f s of closing; it stops after its step",
                           timeout)

    def showEvent(self, event) -> None:
        # as wide as the form once napari's style sized its fonts, so that only its height scrolls
        self.scroll.setMinimumWidth(self.form.minimumSizeHint().width()
                                    + self.scroll.verticalScrollBar().sizeHint().width() + 4)
        super().showEvent(event)

    def teardown(self) -> None:
        self.shutdown()
        self.form.layer.disconnect_viewer()


def _read_only(placeholder: str) -> QLineEdit:
    edit = QLineEdit()
    edit.setReadOnly(True)
    edit.setPlaceholderText(placeholder)
    return edit
