"""``napari-faster-rcnn predict``: one file per image with scores, thresholds, overwriting, evaluation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_faster_rcnn.cli import main
from napari_faster_rcnn.core.data.annotations import load_annotation
from napari_faster_rcnn.core.prediction.thresholds import Thresholds, apply_thresholds, load_thresholds, save_thresholds
from tests.checkpoint_data import tiny_checkpoint
from tests.large_images import lower_pillow_limit, write_blank_png

CLASSES = ["circle", "square", "triangle"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory)


def predict(checkpoint, *arguments) -> int:
    return main(["predict", str(checkpoint), *map(str, arguments), "--quiet"])


def read_folder(folder, suffix=".pt") -> dict:
    return {path.stem: load_annotation(path) for path in sorted(folder.glob(f"*{suffix}"))
            if path.name != "thresholds.json"}


@pytest.fixture(scope="module")
def raw_run(checkpoint, tmp_path_factory):
    """The tutorial-layout dataset and its raw predictions."""
    from napari_faster_rcnn.core.data.synthetic import write_synthetic_dataset

    root = tmp_path_factory.mktemp("predict")
    dataset = write_synthetic_dataset(root / "shapes", n_images=6, seed=3, height=64, width=80)
    assert predict(checkpoint, dataset, "--out", dataset / "raw", "--raw", "--score", 0.3) == 0
    return dataset, read_folder(dataset / "raw")


def test_one_file_per_image_with_scores_labels_and_classes(checkpoint, raw_run, tmp_path, capsys):
    dataset, raw = raw_run
    out = tmp_path / "predictions"
    assert predict(checkpoint, dataset, "--out", out) == 0
    line = capsys.readouterr().out.strip()
    written = read_folder(out)
    assert sorted(written) == [f"{i:03d}" for i in range(6)]  # named after the images in input/
    boxes = sum(len(a) for a in written.values())
    assert line.startswith(f"6 images, {boxes} boxes, ") and "0 skipped; score >= 0.5, NMS IoU 0.5" in line
    for name, annotation in written.items():
        assert annotation.scores is not None and annotation.classes == CLASSES
        assert set(annotation.labels) <= set(CLASSES)
        assert annotation == apply_thresholds(raw[name], Thresholds(0.5, 0.5))
    assert load_thresholds(out) == Thresholds(0.5, 0.5)  # the checkpoint config's defaults


def test_score_and_nms_change_the_boxes_as_apply_thresholds_does_on_raw_output(checkpoint, raw_run, tmp_path):
    dataset, raw = raw_run
    assert all(len(a) > 100 for a in raw.values())  # raw: more than the model's own cap of 100
    assert load_thresholds(dataset / "raw") == Thresholds(0.3, 0.5)  # where tuning starts
    scores = np.concatenate([a.scores for a in raw.values()])
    score = round(float(np.quantile(scores, 0.6)), 4)  # the untrained model's scores lie close together
    counts = []
    for nms in (0.6, 0.2):
        out = tmp_path / f"nms{nms}"
        assert predict(checkpoint, dataset, "--out", out, "--score", score, "--nms", nms, "--format", "json") == 0
        written = read_folder(out, ".json")
        expected = {name: apply_thresholds(annotation, Thresholds(score, nms)) for name, annotation in raw.items()}
        assert sorted(written) == sorted(expected)
        for name in expected:
            np.testing.assert_allclose(written[name].boxes, expected[name].boxes, atol=1e-4)
            assert written[name].labels == expected[name].labels
            np.testing.assert_allclose(written[name].scores, expected[name].scores, atol=1e-6)
        counts.append(sum(len(a) for a in written.values()))
        assert json.loads((out / "thresholds.json").read_text()) == {"score_threshold": score,
                                                                      "nms_threshold": nms, "classes": None}
    assert counts[0] > counts[1] > 0  # a lower NMS IoU drops more


def test_a_thresholds_file_is_used_and_flags_win_over_it(checkpoint, raw_run, tmp_path):
    dataset, raw = raw_run
    tuned = tmp_path / "tuned"
    chosen = Thresholds(0.2, 0.4, ("square",))
    save_thresholds(tuned, chosen)  # as "Tune predictions" saves it beside its files
    out = tmp_path / "from_file"
    assert predict(checkpoint, dataset, "--out", out, "--thresholds", tuned / "thresholds.json") == 0
    written = read_folder(out)
    assert {label for a in written.values() for label in a.labels} == {"square"}
    for name, annotation in written.items():
        assert annotation == apply_thresholds(raw[name], chosen)
    assert load_thresholds(out) == chosen

    out = tmp_path / "flag_wins"
    assert predict(checkpoint, dataset, "--out", out, "--thresholds", tuned, "--nms", 1.0,
                   "--classes", "square,circle") == 0
    assert load_thresholds(out) == Thresholds(0.2, 1.0, ("square", "circle"))
    for name, annotation in read_folder(out).items():
        assert annotation == apply_thresholds(raw[name], Thresholds(0.2, 1.0, ("square", "circle")))


def test_existing_files_are_not_overwritten_unless_asked(checkpoint, raw_run, tmp_path, capsys):
    dataset, _ = raw_run
    out = tmp_path / "out"
    assert predict(checkpoint, dataset, "--out", out) == 0
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    capsys.readouterr()
    assert predict(checkpoint, dataset, "--out", out, "--score", 0.1) == 2
    error = capsys.readouterr().err
    assert "already holds 7 of the files this would write (000.pt, 001.pt" in error and "--overwrite" in error
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before  # nothing lost
    assert predict(checkpoint, dataset, "--out", out, "--score", 0.1, "--overwrite") == 0
    assert load_thresholds(out) == Thresholds(0.1, 0.5)


def test_image_files_and_an_unreadable_one(checkpoint, raw_run, tmp_path, capsys):
    dataset, raw = raw_run
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    images = [dataset / "input" / "001.png", broken, dataset / "input" / "004.png"]
    out = tmp_path / "some"
    assert predict(checkpoint, *images, "--out", out, "--raw", "--batch-size", 2) == 0
    captured = capsys.readouterr()
    assert f"skipped {broken}: not a readable image" in captured.err
    assert "2 images, " in captured.out and "1 skipped; raw detections (no thresholds applied)" in captured.out
    written = read_folder(out)
    assert sorted(written) == ["001", "004"]
    assert len(written["001"]) == len(raw["001"])


def test_mistakes_are_named(checkpoint, raw_run, tmp_path, capsys):
    dataset, _ = raw_run
    assert predict(checkpoint, dataset, "--out", tmp_path / "x", "--classes", "star") == 2
    assert "classes ['star'] are not the model's; it knows circle, square, triangle" in capsys.readouterr().err
    assert predict(checkpoint, dataset, "--out", tmp_path / "x", "--score", 1.5) == 2
    assert "--score must be from 0 to 1" in capsys.readouterr().err
    assert predict(tmp_path / "none.ckpt", dataset, "--out", tmp_path / "x") == 2
    assert "none.ckpt: no such checkpoint file" in capsys.readouterr().err
    assert predict(checkpoint, tmp_path / "nowhere", "--out", tmp_path / "x") == 2
    assert "nowhere: no such file or folder" in capsys.readouterr().err
    assert predict(checkpoint, dataset / "raw", "--out", tmp_path / "x") == 2  # predictions, not images
    assert "raw: no images (.png, .jpg, .tif, .bmp or .webp) in it or in its input/" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_evaluate_runs_on_the_output(checkpoint, raw_run, tmp_path, capsys):
    dataset, _ = raw_run
    out = dataset / "evaluated"  # a sibling of input/: opened in napari, it finds its images
    assert predict(checkpoint, dataset, "--out", out, "--score", 0.0, "--nms", 0.5) == 0
    capsys.readouterr()
    assert main(["evaluate", "--gt", str(dataset), "--pred", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["images"] == 6 and set(result["per_class"]) == set(CLASSES)
    assert 0.0 <= result["voc_map"] <= 1.0 and 0.0 <= result["coco_map"] <= 1.0
    predicted = sum(result["classes"][name]["predictions"] for name in CLASSES)
    assert predicted == sum(len(a) for a in read_folder(out).values())


def test_the_progress_bar_leaves_an_unreadable_image_out_of_its_total(checkpoint, raw_run, tmp_path, capsys):
    dataset, _ = raw_run
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    images = [dataset / "input" / "001.png", broken, dataset / "input" / "004.png"]
    assert main(["predict", str(checkpoint), *map(str, images), "--out", str(tmp_path / "out")]) == 0
    states = [part.strip() for part in capsys.readouterr().err.replace("\n", "\r").split("\r")
              if part.startswith("predicting")]
    # it starts at 3 (nothing read yet) and ends full at the 2 images predicted, never at 3 of 3
    assert states and " 2/2 " in states[-1] and "100%" in states[-1], states
    assert not any("3/3" in state for state in states), states


def test_images_above_pillows_limit_are_predicted_and_one_too_large_for_memory_is_skipped(
        checkpoint, raw_run, tmp_path, monkeypatch, capsys):
    dataset, raw = raw_run
    huge = write_blank_png(tmp_path / "huge.png")  # 14000 x 14000
    lower_pillow_limit(monkeypatch)  # the 64 x 80 images are above it too
    monkeypatch.setattr("napari_faster_rcnn.core.data.memory.available_memory", lambda: 2**30)
    out = tmp_path / "large"
    assert predict(checkpoint, dataset / "input" / "001.png", huge, "--out", out, "--raw") == 0
    captured = capsys.readouterr()
    assert f"skipped {huge}: 14000 x 14000 pixels need about 1.1 GiB to decode, more than the 1.0 GiB" in captured.err
    assert "1 images, " in captured.out and "1 skipped" in captured.out
    written = read_folder(out)
    assert sorted(written) == ["001"]
    assert len(written["001"]) == len(raw["001"]) and written["001"].labels == raw["001"].labels


def test_a_tiled_image_shows_its_tiles_progress(checkpoint, tmp_path, capsys):
    """A large image is minutes of tiles before its file is written: a bar counts them as they go."""
    from PIL import Image

    image = tmp_path / "large.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (100, 150, 3), dtype=np.uint8)).save(image)
    assert main(["predict", str(checkpoint), str(image), "--out", str(tmp_path / "out"), "--tile", "48",
                 "--overlap", "0.25"]) == 0  # not --quiet
    err = capsys.readouterr().err.replace("\r", "\n")
    assert "tiles of image 1 of 1" in err and "12/12" in err  # 3 x 4 tiles of 48 px


def test_tile_and_overlap_flags(checkpoint, tmp_path, capsys):
    """--tile/--overlap predict a large image in merged tiles, as the core does; --tile 0 in one pass."""
    from PIL import Image

    from napari_faster_rcnn.core.model.checkpoints import load_checkpoint
    from napari_faster_rcnn.core.prediction.run import predict_images
    from napari_faster_rcnn.core.prediction.tiles import Tiling, chosen_tiling
    from tests.checkpoint_data import assert_same_detections

    image = tmp_path / "images" / "large.png"
    image.parent.mkdir()
    pixels = np.random.default_rng(0).integers(0, 256, (80, 112, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(image)
    loaded = load_checkpoint(checkpoint)
    record = loaded.training_images  # what training recorded: 64 x 64 images and their boxes
    assert record["height"] == record["width"] == 64 and 0 < record["box_side"] <= 64
    default = chosen_tiling(loaded.config, record)
    assert default.tile == 64 and 0.1 <= default.overlap <= 0.5  # min_size = max_size = 64: the training scale

    written = {}
    for name, flags, tiling, words in [
        ("default", (), default, f"1 images in tiles of 64 px overlapping by {default.overlap:g} "
                                 f"({len(default.grid((80, 112)))} forward passes)"),
        ("tiles48", ("--tile", 48, "--overlap", 0.25), Tiling(48, 0.25),
         "1 images in tiles of 48 px overlapping by 0.25 (6 forward passes)"),
        ("whole", ("--tile", 0), None, "each image whole (--tile 0)"),
    ]:
        out = tmp_path / name
        assert predict(checkpoint, image, "--out", out, "--raw", *flags) == 0
        assert capsys.readouterr().out.strip().endswith(words)
        written[name] = read_folder(out)["large"]
        # a model loaded afresh, as the command's: a model's outputs for one input size can change a little
        # once it has run on another size (a bare torchvision forward does it too)
        model = load_checkpoint(checkpoint).model
        expected = predict_images(model, [image], loaded.classes, tiling=tiling)[0][0].annotation
        assert_same_detections(written[name], expected)
        assert (written[name].boxes[:, 2:] <= [112, 80]).all() and (written[name].boxes >= 0).all()
    assert len(written["default"]) != len(written["whole"]) or not np.allclose(written["default"].boxes,
                                                                               written["whole"].boxes)

    assert predict(checkpoint, image, "--out", tmp_path / "x", "--tile", 5) == 2
    assert "--tile must be 0 (each image whole) or at least 16 pixels, got 5" in capsys.readouterr().err
    assert predict(checkpoint, image, "--out", tmp_path / "x", "--overlap", 1.5) == 2
    assert "--overlap must be a fraction from 0 to 0.9, got 1.5" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
