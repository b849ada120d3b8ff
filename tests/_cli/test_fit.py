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
    assert main(["fit", "--config", str(config), "--trainer.max_steps", "2", "--data.batch_size", "3"]) == 0

    run = tmp_path / "run"
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["trainer"]["max_steps"] == 2 and saved["data"]["batch_size"] == 3
    assert saved["model"]["preset"] == "cpu" and "classes" not in saved["model"]  # linked from the data
    assert (run / "checkpoints" / "best.ckpt").is_file()
    loaded = load_checkpoint(run / "checkpoints" / "last.ckpt")
    assert loaded.global_step == 2 and loaded.classes == list(SHAPE_CLASSES)
    assert loaded.config.min_size == 64 and loaded.config.backbone == "resnet18_slim"
    assert loaded.hyperparameters["optimizer"] == "adamw"
    assert "val/voc_map" in (run / "logs" / "version_0" / "metrics.csv").read_text().splitlines()[0]


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
    metrics equal those of one process predicting all 5 with the saved model."""
    from napari_faster_rcnn.core.training.data_module import DetectionDataModule
    from napari_faster_rcnn.core.training.validation import predict_dataset

    config = write_config(tmp_path / "run.yaml", run_config(shapes, tmp_path / "run", data={"ratios": [0.5, 0.5]}))
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SOURCE), os.environ.get("PYTHONPATH", "")])}
    completed = subprocess.run(
        [sys.executable, "-m", "napari_faster_rcnn.cli", "fit", "--config", str(config), "--trainer.devices", "2",
         "--trainer.strategy", "ddp"],
        env=environment, capture_output=True, text=True, timeout=240,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "Starting with 2 processes" in completed.stdout + completed.stderr

    loaded = load_checkpoint(tmp_path / "run" / "checkpoints" / "best.ckpt")
    validation = DetectionDataModule(root=str(shapes), ratios=(0.5, 0.5)).val_dataset
    assert len(validation) == 5
    expected = predict_dataset(loaded.model, validation, score_threshold=0.01).compute()
    assert loaded.metrics == pytest.approx(expected, abs=1e-6, nan_ok=True)
    assert loaded.global_step == 2  # 5 training images: 3 per process (padded), in batches of 2
