"""``napari-faster-rcnn calibrate``: thresholds from labeled images, written for ``predict --thresholds``."""

import argparse
import json

import numpy as np

from napari_faster_rcnn._cli.predict import chosen_thresholds
from napari_faster_rcnn.cli import main
from napari_faster_rcnn.core.data.annotations import Annotation, load_annotation, save_annotation
from napari_faster_rcnn.core.prediction.thresholds import Thresholds, apply_thresholds
from tests.predictions_data import write_predictions


def truth_of(dataset):
    return [load_annotation(path) for path in sorted((dataset / "target").glob("*.pt"))]


def f1(truths, predictions, label):
    """F1 of one class by a plain greedy match (best score first, IoU >= 0.5, one prediction per truth)."""
    import torch
    from torchvision.ops import box_iou

    tp = kept = total = 0
    for truth, predicted in zip(truths, predictions):
        gt = truth.boxes[[i for i, name in enumerate(truth.labels) if name == label]]
        mine = [i for i, name in enumerate(predicted.labels) if name == label]
        mine.sort(key=lambda i: -predicted.scores[i])
        total += len(gt)
        kept += len(mine)
        taken = set()
        for index in mine:
            if not len(gt):
                break
            iou = box_iou(torch.as_tensor(predicted.boxes[[index]]), torch.as_tensor(gt))[0].numpy()
            best = int(np.argmax(iou))
            if iou[best] >= 0.5 and best not in taken:
                taken.add(best)
                tp += 1
    return 2 * tp / (kept + total)


def test_writes_the_thresholds_predict_reads_and_they_give_the_f1_shown(tutorial_dataset, tmp_path, capsys):
    raw = write_predictions(tutorial_dataset)
    out = tmp_path / "tuned" / "thresholds.json"
    out.parent.mkdir()
    args = ["calibrate", "--gt", str(tutorial_dataset), "--pred", str(tutorial_dataset / "predictions"),
            "--out", str(out), "--json"]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"thresholds", "objective", "value", "per_class", "by_nms", "notes"} <= set(result)
    assert result["written"] == str(out)
    saved = json.loads(out.read_text())
    assert saved == result["thresholds"]
    # predict --thresholds FILE reads exactly this
    namespace = argparse.Namespace(thresholds=str(out), score=None, nms=None, classes=None)
    thresholds = chosen_thresholds(namespace, None)
    assert thresholds == Thresholds.from_dict(saved)
    # applied as predict applies them, the predictions reach the F1 calibrate reports
    truths = truth_of(tutorial_dataset)
    applied = [apply_thresholds(annotation, thresholds) for annotation in raw]
    for name, stats in result["per_class"].items():
        assert f1(truths, applied, name) == stats["f1"]
    # better than keeping everything, and than predict's default thresholds
    for other in (Thresholds(0.0, 1.0), Thresholds(0.5, 0.5)):
        other_applied = [apply_thresholds(annotation, other) for annotation in raw]
        for name, stats in result["per_class"].items():
            assert f1(truths, other_applied, name) <= stats["f1"]
    # --score on the command line is one threshold again
    namespace.score = 0.3
    assert chosen_thresholds(namespace, None).class_score_thresholds is None


def test_count_objective_table_and_a_folder_as_out(tutorial_dataset, tmp_path, capsys):
    write_predictions(tutorial_dataset)
    assert main(["calibrate", "--gt", str(tutorial_dataset), "--pred", str(tutorial_dataset / "predictions"),
                 "--objective", "count", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "objective count" in out and "count error" in out and f"written to {tmp_path / 'thresholds.json'}" in out
    Thresholds.from_dict(json.loads((tmp_path / "thresholds.json").read_text()))


def test_thresholded_predictions_get_a_note_and_bad_input_an_error(tmp_path, capsys):
    save_annotation(tmp_path / "gt" / "a.json", Annotation([[0, 0, 10, 10], [20, 20, 30, 30]], ["cat", "cat"]))
    save_annotation(tmp_path / "pred" / "a.json", Annotation([[0, 0, 10, 10]], ["cat"], [0.8]))
    assert main(["calibrate", "--gt", str(tmp_path / "gt"), "--pred", str(tmp_path / "pred")]) == 0
    captured = capsys.readouterr()
    assert "look thresholded already" in captured.err and "predict --raw" in captured.err
    save_annotation(tmp_path / "unscored" / "a.json", Annotation([[0, 0, 10, 10]], ["cat"]))
    assert main(["calibrate", "--gt", str(tmp_path / "gt"), "--pred", str(tmp_path / "unscored")]) == 2
    assert "a.json: predictions need scores" in capsys.readouterr().err
