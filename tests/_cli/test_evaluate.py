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
    assert "005" in captured.err  # the note names the image without predictions, and thresholds.json is none
    assert not any("thresholds" in line for line in captured.err.splitlines() if "per-class NMS" not in line)


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


# --- what evaluate used to get silently wrong (issue 11, item 3) ---------------------------------------


def evaluate_json(args, capsys):
    assert main(["evaluate", *map(str, args), "--json"]) == 0
    captured = capsys.readouterr()
    return json.loads(captured.out), captured.err


def integer_truth_and_named_predictions(tmp_path, prediction_classes):
    """Ground truth labeled 1, 2 (no class list) and perfect predictions labeled cat, dog."""
    boxes = [[0, 0, 10, 10], [20, 20, 30, 30]]
    save_annotation(tmp_path / "gt" / "a.json", Annotation(boxes, ["1", "2"]))
    save_annotation(tmp_path / "pred" / "a.json", Annotation(boxes, ["cat", "dog"], [0.9, 0.8],
                                                                 classes=prediction_classes))
    return ["--gt", tmp_path / "gt", "--pred", tmp_path / "pred"]


def test_integer_ground_truth_is_read_through_the_class_list_the_prediction_files_carry(tmp_path, capsys):
    args = integer_truth_and_named_predictions(tmp_path, ["cat", "dog"])  # as predict writes them
    result, err = evaluate_json(args, capsys)
    assert result["voc_map"] == 1.0 and result["coco_map"] == pytest.approx(1.0)
    assert result["warnings"] == []
    assert any("1=cat, 2=dog" in note and "predictions' class list" in note for note in result["notes"])
    assert "1=cat, 2=dog" in err


def test_labels_that_cannot_meet_are_warned_about_loudly_and_a_class_list_fixes_them(tmp_path, capsys):
    args = integer_truth_and_named_predictions(tmp_path, None)
    result, err = evaluate_json(args, capsys)
    assert result["voc_map"] == 0.0
    [warning] = result["warnings"]
    assert "no predicted label is a ground-truth class" in warning and "1, 2" in warning and "cat, dog" in warning
    assert "--classes" in warning and f"warning: {warning}" in err
    assert main(["evaluate", *map(str, args)]) == 0
    assert "warning: no predicted label" in capsys.readouterr().out  # the table shows it too
    result, _ = evaluate_json([*args, "--classes", "cat,dog"], capsys)
    assert result["voc_map"] == 1.0 and result["warnings"] == []


def test_class_numbers_read_through_a_checkpoints_classes(tmp_path, capsys):
    import torch

    from napari_faster_rcnn.core.model.config import ModelConfig

    args = integer_truth_and_named_predictions(tmp_path, None)
    checkpoint = tmp_path / "best.ckpt"
    torch.save({"napari_faster_rcnn": {"config": ModelConfig(classes=("cat", "dog")).to_dict()}}, checkpoint)
    result, _ = evaluate_json([*args, "--checkpoint", checkpoint], capsys)
    assert result["voc_map"] == 1.0 and result["warnings"] == []
    assert any("1=cat, 2=dog" in note and "--checkpoint" in note for note in result["notes"])
    torch.save({"weights": torch.zeros(2)}, checkpoint)
    assert main(["evaluate", *map(str, args), "--checkpoint", str(checkpoint)]) == 2
    assert "best.ckpt: not a napari-faster-rcnn training checkpoint" in capsys.readouterr().err


def test_integer_predictions_mapped_by_the_order_labels_appear_in_are_a_guess_and_say_so(tmp_path, capsys):
    boxes = [[0, 0, 10, 10], [20, 20, 30, 30]]
    save_annotation(tmp_path / "gt" / "a.json", Annotation(boxes, ["cat", "dog"]))  # no class list in the file
    save_annotation(tmp_path / "pred" / "a.json", Annotation(boxes, ["1", "2"], [0.9, 0.8]))
    result, _ = evaluate_json(["--gt", tmp_path / "gt", "--pred", tmp_path / "pred"], capsys)
    assert result["voc_map"] == 1.0
    assert any("1=cat, 2=dog" in warning and "order of appearance" in warning for warning in result["warnings"])


def write_image_dataset(folder, truths, size=(64, 80)):
    from PIL import Image

    for name, truth in truths.items():
        (folder / "input").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((*size, 3), np.uint8)).save(folder / "input" / f"{name}.png")
        save_annotation(folder / "target" / f"{name}.pt", truth)
    return folder


def test_ground_truth_without_area_in_its_image_is_dropped_as_training_drops_it(tmp_path, capsys):
    from napari_faster_rcnn.core.training.dataset import DetectionDataset

    real = [[5, 5, 20, 20], [30, 10, 50, 40]]
    truth = Annotation([*real, [10, 10, 10, 30], [100, 100, 120, 110]], ["a", "a", "a", "a"])  # flat; outside 80x64
    folder = write_image_dataset(tmp_path / "data", {"img": truth})
    save_annotation(tmp_path / "pred" / "img.pt", Annotation(real, ["a", "a"], [0.9, 0.8]))
    result, err = evaluate_json(["--gt", folder, "--pred", tmp_path / "pred"], capsys)
    assert result["voc_map"] == 1.0 and result["coco_map"] == pytest.approx(1.0)  # was 0.667: 2 of 3 "objects"
    assert result["dropped_boxes"] == 2 == DetectionDataset.from_folder(folder).dropped_boxes
    assert result["classes"]["a"]["ground_truth"] == 2
    assert "2 ground-truth box(es) with no area" in err
    # without images the size is unknown: the flat box still goes, the one outside stays
    save_annotation(tmp_path / "alone" / "img.pt", truth)
    result, _ = evaluate_json(["--gt", tmp_path / "alone", "--pred", tmp_path / "pred"], capsys)
    assert result["dropped_boxes"] == 1


def test_predictions_of_other_images_paired_by_name_are_warned_about(tmp_path, capsys):
    folder = write_image_dataset(tmp_path / "data", {"img": Annotation([[5, 5, 20, 20]], ["a"]),
                                                     "two": Annotation([[5, 5, 20, 20]], ["a"])})
    # predictions made on larger images of the same names
    save_annotation(tmp_path / "pred" / "img.pt", Annotation([[5, 5, 20, 20], [100, 60, 180, 150]], ["a", "a"],
                                                            [0.9, 0.8]))
    save_annotation(tmp_path / "pred" / "two.pt", Annotation([[5, 5, 20, 20]], ["a"], [0.9]))
    result, err = evaluate_json(["--gt", folder, "--pred", tmp_path / "pred"], capsys)
    [warning] = result["warnings"]
    assert "reach beyond their image" in warning and "img" in warning and "80 x 64" in warning
    assert "warning: predicted boxes of 1 image(s)" in err
    save_annotation(tmp_path / "pred" / "img.pt", Annotation([[5, 5, 20, 20], [60, 40, 80.4, 64]], ["a", "a"],
                                                            [0.9, 0.8]))
    assert evaluate_json(["--gt", folder, "--pred", tmp_path / "pred"], capsys)[0]["warnings"] == []


def test_max_dets_counts_every_detection_of_a_crowded_image_by_default(tmp_path, capsys):
    corners = np.stack(np.meshgrid(np.arange(15), np.arange(10)), -1).reshape(-1, 2) * 5.0  # 150 objects
    boxes = np.column_stack([corners, corners + 4])
    folder = write_image_dataset(tmp_path / "data", {"crowd": Annotation(boxes, ["a"] * 150)}, size=(64, 80))
    scores = np.linspace(0.99, 0.01, 150)  # the last 50 only a cap of 100 leaves out
    save_annotation(tmp_path / "pred" / "crowd.pt", Annotation(boxes, ["a"] * 150, scores))
    result, _ = evaluate_json(["--gt", folder, "--pred", tmp_path / "pred"], capsys)
    assert result["max_dets"] == 150 and result["coco_map"] == pytest.approx(1.0) and result["warnings"] == []
    result, err = evaluate_json(["--gt", folder, "--pred", tmp_path / "pred", "--max-dets", "100"], capsys)
    assert result["max_dets"] == 100 and result["coco_map"] == pytest.approx(100 / 150, abs=0.01)
    [warning] = result["warnings"]
    assert "at most 100 detections" in warning and "50 lower-scoring" in warning and "--max-dets" in warning
    assert main(["evaluate", "--gt", str(folder), "--pred", str(tmp_path / "pred"), "--max-dets", "0"]) == 2
    assert "--max-dets must be at least 1" in capsys.readouterr().err


def test_raw_predictions_are_measured_after_the_nms_of_their_thresholds_file(tmp_path, capsys):
    """``predict --raw`` keeps every overlapping box of an object; evaluate applies the per-class NMS of the
    thresholds.json beside them (as predict and Tune predictions show them), never its score threshold."""
    import torch
    from torchvision.ops import batched_nms

    rng = np.random.default_rng(3)
    truths, raws = {}, {}
    for index in range(6):
        corners = rng.uniform(0, 200, (8, 2))
        boxes = np.concatenate([corners, corners + rng.uniform(15, 40, (8, 2))], axis=1)
        labels = [["cell", "debris"][k % 2] for k in range(8)]
        truths[index] = Annotation(boxes, labels)
        # each object found 3 times, slightly shifted, plus a few stray boxes, scores spread down to 0.02
        copies = np.concatenate([boxes + rng.normal(0, 2.5, boxes.shape) for _ in range(3)] + [boxes[:2] + 60])
        scores = rng.uniform(0.02, 0.99, len(copies))
        raws[index] = Annotation(copies, labels * 3 + labels[:2], scores)
        save_annotation(tmp_path / "gt" / f"{index}.pt", truths[index])
        save_annotation(tmp_path / "raw" / f"{index}.pt", raws[index])
    save_thresholds(tmp_path / "raw", Thresholds(0.5, 0.45))  # predict --raw writes where tuning starts
    nmsed = tmp_path / "nms"
    for index, raw in raws.items():  # the reference: torchvision's per-class NMS, every score kept
        ids = torch.as_tensor([raw.labels.index(label) for label in raw.labels])
        keep = batched_nms(torch.as_tensor(raw.boxes), torch.as_tensor(raw.scores), ids, 0.45).numpy()
        save_annotation(nmsed / f"{index}.pt", raw.select(np.sort(keep)))
    measured, errors = evaluate_json(["--gt", tmp_path / "gt", "--pred", tmp_path / "raw"], capsys)
    reference, _ = evaluate_json(["--gt", tmp_path / "gt", "--pred", nmsed], capsys)
    as_they_are, _ = evaluate_json(["--gt", tmp_path / "gt", "--pred", tmp_path / "raw", "--nms", "1"], capsys)
    assert measured["voc_map"] == pytest.approx(reference["voc_map"], abs=1e-9)
    assert measured["coco_map"] == pytest.approx(reference["coco_map"], abs=1e-9)
    assert as_they_are["voc_map"] < measured["voc_map"] - 0.05  # the copies counted as false positives
    assert "per-class NMS at IoU 0.45" in errors
