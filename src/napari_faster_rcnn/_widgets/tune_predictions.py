"""The "Tune predictions" dock widget: score and NMS sliders and a class filter over raw
detections, updating the predictions layer live, and "Accept as labels".

While a slider is dragged only the image on screen is filtered again; on
release every image is (see :class:`~napari_faster_rcnn.layers.predictions.PredictionPages`).
"""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
)
from superqt import QLabeledDoubleSlider

from napari_faster_rcnn._widgets._common import DockedWidget, LayerCombo, start_worker
from napari_faster_rcnn.core.prediction.thresholds import Thresholds
from napari_faster_rcnn.layers import conventions, prediction_labels, predictions
from napari_faster_rcnn.layers.stack_labeling import is_stack_layer, plane_counts


def _slider(tooltip: str) -> QLabeledDoubleSlider:
    slider = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
    slider.setRange(0.0, 1.0)
    slider.setSingleStep(0.01)
    slider.setDecimals(2)
    slider.setToolTip(tooltip)
    return slider


class TunePredictionsWidget(DockedWidget):
    """Score threshold, NMS IoU and classes of a predictions layer; accept boxes as labels."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.pages: predictions.PredictionPages | None = None

        self.predictions = LayerCombo(napari_viewer, conventions.is_predictions)
        self.predictions.setToolTip("the predictions layer to tune")
        self.score = _slider("keep boxes scoring at least this")
        self.nms = _slider("per-class NMS: drop a box overlapping a better one of its class by more than this IoU "
                           "(1 keeps all)")
        self.classes = QListWidget()
        self.classes.setToolTip("classes to keep")
        self.counts = QLabel("no predictions layer")
        self.counts.setWordWrap(True)

        form = QFormLayout()
        form.addRow("predictions", self.predictions)
        form.addRow("score ≥", self.score)
        form.addRow("NMS IoU", self.nms)
        form.addRow("classes", self.classes)
        form.addRow(self.counts)

        self.labels = LayerCombo(napari_viewer, conventions.is_boxes)
        self.labels.setToolTip("the box layer to copy the kept predictions into (same images, by file name)")
        self.selected_only = QCheckBox("only the selected boxes")
        self.accept = QPushButton("Accept as labels")
        self.accept.setToolTip("copy the boxes that pass the thresholds into the labels; boxes already labeled "
                               "(same class, IoU ≥ 0.7) are skipped, so accepting twice adds nothing")
        self.accept_status = QLabel("")
        self.accept_status.setWordWrap(True)
        accept_form = QFormLayout()
        accept_form.addRow("into", self.labels)
        accept_form.addRow(self.selected_only)
        accept_form.addRow(self.accept)
        accept_form.addRow(self.accept_status)
        accept_box = QGroupBox("Labeling from predictions")
        accept_box.setLayout(accept_form)

        # Calibrate: thresholds from the labels of the box layer above ("into")
        self._calibrated: Thresholds | None = None  # per-class thresholds the sliders stand for
        self._calibrated_at = (None, None)  # the slider values they were put at
        self.calibration_worker = None  # the calibration running, if any
        self.last_calibration = None  # its Calibration, once done
        self._closed = False
        self.objective = QComboBox()
        self.objective.addItems(["f1", "count"])
        self.objective.setToolTip("f1: the score threshold per class and NMS IoU of the best F1 on the labeled images; "
                                  "count: those whose box counts per image come nearest the labels'")
        self.calibrate_button = QPushButton("Calibrate")
        self.calibrate_button.setToolTip(
            "choose the score threshold per class and the NMS IoU from the labels of the box layer above (images "
            "paired by file name; images without labels left out); the sliders move to them and thresholds.json "
            "is written beside the prediction files. Moving the score slider then sets one threshold for every class")
        self.calibrate_status = QLabel("")
        self.calibrate_status.setWordWrap(True)
        calibrate_form = QFormLayout()
        calibrate_form.addRow("objective", self.objective)
        calibrate_form.addRow(self.calibrate_button)
        calibrate_form.addRow(self.calibrate_status)
        calibrate_box = QGroupBox("Calibrate from labels")
        calibrate_box.setLayout(calibrate_form)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(accept_box)
        layout.addWidget(calibrate_box)
        layout.addStretch(1)

        self.predictions.currentIndexChanged.connect(self._on_layer)
        for slider in (self.score, self.nms):
            slider.valueChanged.connect(self._on_value)
            slider.sliderReleased.connect(self.apply)
        self.classes.itemChanged.connect(self.apply)
        self.accept.clicked.connect(self.accept_as_labels)
        self.calibrate_button.clicked.connect(self.calibrate)
        napari_viewer.dims.events.current_step.connect(self._show_counts)
        self._on_layer()

    # --- controls -> layer ---------------------------------------------------------

    def thresholds(self) -> Thresholds:
        """The thresholds the controls show."""
        items = [self.classes.item(i) for i in range(self.classes.count())]
        chosen = tuple(item.text() for item in items if item.checkState() == Qt.CheckState.Checked)
        score, nms, per_class = self.score.value(), self.nms.value(), None
        calibrated = self._calibrated
        if calibrated is not None:  # the sliders still where calibration put them: its exact values
            if score == self._calibrated_at[0]:
                score, per_class = calibrated.score_threshold, calibrated.class_score_thresholds
            if nms == self._calibrated_at[1]:
                nms = calibrated.nms_threshold
        return Thresholds(
            score_threshold=min(max(score, 0.0), 1.0),
            nms_threshold=min(max(nms, 0.0), 1.0),
            classes=None if len(chosen) == len(items) else chosen,
            class_score_thresholds=per_class,
        )

    def _remember(self, thresholds: Thresholds) -> None:
        """Keep per-class thresholds (and exact values) while the sliders stay where they were put."""
        self._calibrated = thresholds if thresholds.class_score_thresholds else None
        self._calibrated_at = (self.score.value(), self.nms.value())

    def _on_value(self, value=None) -> None:
        if self.pages is None:
            return
        if self.score.isSliderDown() or self.nms.isSliderDown():
            self.pages.preview(self.thresholds())  # dragging: this image only
            self._show_counts(whole=False)
        else:
            self.apply()

    def apply(self, *args) -> None:
        """Filter every image with the thresholds the controls show."""
        if self.pages is None:
            return
        self.pages.apply(self.thresholds())
        self._show_counts()

    def _on_layer(self, index=None) -> None:
        layer = self.predictions.layer()
        self.pages = predictions.tune(self.viewer, layer) if layer is not None else None
        for control in (self.score, self.nms, self.classes, self.accept):
            control.setEnabled(self.pages is not None)
        if self.pages is None:
            self.counts.setText("no predictions layer: open a folder of predictions, or predict")
            return
        thresholds = self.pages.thresholds
        for control in (self.score, self.nms, self.classes):
            control.blockSignals(True)
        self.score.setValue(thresholds.score_threshold)
        self.nms.setValue(thresholds.nms_threshold)
        self.classes.clear()
        for name in self.pages.detections.labels:
            item = QListWidgetItem(name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            keep = thresholds.classes is None or name in thresholds.classes
            item.setCheckState(Qt.CheckState.Checked if keep else Qt.CheckState.Unchecked)
            self.classes.addItem(item)
        rows = min(max(self.classes.count(), 1), 4)
        row = max(self.classes.sizeHintForRow(0), 18)
        self.classes.setFixedHeight(row * rows + 2 * self.classes.frameWidth() + 2)
        for control in (self.score, self.nms, self.classes):
            control.blockSignals(False)
        self._remember(thresholds)
        self._show_counts()

    def _show_counts(self, event=None, whole: bool = True) -> None:
        if self.pages is None:
            return
        counts = self.pages.counts()
        unit = getattr(self.pages, "unit", "image")  # a stack's predictions count planes
        text = f"{counts['kept']} of {counts['raw']} boxes kept in this {unit}"
        if whole:
            text += f"; {counts['kept_total']:,} of {counts['raw_total']:,} in all {len(self.pages.raw)} {unit}s"
        self.counts.setText(text)

    # --- calibrate -------------------------------------------------------------------

    def calibrate(self):
        """Calibrate the thresholds on the labels of the chosen box layer in a worker (the button
        disabled meanwhile); when it is done, move the sliders to them, filter every image and write
        ``thresholds.json`` beside the prediction files (see :meth:`_calibrated_result`).

        Returns the worker, or None when the layers cannot be calibrated (the status says why).
        """
        predicted, labels = self.predictions.layer(), self.labels.layer()
        if predicted is None or labels is None or self.pages is None:
            self.calibrate_status.setText("choose a predictions layer and a box layer with labels")
            return None
        if self.calibration_worker is not None:
            return self.calibration_worker
        try:  # the layers are read here (main thread); the search runs in the worker
            job = prediction_labels.calibration_job(predicted, labels, self.objective.currentText())
        except ValueError as error:
            self.calibrate_status.setText(str(error))
            return None
        images = job.images
        if not images:
            self.calibrate_status.setText(f"{predicted.name!r} and {labels.name!r} share no labeled image (paired "
                                          "by file name): label some of the predicted images first")
            return None
        self.last_calibration = None
        self.calibrate_status.setText(f"calibrating on {images} image(s) …")
        self.calibration_worker = start_worker(
            job.run, errored=self._calibration_failed, desc="Calibrate", button=self.calibrate_button,
            returned=lambda result: self._calibrated_result(predicted, result, job),
            finished=self._calibration_finished)
        return self.calibration_worker

    def _calibration_failed(self, error) -> None:
        if not self._closed:
            self.calibrate_status.setText(f"not calibrated: {error}")

    def _calibration_finished(self) -> None:
        self.calibration_worker = None

    def _calibrated_result(self, predicted, result, job=None) -> None:
        """A calibration's result (main thread): sliders, every image filtered, the file written."""
        if self._closed:
            return
        if self.predictions.layer() is not predicted or self.pages is None:
            self.calibrate_status.setText(f"calibrated, but {predicted.name!r} is no longer the layer tuned: "
                                          "nothing changed; calibrate again")
            return
        self.last_calibration = result
        chosen = result.thresholds
        for control in (self.score, self.nms, self.classes):
            control.blockSignals(True)
        self.score.setValue(chosen.score_threshold)
        self.nms.setValue(chosen.nms_threshold)
        for index in range(self.classes.count()):
            self.classes.item(index).setCheckState(Qt.CheckState.Checked)
        for control in (self.score, self.nms, self.classes):
            control.blockSignals(False)
        self._remember(chosen)
        self._calibrated = chosen  # exact values even with one class
        filtered = getattr(job, "filtered", None)
        if filtered is not None and len(filtered) != len(self.pages.raw):
            filtered = None  # not this layer's images (cannot happen while the layer stays): filter here
        self.pages.apply(chosen, filtered)
        self._show_counts()
        written = prediction_labels.save_layer_thresholds(predicted)
        per_class = ", ".join(f"{name} ≥ {stats['score_threshold']:.3f} (F1 {stats['f1']:.2f})"
                              for name, stats in result.per_class.items())
        what = (f"macro F1 {result.value:.3f}" if result.objective == "f1"
                else f"count error {result.value:g} boxes")
        text = (f"calibrated on {result.images} image(s): {what}; NMS IoU {chosen.nms_threshold:g}; {per_class}; "
                f"other classes ≥ {chosen.score_threshold:.3f}")
        text += f"; written to {written}" if written is not None else "; save the layer to keep them"
        if result.notes:
            text += "\n" + "\n".join(result.notes)
        self.calibrate_status.setText(text)

    # --- accept ----------------------------------------------------------------------

    def accept_as_labels(self) -> int:
        """Copy the kept (or selected) predictions into the chosen box layer."""
        predicted, labels = self.predictions.layer(), self.labels.layer()
        if predicted is None or labels is None:
            self.accept_status.setText("choose a predictions layer and a box layer to label")
            return 0
        try:
            added = prediction_labels.accept_as_labels(predicted, labels, self.selected_only.isChecked())
        except ValueError as error:
            self.accept_status.setText(str(error))
            return 0
        text = (f"added {added} box{'es' if added != 1 else ''} to {labels.name!r}; save that layer to keep them"
                if added else f"nothing added: every kept box is already labeled in {labels.name!r}")
        if is_stack_layer(labels):  # accepting labels the planes, with or without boxes
            labeled, every = plane_counts(self.viewer, labels)
            text += f" ({labeled} of {every} planes labeled)"
        self.accept_status.setText(text)
        return added

    def teardown(self) -> None:
        self._closed = True  # a calibration still running finds no widget to show its result in
        self.viewer.dims.events.current_step.disconnect(self._show_counts)
        self.predictions.disconnect_viewer()
        self.labels.disconnect_viewer()
