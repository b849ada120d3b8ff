"""The "Suggestions" box of Label boxes: a checkpoint's boxes as suggestions on the images being labeled.

Choose a checkpoint (a file, or "Last training run": the best checkpoint of the last run of
Train detector in this viewer), press Load; the model is read weights-only in a worker, then its
boxes above the score threshold appear in a "suggestions" layer over the box layer
(:mod:`napari_faster_rcnn.layers.suggestions`), predicted in a worker ahead of the person. The keys
are listed in the box. Thin: the napari tier does the work.
"""

from __future__ import annotations

from pathlib import Path

from qtpy.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
)

from napari_faster_rcnn._widgets._common import start_worker
from napari_faster_rcnn.layers import suggestions as suggestion_layers

KEYS_NOTE = (f"{suggestion_layers.ACCEPT_ALL_KEY}: accept all · {suggestion_layers.ACCEPT_KEY}: accept the "
             f"selected · {suggestion_layers.REJECT_KEY}: reject the selected (or all); select suggestions "
             "in their layer (S)")


class SuggestionsBox(QGroupBox):
    """Checkpoint, score threshold and on/off of the suggestions on the labeling session's images."""

    def __init__(self, viewer, parent=None):
        super().__init__("Suggestions (a model's boxes)", parent)
        self.viewer = viewer
        self.session = None
        self.predict = None  # predict(image) -> raw detections, once a checkpoint is loaded
        self.model_name = ""
        self.suggestions: suggestion_layers.BoxSuggestions | None = None
        self.loader = None

        self.path = QLineEdit()
        self.path.setPlaceholderText("best.ckpt of a training run")
        self.path.setToolTip("a checkpoint written by training; read weights-only, nothing in it runs")
        self.browse = QPushButton("…")
        self.browse.setFixedWidth(30)
        self.last_run = QPushButton("Last training run")
        self.last_run.setToolTip("the best checkpoint of the last run of Train detector in this viewer")
        self.load_button = QPushButton("Load")
        self.enabled = QCheckBox("show")
        self.enabled.setChecked(True)
        self.enabled.setToolTip("show the model's boxes on each image as suggestions")
        self.threshold = QDoubleSpinBox()
        self.threshold.setRange(0.0, 1.0)
        self.threshold.setSingleStep(0.05)
        self.threshold.setDecimals(2)
        self.threshold.setValue(0.5)
        self.threshold.setToolTip("suggest boxes scoring at least this")
        self.status = QLabel("no checkpoint loaded")
        self.status.setWordWrap(True)
        self.keys = QLabel(KEYS_NOTE)
        self.keys.setWordWrap(True)

        path_row = QHBoxLayout()
        path_row.addWidget(self.path, 1)
        path_row.addWidget(self.browse)
        button_row = QHBoxLayout()
        for widget in (self.last_run, self.load_button, QLabel("score ≥"), self.threshold, self.enabled):
            button_row.addWidget(widget)
        layout = QVBoxLayout(self)
        layout.addLayout(path_row)
        layout.addLayout(button_row)
        layout.addWidget(self.status)
        layout.addWidget(self.keys)

        self.browse.clicked.connect(self._browse)
        self.last_run.clicked.connect(self.use_last_run)
        self.load_button.clicked.connect(self.load)
        self.path.returnPressed.connect(self.load)
        self.enabled.toggled.connect(lambda _: self.restart())
        self.threshold.valueChanged.connect(self._on_threshold)

    # --- the model ---------------------------------------------------------------------------

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Checkpoint", self.path.text(), "Checkpoints (*.ckpt *.pt *.pth)")
        if path:
            self.path.setText(path)
            self.load()

    def use_last_run(self):
        """Take the best checkpoint of the last run of Train detector in this viewer, and load it."""
        from qtpy.QtWidgets import QApplication

        from napari_faster_rcnn._widgets.train_detector import TrainDetectorWidget

        results = [widget.result for widget in QApplication.allWidgets()
                   if isinstance(widget, TrainDetectorWidget) and widget.viewer is self.viewer
                   and widget.result is not None]
        checkpoint = next((r.best_checkpoint or r.last_checkpoint for r in results
                           if (r.best_checkpoint or r.last_checkpoint) is not None), None)
        if checkpoint is None:
            self.status.setText("no run of Train detector in this viewer has written a checkpoint yet")
            return None
        self.path.setText(str(checkpoint))
        return self.load()

    def load(self):
        """Read the checkpoint in the path field in a worker; returns the worker (None without a path)."""
        path = self.path.text().strip()
        if not path:
            self.status.setText("choose a checkpoint file first")
            return None
        from napari_faster_rcnn.core.model.checkpoints import load_checkpoint

        self.status.setText(f"reading {Path(path).name} ...")
        self.loader = start_worker(load_checkpoint, path, errored=self._load_failed, returned=self._loaded,
                                   button=self.load_button)
        return self.loader

    def _load_failed(self, error) -> None:
        self.status.setText(f"not loaded: {error}")

    def _loaded(self, checkpoint) -> None:
        from napari_faster_rcnn.core.prediction.suggestions import model_predictor

        self.use_predictor(model_predictor(checkpoint.model, checkpoint.classes), checkpoint.path.name)

    def use_predictor(self, predict, name: str = "model") -> None:
        """Suggest with ``predict(image) -> raw detections`` (a loaded checkpoint's, or a test's)."""
        self.predict, self.model_name = predict, name
        self.restart()

    # --- the session ----------------------------------------------------------------------------

    def set_session(self, session) -> None:
        """Suggest on ``session``'s images, or a stack's planes (None: no box layer: nothing)."""
        if session is self.session and self.suggestions is not None and not self.suggestions.closed:
            return
        self.session = session
        self.restart()

    def restart(self) -> None:
        """Start the suggestions over on the current session with the current model and settings."""
        self.stop()
        if self.predict is None:
            return
        if self.session is None or self.session.closed:
            self.status.setText(f"{self.model_name} loaded; suggestions need a box layer (of images or of a "
                                "stack) in Label boxes")
            return
        if not self.enabled.isChecked():
            self.status.setText(f"{self.model_name} loaded; suggestions off")
            return
        suggestions = suggestion_layers.BoxSuggestions(self.viewer, self.session, self.predict,
                                                       threshold=self.threshold.value(), start=False)
        suggestions.start_worker = self._run_worker
        suggestions.on_status = lambda text: self.status.setText(f"{self.model_name}: {text}")
        self.suggestions = suggestions
        suggestions.show()

    def _on_threshold(self, value: float) -> None:
        if self.suggestions is not None and not self.suggestions.closed:
            self.suggestions.set_threshold(value)

    def _run_worker(self, generator, on_result, on_finished):
        def run():
            return (yield from generator)

        return start_worker(run, errored=lambda error: self.status.setText(f"prediction failed: {error}"),
                            yielded=on_result, finished=on_finished)

    def stop(self) -> None:
        if self.suggestions is not None:
            self.suggestions.close()
            self.suggestions = None

    def teardown(self) -> None:
        self.stop()
        if self.loader is not None:
            self.loader.quit()
