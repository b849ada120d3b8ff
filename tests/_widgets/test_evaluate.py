"""The "Evaluate" widget, driven in a real viewer: its table, curves and marks match the core result."""

import math

import numpy as np
import pytest

from napari_faster_rcnn._widgets.evaluate import EvaluateWidget
from napari_faster_rcnn.core.data.boxes import rectangles_to_boxes
from napari_faster_rcnn.core.evaluation.coco import coco_evaluation
from napari_faster_rcnn.core.evaluation.metrics import voc_evaluation
from napari_faster_rcnn.core.prediction.thresholds import Thresholds
from napari_faster_rcnn.layers.box_layers import layer_annotations
from napari_faster_rcnn.layers.predictions import tune
from tests.predictions_data import write_predictions

PLUGIN = "napari-faster-rcnn"


def run(qtbot, widget):
    worker = widget.run()
    assert worker is not None
    # the button comes back in the widget's own `finished` handler, connected before the worker started;
    # a signal connected here could miss a worker that already finished
    qtbot.waitUntil(widget.run_button.isEnabled, timeout=60_000)
    assert widget.result is not None


def test_evaluation_table_curves_and_marks_match_the_core_result(make_napari_viewer, qtbot, tutorial_dataset):
    viewer = make_napari_viewer()
    write_predictions(tutorial_dataset)
    viewer.open(tutorial_dataset, plugin=PLUGIN)
    viewer.open(tutorial_dataset / "predictions", plugin=PLUGIN)
    ground_layer, predicted_layer = viewer.layers[1], viewer.layers[3]
    tune(viewer, predicted_layer).apply(Thresholds(0.3, 0.5))  # evaluate what the thresholds keep
    widget = EvaluateWidget(viewer)
    viewer.window.add_dock_widget(widget)
    assert widget.ground_truth.layer() is ground_layer and widget.predictions.layer() is predicted_layer
    widget.iou.setValue(0.6)
    run(qtbot, widget)

    ground, predicted = layer_annotations(ground_layer), layer_annotations(predicted_layer)
    voc = voc_evaluation(ground, predicted, 0.6)
    coco = coco_evaluation(ground, predicted)
    assert 0 < voc.map < 1
    assert widget.result.voc.map == voc.map
    rows = {widget.table.item(r, 0).text(): [widget.table.item(r, c).text() for c in range(1, 5)]
            for r in range(widget.table.rowCount())}
    assert set(rows) == set(voc.classes)
    for name in voc.classes:
        assert rows[name][0] == str(voc.ground_truth_counts[name])
        assert rows[name][1] == str(voc.prediction_counts[name])
        assert rows[name][2] == ("-" if math.isnan(voc.ap[name]) else f"{voc.ap[name]:.3f}")
        assert rows[name][3] == ("-" if math.isnan(coco.per_class[name]) else f"{coco.per_class[name]:.3f}")
    assert f"VOC mAP@0.6 {voc.map:.3f}" in widget.summary.text()
    # one precision-recall curve per class with ground truth, ending at the class's recall
    lines = widget.figure.axes[0].get_lines()
    assert len(lines) == sum(n > 0 for n in voc.ground_truth_counts.values())
    for line in lines:
        name = line.get_label().split(" AP ")[0]
        assert line.get_xdata()[-1] == voc.curves[name].recall[-1]

    # the marks: true and false positives of each image, and the missed ground-truth boxes
    names = [layer.name for layer in viewer.layers]
    assert {f"{predicted_layer.name} true positives", f"{predicted_layer.name} false positives",
            f"{ground_layer.name} missed"} <= set(names)
    true_layer, false_layer, missed_layer = (widget.marks[k] for k in ("true positives", "false positives", "missed"))
    for index in range(6):
        viewer.dims.set_current_step(0, index)
        hit = voc.true_positive[index]
        for layer, expected in ((true_layer, predicted[index].boxes[hit]), (false_layer, predicted[index].boxes[~hit]),
                                (missed_layer, ground[index].boxes[~voc.matched[index]])):
            boxes, at = rectangles_to_boxes(layer.data)
            np.testing.assert_allclose(boxes, expected, atol=1e-4)
            assert at is None or set(at.tolist()) <= {index}

    # evaluating again re-uses the mark layers
    widget.iou.setValue(0.3)
    run(qtbot, widget)
    assert [layer.name for layer in viewer.layers] == names
    assert widget.result.voc.map >= voc.map


def test_nothing_to_evaluate_says_why(make_napari_viewer, tutorial_dataset, tmp_path):
    viewer = make_napari_viewer()
    widget = EvaluateWidget(viewer)
    assert widget.run() is None and "open a box layer" in widget.summary.text()
    other = tmp_path / "other"
    (other / "input").mkdir(parents=True)
    from napari_faster_rcnn.core.data.synthetic import write_synthetic_dataset

    write_synthetic_dataset(other, 2, seed=1, height=32, width=32)
    for path in (other / "input").iterdir():
        path.rename(path.with_name("x" + path.name))
    for path in (other / "target").iterdir():
        path.rename(path.with_name("x" + path.name))
    write_predictions(other)
    viewer.open(tutorial_dataset, plugin=PLUGIN)
    viewer.open(other / "predictions", plugin=PLUGIN)
    assert widget.run() is None and "share no image" in widget.summary.text()


def test_an_evaluation_error_is_shown_and_the_widget_stays_usable(make_napari_viewer, qtbot, tutorial_dataset,
                                                                 monkeypatch):
    import napari_faster_rcnn._widgets.evaluate as module

    viewer = make_napari_viewer()
    write_predictions(tutorial_dataset)
    viewer.open(tutorial_dataset, plugin=PLUGIN)
    viewer.open(tutorial_dataset / "predictions", plugin=PLUGIN)
    widget = EvaluateWidget(viewer)

    def broken(*args, **kwargs):
        raise ValueError("the ground truth names no class")

    monkeypatch.setattr(module, "evaluate", broken)
    assert widget.run() is not None
    # the widget's own handlers were connected before the worker started; a failing worker
    # can finish before a signal connected here would see it
    qtbot.waitUntil(widget.run_button.isEnabled, timeout=60_000)
    assert widget.summary.text() == "evaluation failed: the ground truth names no class"
    assert widget.result is None


def write_pair(folder, truth, predicted):
    from PIL import Image

    from napari_faster_rcnn.core.data.annotations import save_annotation

    (folder / "input").mkdir(parents=True)
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(folder / "input" / "a.png")
    save_annotation(folder / "target" / "a.pt", truth)
    save_annotation(folder / "predictions" / "a.pt", predicted)


def test_the_status_says_what_the_numbers_may_hide(make_napari_viewer, qtbot, tmp_path):
    from napari_faster_rcnn.core.data.annotations import Annotation

    boxes = [[5, 5, 20, 20], [30, 10, 50, 30]]
    # a flat ground-truth box, and predictions whose labels name no ground-truth class
    write_pair(tmp_path / "data", Annotation([*boxes, [8, 8, 8, 30]], ["a", "a", "a"]),
               Annotation(boxes, ["b", "b"], [0.9, 0.8]))
    viewer = make_napari_viewer()
    viewer.open(tmp_path / "data", plugin=PLUGIN)
    viewer.open(tmp_path / "data" / "predictions", plugin=PLUGIN)
    widget = EvaluateWidget(viewer)
    run(qtbot, widget)
    status = widget.summary.text()
    assert "no predicted label is a ground-truth class" in status and "1 ground-truth box(es) with no area" in status
    assert widget.result.dropped_boxes == 1 and widget.result.voc.ground_truth_counts["a"] == 2
    missed, _ = rectangles_to_boxes(widget.marks["missed"].data)
    np.testing.assert_allclose(missed, boxes, atol=1e-4)  # the flat box is not an object missed


def test_integer_ground_truth_reads_through_the_predictions_class_list(make_napari_viewer, qtbot, tmp_path):
    from napari_faster_rcnn.core.data.annotations import Annotation

    boxes = [[5, 5, 20, 20], [30, 10, 50, 30]]
    write_pair(tmp_path / "data", Annotation(boxes, ["1", "2"]),
               Annotation(boxes, ["cat", "dog"], [0.9, 0.8], classes=["cat", "dog"]))
    viewer = make_napari_viewer()
    viewer.open(tmp_path / "data", plugin=PLUGIN)
    viewer.open(tmp_path / "data" / "predictions", plugin=PLUGIN)
    widget = EvaluateWidget(viewer)
    run(qtbot, widget)
    assert widget.result.voc.map == 1.0 and widget.result.warnings == []
    assert "1=cat, 2=dog" in widget.summary.text()


def test_raw_predictions_at_score_0_give_the_command_lines_figure(make_napari_viewer, qtbot, tutorial_dataset,
                                                                 capsys):
    """A raw folder opens at the thresholds.json beside it; with the score slider at 0 and its NMS kept, the
    widget measures what `napari-faster-rcnn evaluate` measures from the folders."""
    import json

    from napari_faster_rcnn.cli import main
    from napari_faster_rcnn.core.data.annotations import THRESHOLDS_FILE

    write_predictions(tutorial_dataset)
    saved = Thresholds(0.5, 0.4)
    (tutorial_dataset / "predictions" / THRESHOLDS_FILE).write_text(json.dumps(saved.to_dict()))
    assert main(["evaluate", "--gt", str(tutorial_dataset / "target"), "--pred",
                 str(tutorial_dataset / "predictions"), "--json"]) == 0
    command_line = json.loads(capsys.readouterr().out)
    viewer = make_napari_viewer()
    viewer.open(tutorial_dataset, plugin=PLUGIN)
    viewer.open(tutorial_dataset / "predictions", plugin=PLUGIN)
    predicted_layer = viewer.layers[3]
    pages = tune(viewer, predicted_layer)
    assert pages.thresholds == saved
    widget = EvaluateWidget(viewer)
    viewer.window.add_dock_widget(widget)
    run(qtbot, widget)
    at_saved = widget.result.voc
    pages.apply(Thresholds(0.0, saved.nms_threshold))
    run(qtbot, widget)
    assert widget.result.voc.map == pytest.approx(command_line["voc_map"], abs=1e-9)
    # the shown boxes were measured before: fewer (the score cut), never a better AP
    assert sum(at_saved.prediction_counts.values()) < sum(widget.result.voc.prediction_counts.values())
    assert at_saved.map <= widget.result.voc.map
