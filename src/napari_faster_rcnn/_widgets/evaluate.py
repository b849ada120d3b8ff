"""The "Evaluate" dock widget: ground truth against predictions, both open in the viewer.

Pascal VOC AP per class at a chosen IoU and COCO mAP in a table, the
precision-recall curve of each class, and three display-only layers marking
the true positives, the false positives and the missed ground-truth boxes.
The computation runs in a napari ``thread_worker``.
"""

from __future__ import annotations

import math
from functools import partial

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qtpy.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QPushButton,
    QTableWidgetItem,
    QVBoxLayout,
)

from napari_faster_rcnn._widgets._common import DockedWidget, LayerCombo, compact_table, fit_table_rows, start_worker
from napari_faster_rcnn.core.evaluation.metrics import evaluate
from napari_faster_rcnn.layers import conventions, evaluation_layers

COLUMNS = ("class", "truth", "predicted", "AP", "COCO AP")


class EvaluateWidget(DockedWidget):
    """Evaluate a predictions layer against a box layer of the same images."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.worker = None
        self.result = None
        self.marks: dict[str, object] = {}

        self.ground_truth = LayerCombo(napari_viewer, conventions.is_boxes)
        self.ground_truth.setToolTip("the labeled boxes (ground truth)")
        self.predictions = LayerCombo(napari_viewer, conventions.is_predictions)
        self.predictions.setToolTip("the predictions, as the Tune predictions thresholds leave them")
        self.iou = QDoubleSpinBox()
        self.iou.setRange(0.05, 1.0)
        self.iou.setSingleStep(0.05)
        self.iou.setValue(0.5)
        self.iou.setToolTip("a prediction is a true positive when it overlaps a box of its class by at least this IoU")
        self.mark = QCheckBox("mark true / false positives and missed boxes")
        self.mark.setChecked(True)
        self.run_button = QPushButton("Evaluate")
        self.summary = QLabel("")
        self.summary.setWordWrap(True)

        self.table = compact_table(COLUMNS)

        self.figure = Figure(figsize=(3.6, 2.8), dpi=90, facecolor="#262930", layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(230)

        form = QFormLayout()
        form.addRow("ground truth", self.ground_truth)
        form.addRow("predictions", self.predictions)
        form.addRow("IoU ≥", self.iou)
        form.addRow(self.mark)
        form.addRow(self.run_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.summary)
        layout.addWidget(self.table)
        layout.addWidget(self.canvas)
        layout.addStretch(1)
        self.run_button.clicked.connect(self.run)

    def run(self):
        """Start the evaluation in a worker; returns the worker (None when nothing can be evaluated)."""
        ground_layer, predicted_layer = self.ground_truth.layer(), self.predictions.layer()
        if ground_layer is None or predicted_layer is None:
            self.summary.setText("open a box layer (ground truth) and a predictions layer first")
            return None
        inputs = evaluation_layers.evaluation_inputs(ground_layer, predicted_layer)
        pairs, ground, predicted = inputs["pairs"], inputs["ground"], inputs["predicted"]
        planes = inputs.get("planes")  # a stack: one pair per labeled plane
        if not pairs:
            self.summary.setText(f"{ground_layer.name!r} and {predicted_layer.name!r} share no image (by file name)"
                                 if planes is None else f"{ground_layer.name!r} has no labeled plane, or "
                                 f"{predicted_layer.name!r} is not of the same stack")
            return None
        self.summary.setText(f"evaluating {len(pairs)} {'labeled planes' if planes is not None else 'images'} ...")
        self.worker = start_worker(
            partial(evaluate, image_sizes=inputs["image_sizes"], names=inputs["names"]),
            inputs["ground_truths"], inputs["predictions"], float(self.iou.value()), None, desc="Evaluating", errored=self._failed, button=self.run_button,
            returned=lambda result: self._show(result, pairs, ground, predicted, ground_layer, predicted_layer, planes,
                                               inputs.get("notes", ())),
        )
        return self.worker

    def _failed(self, error: Exception) -> None:
        from napari.utils.notifications import show_error

        self.summary.setText(f"evaluation failed: {error}")
        show_error(f"Evaluate: {error}")

    def _show(self, result, pairs, ground, predicted, ground_layer, predicted_layer, planes=None, notes=()) -> None:
        self.result = result
        voc, coco = result.voc, result.coco
        unit = "labeled planes" if planes is not None else "images"
        lines = [
            f"{result.images} {unit} · VOC mAP@{voc.iou_threshold:g} {_number(voc.map)} · COCO mAP "
            f"{_number(coco.map)} (@0.5 {_number(coco.map50)}, @0.75 {_number(coco.map75)}; at most "
            f"{coco.max_dets} detections per image)",
            *notes,
            *result.notes,
            *(f"⚠ {warning}" for warning in result.warnings),
        ]
        self.summary.setText("\n".join(lines))
        if result.warnings:
            from napari.utils.notifications import show_warning

            show_warning("Evaluate: " + " · ".join(result.warnings))
        fit_table_rows(self.table, len(voc.classes), most=6)
        for row, name in enumerate(voc.classes):
            cells = (name, voc.ground_truth_counts[name], voc.prediction_counts[name], _number(voc.ap[name]),
                     _number(coco.per_class.get(name, math.nan)))
            for column, value in enumerate(cells):
                self.table.setItem(row, column, QTableWidgetItem(str(value)))
        self._plot(voc, ground_layer.metadata.get(conventions.CLASS_COLORS, {}))
        if self.mark.isChecked():
            evaluated = list(ground)  # the ground truth as evaluated: boxes without area in their image left out
            for k, (_, g, _) in enumerate(pairs):
                evaluated[g] = result.ground_truths[k]
            marks = evaluation_layers.mark_annotations(voc, pairs, predicted, evaluated, len(predicted), len(ground))
            for kind, annotations in marks.items():
                source = ground_layer if kind == "missed" else predicted_layer
                name = f"{source.name} {kind}"
                if planes is not None:  # a stack: the marks of its labeled planes, on their planes
                    self.marks[kind] = evaluation_layers.show_stack_marks(self.viewer, kind, annotations, planes, source,
                                                                    name, self.marks.get(kind))
                else:
                    self.marks[kind] = evaluation_layers.show_marks(self.viewer, kind, annotations, source, name,
                                                              self.marks.get(kind))

    def _plot(self, voc, colors: dict) -> None:
        self.figure.clear()
        axes = self.figure.add_subplot()
        axes.set_facecolor("#262930")
        for name in voc.classes:
            curve = voc.curves[name]
            if voc.ground_truth_counts[name] == 0:
                continue
            # precision and recall after each ranked detection, as AP integrates them
            axes.plot(curve.recall, curve.precision, color=colors.get(name), linewidth=1.5,
                      label=f"{name} AP {_number(voc.ap[name], 3)}")
        axes.set_xlim(0, 1.02)
        axes.set_ylim(0, 1.05)
        axes.set_xlabel("recall", color="white")
        axes.set_ylabel("precision", color="white")
        axes.set_title(f"precision-recall at IoU {voc.iou_threshold:g}", color="white", fontsize=10)
        axes.tick_params(colors="white", labelsize=8)
        for spine in axes.spines.values():
            spine.set_color("#8c8c8c")
        if axes.lines:
            axes.legend(fontsize=8, loc="lower left", facecolor="#31343b", labelcolor="white", edgecolor="#8c8c8c")
        self.canvas.draw_idle()

    def teardown(self) -> None:
        self.ground_truth.disconnect_viewer()
        self.predictions.disconnect_viewer()


def _number(value: float, digits: int = 3) -> str:
    return "-" if value != value else f"{value:.{digits}f}"
