"""``napari-faster-rcnn evaluate``: a table, or JSON, from two folders."""

import json

import numpy as np
import pytest

from napari_faster_rcnn.cli import main
from napari_faster_rcnn.core.data.annotations import Annotation, load_annotation, save_annotation
from napari_faster_rcnn.core.prediction.thresholds import Thresholds, save_thresholds


@pytest.fixture
def predictions(tmp_path, tutorial_dataset):
    """Predictions for the tutorial dataset: the true boxes as class ids, one missed, one false box.

    Images 000-004 are predicted; 005 has no prediction file.
    """
    folder = tmp_path / "predictions"
    for index in range(5):
        truth = load_annotation(tutorial_dataset / "target" / f"{index:03d}.pt")
        boxes = truth.boxes[1:] if index == 0 else truth.boxes  # image 0: its first object missed
        labels = truth.labels[1:] if index == 0 else truth.labels
        boxes = np.concatenate([boxes, [[0, 0, 3, 3]]])  # a false box, scored lowest
        labels = list(labels) + [labels[0]]
        scores = np.concatenate([np.linspace(0.9, 0.5, len(boxes) - 1), [0.1]])
        save_annotation(folder / f"{index:03d}.pt", Annotation(boxes, labels, scores))
    save_thresholds(folder, Thresholds(0.1, 0.5))  # saved beside predictions; not an annotation
    return folder


def test_json_output_has_the_contract_keys(tutorial_dataset, predictions, capsys):
    assert main(["evaluate", "--gt", str(tutorial_dataset), "--pred", str(predictions), "--json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert {"voc_map", "coco_map", "coco_map50", "per_class"} <= set(result)
    assert result["images"] == 6
    truth = [load_annotation(tutorial_dataset / "target" / f"{i:03d}.pt") for i in range(6)]
    objects = sum(len(a) for a in truth)
    found = objects - 1 - len(truth[5])  # image 0 misses one, image 5 has no predictions
    assert sum(c["ground_truth"] for c in result["classes"].values()) == objects
    assert 0 < result["voc_map"] < 1 and set(result["per_class"]) == set().union(*(a.labels for a in truth))
    assert sum(c["predictions"] for c in result["classes"].values()) == found + 5
    assert "005" in captured.err and "thresholds" not in captured.err  # the note names the image without predictions


def test_table_output_and_iou(tutorial_dataset, predictions, capsys):
    assert main(["evaluate", "--gt", str(tutorial_dataset), "--pred", str(predictions), "--iou", "0.75"]) == 0
    out = capsys.readouterr().out
    assert "IoU threshold 0.75" in out and "AP@0.75" in out and "COCO mAP@[.5:.95]" in out
    for name in load_annotation(tutorial_dataset / "target" / "001.pt").labels:
        assert any(line.startswith(name) for line in out.splitlines())


def test_integer_labels_with_a_class_list(tmp_path, capsys):
    save_annotation(tmp_path / "gt" / "a.json", Annotation([[0, 0, 10, 10], [20, 20, 30, 30]], ["cat", "dog"]))
    predicted = Annotation([[0, 0, 10, 10], [20, 20, 30, 30]], ["1", "2"], [0.9, 0.8])
    save_annotation(tmp_path / "pred" / "a.json", predicted)
    args = ["evaluate", "--gt", str(tmp_path / "gt"), "--pred", str(tmp_path / "pred"), "--json"]
    assert main(args + ["--classes", "cat,dog"]) == 0
    assert json.loads(capsys.readouterr().out)["per_class"] == {"cat": 1.0, "dog": 1.0}
    assert main(args + ["--classes", "dog,cat"]) == 0
    assert json.loads(capsys.readouterr().out)["per_class"] == {"dog": 0.0, "cat": 0.0}


def test_errors_name_the_folder_or_file(tmp_path, tutorial_dataset, capsys):
    assert main(["evaluate", "--gt", str(tutorial_dataset), "--pred", str(tmp_path / "nowhere")]) == 2
    assert "nowhere: not a folder" in capsys.readouterr().err
    save_annotation(tmp_path / "other" / "zzz.pt", Annotation([[0, 0, 1, 1]], ["a"], [0.5]))
    assert main(["evaluate", "--gt", str(tutorial_dataset), "--pred", str(tmp_path / "other")]) == 2
    assert "no prediction file is named after an image" in capsys.readouterr().err
    save_annotation(tmp_path / "unscored" / "000.pt", Annotation([[0, 0, 1, 1]], ["a"]))
    assert main(["evaluate", "--gt", str(tutorial_dataset), "--pred", str(tmp_path / "unscored")]) == 2
    err = capsys.readouterr().err
    assert "000.pt: predictions need scores" in err and "Traceback" not in err
