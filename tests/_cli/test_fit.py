"""``napari-faster-rcnn fit``: a config file with command-line overrides, --print_config,
resume, refusals, the widget's exported command, and DDP over two CPU processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from napari_faster_rcnn.cli import main
from napari_faster_rcnn.core.data.synthetic import SHAPE_CLASSES, write_synthetic_dataset
from napari_faster_rcnn.core.model.checkpoints import load_checkpoint
from tests.large_images import lower_pillow_limit

SOURCE = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return write_synthetic_dataset(tmp_path_factory.mktemp("data") / "shapes", 10, seed=2, height=64, width=64)


def run_config(dataset, output, **changes) -> dict:
    """A tiny run: the cpu preset at 64 px, 6 training and 4 validation images, one epoch."""
    config = {
        "trainer": {"default_root_dir": str(output), "max_epochs": 1, "accelerator": "cpu",
                    "enable_progress_bar": False, "enable_model_summary": False},
        "model": {"preset": "cpu", "config": {"min_size": 64, "max_size": 64}, "optimizer": "adamw",
                  "learning_rate": 0.001, "warmup_steps": 1},
        "data": {"root": str(dataset), "ratios": [0.6, 0.4], "batch_size": 2, "num_workers": 0},
    }
    for section, values in changes.items():
        config[section].update(values)
    return config


def write_config(path, config) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def test_fit_runs_a_config_file_with_command_line_overrides(shapes, tmp_path):
    config = write_config(tmp_path / "run.yaml", run_config(shapes, tmp_path / "run"))
    assert main(["fit", "--config", str(config), "--trainer.max_steps", "2", "--data.batch_size", "3",
                 "--model.normalization", "percentiles:0.5,99.5"]) == 0

    run = tmp_path / "run"
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["trainer"]["max_steps"] == 2 and saved["data"]["batch_size"] == 3
    assert saved["model"]["preset"] == "cpu" and "classes" not in saved["model"]  # linked from the data
    assert (run / "checkpoints" / "best.ckpt").is_file()
    loaded = load_checkpoint(run / "checkpoints" / "last.ckpt")
    assert loaded.global_step == 2 and loaded.classes == list(SHAPE_CLASSES)
    assert loaded.config.min_size == 64 and loaded.config.backbone == "resnet18_slim"
    assert loaded.config.normalization == "percentiles:0.5,99.5"  # prediction repeats it
    assert loaded.hyperparameters["optimizer"] == "adamw"
    assert "val/voc_map" in (run / "logs" / "version_0" / "metrics.csv").read_text().splitlines()[0]


def test_max_steps_alone_decides_the_runs_length(shapes, tmp_path):
    """``--trainer.max_steps 32`` without ``max_epochs``: 32 steps, not the default 30 epochs' 30
    (one step an epoch here)."""
    config = run_config(shapes, tmp_path / "run", data={"batch_size": 6}, trainer={"limit_val_batches": 0})
    del config["trainer"]["max_epochs"]
    assert main(["fit", "--config", str(write_config(tmp_path / "run.yaml", config)),
                 "--trainer.max_steps", "32"]) == 0
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt").global_step == 32


def test_the_default_length_is_30_epochs_unless_steps_or_time_are_given():
    from napari_faster_rcnn._cli._fit_cli import run_length

    assert run_length(None, None, None) == run_length(None, -1, None) == 30
    assert run_length(5, 300, None) == 5  # both given: Lightning stops at the first reached
    assert run_length(None, 300, None) is None and run_length(None, -1, "00:00:10:00") is None


def test_fit_trains_on_images_above_pillows_limit(shapes, tmp_path, monkeypatch):
    lower_pillow_limit(monkeypatch)  # the 64 x 64 images are above it
    config = write_config(tmp_path / "run.yaml", run_config(shapes, tmp_path / "run"))
    assert main(["fit", "--config", str(config), "--trainer.max_steps", "1"]) == 0
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt").global_step == 1


def test_print_config_runs_again_and_the_run_resumes_from_its_config(shapes, tmp_path, capsys):
    options = ["--data.root", str(shapes), "--data.ratios", "[0.6, 0.4]", "--data.num_workers", "0",
               "--data.batch_size", "2", "--model.preset", "cpu", "--model.config.min_size", "64",
               "--model.config.max_size", "64", "--trainer.accelerator", "cpu", "--trainer.max_epochs", "1",
               "--trainer.default_root_dir", str(tmp_path / "run"), "--trainer.enable_progress_bar", "false"]
    assert main(["fit", "--print_config", *options]) == 0
    printed = capsys.readouterr().out
    values = yaml.safe_load(printed)
    assert values["model"]["config"] == {"min_size": 64, "max_size": 64}
    assert values["data"]["augmentation"]["horizontal_flip_probability"] == 0.5  # every field is there
    assert {"devices", "num_nodes", "strategy", "precision", "sync_batchnorm"} <= set(values["trainer"])
    config = tmp_path / "printed.yaml"
    config.write_text(printed)
    assert main(["fit", "--config", str(config)]) == 0
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt").global_step == 3

    # the run folder's config.yaml repeats the run; with --ckpt_path it continues it
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert main(["fit", "--config", str(tmp_path / "run" / "config.yaml"), "--trainer.max_epochs", "2",
                 "--ckpt_path", str(last)]) == 0
    assert load_checkpoint(last).global_step == 6


def test_fit_refuses_a_folder_with_another_runs_checkpoints(shapes, tmp_path, capsys):
    config = write_config(tmp_path / "run.yaml", run_config(shapes, tmp_path / "run"))
    assert main(["fit", "--config", str(config), "--trainer.max_steps", "1"]) == 0
    capsys.readouterr()
    assert main(["fit", "--config", str(config), "--trainer.max_steps", "1"]) == 2
    error = capsys.readouterr().err
    assert "holds the checkpoints of another run" in error and "last.ckpt" in error
    assert main(["fit", "--config", str(config), "--trainer.max_steps", "1", "--overwrite", "true"]) == 0


def test_fit_explains_classes_that_do_not_fit_the_labels_and_missing_weights(shapes, tmp_path, capsys):
    config = write_config(tmp_path / "run.yaml", run_config(shapes, tmp_path / "run"))
    assert main(["fit", "--config", str(config), "--data.classes", "[circle, square]"]) == 2
    assert "label 'triangle' is neither a class name nor a class number" in capsys.readouterr().err

    missing = tmp_path / "missing.pth"
    assert main(["fit", "--config", str(config), "--model.config.weights", str(missing)]) == 2
    error = capsys.readouterr().err
    assert f"{missing}: no such weights file" in error and "--model.config.weights none" in error


def test_the_widgets_exported_command_repeats_the_run(shapes, tmp_path):
    from napari_faster_rcnn.core.training.settings import TrainingSettings, export_command
    from napari_faster_rcnn.core.training.transforms import AugmentationConfig

    settings = TrainingSettings(data=shapes, output=tmp_path / "run", preset="cpu",
                                model={"min_size": 64, "max_size": 64}, split_ratios=(0.6, 0.4), epochs=1,
                                batch_size=2, num_workers=0, optimizer="adamw", learning_rate=1e-3,
                                warmup_steps=1, accelerator="cpu",
                                augmentation=AugmentationConfig(vertical_flip_probability=0.5))
    text, command = export_command(settings, tmp_path / "run.yaml")
    assert command == f"napari-faster-rcnn fit --config {tmp_path / 'run.yaml'}"
    (tmp_path / "run.yaml").write_text(text)
    assert main([*command.split()[1:], "--trainer.max_steps", "1", "--trainer.enable_progress_bar", "false"]) == 0
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["data"]["augmentation"]["vertical_flip_probability"] == 0.5
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt").config.min_size == 64

    with pytest.raises(ValueError, match="save them to a dataset folder first"):
        export_command(TrainingSettings(data=[(shapes / "input" / "000.png", None)]))


def test_ddp_on_two_cpu_processes_validates_on_every_image_once(shapes, tmp_path):
    """Two processes, each validating half of the 5 images (the sampler pads to 6): the gathered
    metrics equal those of one process predicting all 5 with the saved model, as predict does (raw
    detections, then the model's NMS, every score from 0.01), and evaluating them."""
    from napari_faster_rcnn.core.evaluation.metrics import evaluate
    from napari_faster_rcnn.core.prediction.run import predict_images
    from napari_faster_rcnn.core.prediction.thresholds import Thresholds, apply_thresholds
    from napari_faster_rcnn.core.training.data_module import DetectionDataModule

    config = write_config(tmp_path / "run.yaml", run_config(shapes, tmp_path / "run", data={"ratios": [0.5, 0.5]}))
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SOURCE), os.environ.get("PYTHONPATH", "")])}
    completed = subprocess.run(
        [sys.executable, "-m", "napari_faster_rcnn.cli", "fit", "--config", str(config), "--trainer.devices", "2",
         "--trainer.strategy", "ddp"],
        env=environment, capture_output=True, text=True, timeout=240,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "Starting with 2 processes" in completed.stdout + completed.stderr
    # the main process tells the split and the summary, once
    assert completed.stdout.count("data: ") == 1 and completed.stdout.count("best checkpoint: ") == 1

    loaded = load_checkpoint(tmp_path / "run" / "checkpoints" / "best.ckpt")
    validation = DetectionDataModule(root=str(shapes), ratios=(0.5, 0.5)).val_dataset
    assert len(validation) == 5
    records, _ = predict_images(loaded.model, [sample.image for sample in validation.samples], loaded.classes)
    applied = Thresholds(0.01, loaded.config.box_nms_thresh)
    result = evaluate([sample.load() for sample in validation.samples],
                      [apply_thresholds(record.annotation, applied) for record in records], 0.5, classes=loaded.classes)
    assert loaded.metrics["val/voc_map"] == pytest.approx(result.voc.map, abs=1e-6)
    assert loaded.metrics["val/coco_map"] == pytest.approx(result.coco.map, abs=1e-6)
    for name in loaded.classes:
        assert loaded.metrics[f"val/ap/{name}"] == pytest.approx(result.voc.ap.get(name), abs=1e-6, nan_ok=True)
    assert loaded.global_step == 2  # 5 training images: 3 per process (padded), in batches of 2


def test_resuming_from_a_checkpoint_that_would_run_code_stops_with_one_line(shapes, tmp_path, capsys):
    import torch

    from tests.checkpoint_data import RunsCode

    marker = tmp_path / "pwned"
    tampered = tmp_path / "tampered.ckpt"
    torch.save({"state_dict": {}, "epoch": 0, "hyper_parameters": {"note": RunsCode(marker)}}, tampered)
    config = write_config(tmp_path / "run.yaml", run_config(shapes, tmp_path / "run"))

    assert main(["fit", "--config", str(config), "--ckpt_path", str(tampered)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"error: {tampered}: refused to load: the file would import ")
    assert lines[0].split("would import ")[1].split(",")[0] in ("posix.system", "os.system", "nt.system")
    assert "Traceback" not in captured.err + captured.out and "weights_only" not in captured.err
    assert not marker.exists()
    assert not (tmp_path / "run" / "checkpoints").exists()  # stopped before anything started

    missing = tmp_path / "missing.ckpt"
    assert main(["fit", "--config", str(config), "--ckpt_path", str(missing)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {missing}: no such checkpoint file"


# --- what fit tells a user -------------------------------------------------------------------------------


def with_an_empty_image(root: Path) -> Path:
    """A synthetic folder plus one image without objects (an annotation file with no boxes)."""
    import numpy as np
    from PIL import Image

    from napari_faster_rcnn.core.data.annotations import Annotation, save_annotation

    Image.fromarray(np.full((64, 64, 3), 40, np.uint8)).save(root / "input" / "empty.png")
    save_annotation(root / "target" / "empty.pt", Annotation(np.zeros((0, 4)), []))
    return root


def counted(root: Path) -> tuple[int, int, int]:
    """``(images, images without boxes, boxes)`` of a folder, from its files."""
    from napari_faster_rcnn.core.data.annotations import load_annotation

    boxes = [len(load_annotation(path)) for path in sorted((root / "target").glob("*.pt"))]
    return len(list((root / "input").glob("*.png"))), boxes.count(0), sum(boxes)


def described(counts) -> str:
    images, empty, boxes = counts
    return f"{images} images ({empty} without boxes), {boxes} boxes"


def best_row(metrics_csv: Path) -> dict:
    """The validation row of metrics.csv with the highest val/voc_map (the first one on a tie)."""
    import csv

    rows = [row for row in csv.DictReader(metrics_csv.open()) if row.get("val/voc_map")]
    return max(rows, key=lambda row: float(row["val/voc_map"]))


def printed_pair(line: str) -> tuple[float, float]:
    import re

    match = re.search(r"VOC AP@0.5 ([0-9.]+), COCO mAP ([0-9.]+)$", line)
    assert match, line
    return float(match.group(1)), float(match.group(2))


def test_fit_reports_the_split_warns_of_a_small_validation_and_ends_on_a_summary(tmp_path):
    """Run as a user runs it (a process of its own, all of its output read): the split at the
    start, the warning, no Lightning noise, and a summary whose numbers are metrics.csv's and
    the checkpoints'."""
    train = with_an_empty_image(write_synthetic_dataset(tmp_path / "train", 6, seed=4, height=64, width=64))
    validation = with_an_empty_image(write_synthetic_dataset(tmp_path / "val", 3, seed=5, height=64, width=64))
    run = tmp_path / "run"
    config = write_config(tmp_path / "run.yaml", run_config(train, run, data={"val_root": str(validation)},
                                                            trainer={"max_epochs": 2}))
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SOURCE), os.environ.get("PYTHONPATH", "")])}
    environment.pop("PYTHONWARNINGS", None)
    completed = subprocess.run([sys.executable, "-m", "napari_faster_rcnn.cli", "fit", "--config", str(config)],
                               env=environment, capture_output=True, text=True, timeout=240)
    assert completed.returncode == 0, completed.stderr[-3000:]
    out, err = completed.stdout, completed.stderr
    lines = out.splitlines()

    # the split, first
    train_counts, validation_counts = counted(train), counted(validation)
    assert train_counts[1] == validation_counts[1] == 1 and validation_counts[0] == 4
    assert lines[:4] == [f"data: all of {train} trains, {validation} validates",
                         f"  train: {described(train_counts)}", f"  validation: {described(validation_counts)}",
                         "pixels: uint8; the detector sees gray and RGB images as stored; values divided by 255 "
                         "(normalization auto)"]
    small = f"warning: validation holds only 4 images and {validation_counts[2]} boxes: its mAP can swing by about 0.2"
    assert small in err

    # the summary, last
    checkpoints = run / "checkpoints"
    best, last = load_checkpoint(checkpoints / "best.ckpt"), load_checkpoint(checkpoints / "last.ckpt")
    row = best_row(run / "logs" / "version_0" / "metrics.csv")
    start = lines.index(f"best checkpoint: {checkpoints / 'best.ckpt'} (epoch {row['epoch']}, step {best.global_step})")
    summary = lines[start:]
    assert summary[1] == f"last checkpoint: {checkpoints / 'last.ckpt'} (step {last.global_step})"
    assert last.global_step == 8  # 7 images in batches of 2, two epochs
    assert summary[2].startswith("best epoch's validation: ")
    assert printed_pair(summary[2]) == pytest.approx(
        (float(row["val/voc_map"]), float(row["val/coco_map"])), abs=5e-4)
    for line, name in zip(summary[3:6], SHAPE_CLASSES):
        assert line.startswith(f"  {name}: ")
        assert printed_pair(line) == pytest.approx(
            (float(row[f"val/ap/{name}"]), float(row[f"val/coco_ap/{name}"])), abs=5e-4)
    assert summary[6] == (f"trained on {described(train_counts)}; validated on {described(validation_counts)}")
    assert summary[7].startswith(small) and len(summary) == 8

    # Lightning's noise that is not about the run
    for noise in ("💡", "Tip:", "smaller than the logging interval", "deprecated", "Loading `train_dataloader`",
                  "Traceback"):
        assert noise not in out + err, noise


def test_fit_does_not_warn_when_validation_is_big_enough(tmp_path, capsys):
    train = write_synthetic_dataset(tmp_path / "train", 4, seed=4, height=64, width=64)
    validation = write_synthetic_dataset(tmp_path / "val", 12, seed=6, height=64, width=64)
    images, _, boxes = counted(validation)
    assert images >= 10 and boxes >= 20  # what the warning asks for
    config = write_config(tmp_path / "run.yaml", run_config(
        train, tmp_path / "run", data={"val_root": str(validation)}, trainer={"limit_val_batches": 1}))
    assert main(["fit", "--config", str(config)]) == 0
    captured = capsys.readouterr()
    assert f"  validation: {described(counted(validation))}" in captured.out.splitlines()
    assert "validation holds only" not in captured.out + captured.err  # (a warning about small boxes may come)
    assert f"best checkpoint: {tmp_path / 'run' / 'checkpoints' / 'best.ckpt'} (epoch 0, step 2)" in captured.out


def test_fit_model_auto_records_the_chosen_sizes_and_anchors_in_the_checkpoint(shapes, tmp_path, capsys):
    from napari_faster_rcnn.core.model.auto_size import auto_size
    from napari_faster_rcnn.core.model.config import preset
    from napari_faster_rcnn.core.training.data_module import DetectionDataModule

    config = run_config(shapes, tmp_path / "run", model={"auto": True})
    assert main(["fit", "--config", str(write_config(tmp_path / "run.yaml", config)),
                 "--trainer.max_steps", "1"]) == 0
    loaded = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    # the same training part as the run's (same ratios and seed): the checkpoint holds what auto chose
    data = DetectionDataModule(root=str(shapes), ratios=(0.6, 0.4), num_workers=0)
    expected = auto_size(preset("cpu", SHAPE_CLASSES, min_size=64, max_size=64), data.training_items).config
    assert loaded.config == expected
    assert (loaded.config.min_size, loaded.config.max_size) != (64, 64)
    assert f"auto sizing: min_size {expected.min_size}, max_size {expected.max_size}" in capsys.readouterr().err
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["model"]["auto"] is True


def test_fit_warns_when_most_boxes_fall_below_the_smallest_anchor(shapes, tmp_path, capsys):
    # 64 px shapes of 14-40 px resized to 32 px: most are below the cpu preset's 16 px anchors
    config = run_config(shapes, tmp_path / "run", model={"config": {"min_size": 32, "max_size": 32}})
    assert main(["fit", "--config", str(write_config(tmp_path / "run.yaml", config)),
                 "--trainer.max_steps", "1"]) == 0
    err = capsys.readouterr().err
    assert "warning: " in err and "smaller than the smallest anchor (16 px)" in err and "--model.auto true" in err


def test_fit_trains_on_tiles_given_on_the_command_line(tmp_path, capsys):
    from napari_faster_rcnn.core.model.checkpoints import read_checkpoint

    data = write_synthetic_dataset(tmp_path / "large", 3, seed=4, height=256, width=256, objects=(8, 12),
                                   sizes=(10, 24))
    config = run_config(data, tmp_path / "run", model={"config": None})  # the cpu preset: 128 px
    config = write_config(tmp_path / "run.yaml", config)
    assert main(["fit", "--config", str(config), "--trainer.max_steps", "4", "--data.tile_size", "128",
                 "--data.min_visible", "0.6"]) == 0
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert (saved["data"]["tile_size"], saved["data"]["min_visible"]) == (128, 0.6)
    checkpoint = read_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert checkpoint["datamodule_hyper_parameters"]["training_tile_size"] == 128
    # the summary says how its validation figure was measured: whole images predicted in tiles
    lines = capsys.readouterr().out.splitlines()
    metrics = next(index for index, line in enumerate(lines) if line.startswith("best epoch's validation: "))
    assert lines[metrics + 1 + len(SHAPE_CLASSES)] == ("  (the validation images predicted in tiles of 128 px, "
                                                        "merged as 'predict' merges them, and measured whole)")


def test_fit_takes_channels_and_prediction_repeats_them(shapes, tmp_path):
    from PIL import Image

    from napari_faster_rcnn.core.prediction.run import predict_images

    config = write_config(tmp_path / "run.yaml", run_config(shapes, tmp_path / "run"))
    assert main(["fit", "--config", str(config), "--trainer.max_steps", "1", "--model.channels", "2,0"]) == 0
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["model"]["channels"] == "2,0"
    loaded = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert loaded.config.channels == (2, 0)
    # prediction reads channel 2 of each image: a gray image (one channel) is skipped, saying why
    gray = tmp_path / "gray.png"
    Image.new("L", (64, 64)).save(gray)
    colour = next((shapes / "input").glob("*.png"))
    records, summary = predict_images(loaded.model, [colour, gray], loaded.classes)
    assert summary.images == 1
    assert [reason for _, reason in summary.skipped] == ["has 1 channel (0 to 0), but the channels [2, 0] ask for 2"]


def test_fit_says_what_it_does_with_float_stains(shapes, tmp_path, capsys):
    """Stains unmixed into float optical densities (axes CYX, values far below 1), trained on one
    channel: the run says so, and how the values are scaled, before it trains."""
    import numpy as np
    import tifffile
    from PIL import Image

    folder = tmp_path / "stains"
    folder.mkdir()
    for image in sorted((shapes / "input").glob("*.png")):
        pixels = np.asarray(Image.open(image).convert("RGB"), np.float32).transpose(2, 0, 1) / 2550
        tifffile.imwrite(folder / f"{image.stem}.ome.tif", pixels, metadata={"axes": "CYX"})
        (folder / f"{image.stem}.ome.pt").write_bytes((shapes / "target" / f"{image.stem}.pt").read_bytes())
    config = write_config(tmp_path / "run.yaml", run_config(folder, tmp_path / "run"))
    assert main(["fit", "--config", str(config), "--trainer.max_steps", "1", "--model.channels", "1"]) == 0
    printed = capsys.readouterr().out
    assert ("pixels: float32, 3 channels (C); the detector sees channel 1 (as gray); values scaled per image "
            "from its 1st to its 99.8th percentile (normalization auto)") in printed.splitlines(), printed[:1500]
    # and the checkpoint says it to whoever loads it (Predict, Label boxes' suggestions)
    described = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt").description().splitlines()
    assert described[-1] == ("sees channel 1 (as gray); 8-bit values divided by 255, others scaled per image from "
                             "its 1st to its 99.8th percentile (normalization auto)")


def test_fits_validation_figure_on_tiles_is_what_predict_and_evaluate_give(tmp_path):
    """Trained on tiles of images larger than a tile: the best checkpoint's validation AP is the AP that
    ``predict --score 0.01`` of the validation images with that checkpoint (its own tiling and NMS) then
    ``evaluate`` give."""
    from napari_faster_rcnn.core.data.annotations import load_annotation
    from napari_faster_rcnn.core.evaluation.metrics import evaluate
    from napari_faster_rcnn.core.prediction.run import predict_images
    from napari_faster_rcnn.core.prediction.thresholds import Thresholds, apply_thresholds
    from napari_faster_rcnn.core.prediction.tiles import chosen_tiling

    options = {"height": 256, "width": 230, "objects": (8, 12), "sizes": (10, 30)}
    train = write_synthetic_dataset(tmp_path / "train", 2, seed=4, **options)
    validation = write_synthetic_dataset(tmp_path / "val", 2, seed=9, **options)
    config = write_config(tmp_path / "run.yaml", run_config(train, tmp_path / "run", model={"config": None},
                                                            data={"val_root": str(validation)}))
    assert main(["fit", "--config", str(config), "--trainer.max_steps", "8", "--data.tile_size", "128"]) == 0
    best = load_checkpoint(tmp_path / "run" / "checkpoints" / "best.ckpt")
    tiling = chosen_tiling(best.config, best.training_images)  # what predict and the Predict widget use
    assert tiling.tile == 128
    images = sorted((validation / "input").glob("*.png"))
    records, _ = predict_images(best.model, images, best.classes, tiling=tiling)  # raw, as predict runs it
    applied = Thresholds(0.01, best.config.box_nms_thresh)  # then --score 0.01, and the default NMS
    truths = [load_annotation(validation / "target" / f"{image.stem}.pt") for image in images]
    result = evaluate(truths, [apply_thresholds(record.annotation, applied) for record in records], 0.5,
                      classes=best.classes)
    assert best.metrics["val/voc_map"] == pytest.approx(result.voc.map, abs=1e-6)
    assert best.metrics["val/coco_map"] == pytest.approx(result.coco.map, abs=1e-6)
