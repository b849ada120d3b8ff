"""``napari-faster-rcnn demo``, in a tiny version: the files it writes, its JSON line, its refusals."""

from __future__ import annotations

import json

from PIL import Image

from napari_faster_rcnn.cli import main
from napari_faster_rcnn.core.model.checkpoints import load_checkpoint

TINY = ["--images", "16", "--validation-images", "4", "--test-images", "4", "--steps", "4", "--batch-size", "8"]


def test_demo_writes_checkpoint_curves_predictions_and_a_json_line(tmp_path, capsys):
    output = tmp_path / "demo"
    assert main(["demo", "--output", str(output), *TINY, "--json"]) == 0
    captured = capsys.readouterr()
    results = json.loads(captured.out)  # stdout is the JSON line alone, so `demo --json | jq` works
    for key in ("voc_map", "coco_map", "seconds", "per_class", "steps", "images", "checkpoint"):
        assert key in results, key
    assert 0.0 <= results["voc_map"] <= 1.0 and 0.0 <= results["coco_map"] <= 1.0
    assert set(results["per_class"]) == {"circle", "square", "triangle"}
    assert results["steps"] == 4 and results["images"] == {"train": 16, "validation": 4, "test": 4}
    assert results["seconds"] > 0
    # progress and the table go to stderr with --json, so stdout's last line stays JSON
    assert "making 24 synthetic images" in captured.err and "VOC AP@0.5" in captured.err

    loaded = load_checkpoint(results["checkpoint"])
    assert loaded.classes == ["circle", "square", "triangle"] and loaded.config.backbone == "resnet18_slim"
    assert json.loads((output / "results.json").read_text())["voc_map"] == results["voc_map"]
    for name in ("curves.png", "predictions_0.png", "predictions_3.png"):
        with Image.open(output / name) as image:
            assert image.width > 300 and image.height > 300, name
    assert len(list((output / "data" / "test" / "input").glob("*.png"))) == 4


def test_demo_refuses_a_non_empty_folder_unless_asked(tmp_path, capsys):
    output = tmp_path / "demo"
    output.mkdir()
    (output / "mine.txt").write_text("keep")
    assert main(["demo", "--output", str(output), *TINY]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["demo", "--output", str(output), *TINY, "--overwrite"]) == 0
    table = capsys.readouterr().out
    assert "held-out test set: 4 images" in table and "mean" in table
    assert (output / "mine.txt").read_text() == "keep"
    assert (output / "checkpoints" / "best.ckpt").is_file()
