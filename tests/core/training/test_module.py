"""Training runs of a tiny detector, headless: events, checkpoints, stop, resume, early
stopping, errors, and checkpoints that would run code."""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest
import torch

from napari_faster_rcnn.core.data.image_files import ImageReadError
from napari_faster_rcnn.core.data.synthetic import SHAPE_CLASSES, write_synthetic_dataset
from napari_faster_rcnn.core.model.checkpoints import CheckpointError, load_checkpoint
from napari_faster_rcnn.core.model.config import preset
from napari_faster_rcnn.core.model.config_rules import ConfigError
from napari_faster_rcnn.core.progress import collect
from napari_faster_rcnn.core.training.callbacks import StopRequest
from napari_faster_rcnn.core.training.run import build_run, iter_training, run_training
from napari_faster_rcnn.core.training.settings import TrainingSettings
from napari_faster_rcnn.core.training.transforms import AugmentationConfig

SMALL = {"min_size": 64, "max_size": 64}  # the cpu preset at 64 px: a step in tens of milliseconds


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """Ten synthetic 64 px images in input/ + target/."""
    return write_synthetic_dataset(tmp_path_factory.mktemp("data") / "shapes", 10, seed=5, height=64, width=64)


def tiny(data, output, **changes) -> TrainingSettings:
    """A run of the cpu preset at 64 px: 6 training images, 4 validation images, batches of 2."""
    values = dict(data=data, output=output, preset="cpu", model=SMALL, split_ratios=(0.6, 0.4), epochs=2,
                  batch_size=2, num_workers=0, optimizer="adamw", learning_rate=1e-3, warmup_steps=2,
                  accelerator="cpu", augmentation=AugmentationConfig.none())
    values.update(changes)
    return TrainingSettings(**values)



def test_a_run_reports_steps_epochs_and_checkpoints(shapes, tmp_path):
    events, result = collect(iter_training(tiny(shapes, tmp_path / "run")))
    kinds = [event.kind for event in events]
    assert kinds.index("start") < kinds.index("step")
    start = events[kinds.index("start")]
    assert (start.total_steps, start.steps_per_epoch) == (6, 3)

    steps = [event for event in events if event.kind == "step"]
    assert [event.step for event in steps] == [1, 2, 3, 4, 5, 6]
    assert set(steps[0].losses) == {"loss", "loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    assert steps[0].losses["loss"] == pytest.approx(sum(v for k, v in steps[0].losses.items() if k != "loss"),
                                                    rel=1e-5)
    assert steps[0].learning_rate < steps[1].learning_rate  # warming up

    epochs = [event for event in events if event.kind == "epoch"]
    assert [event.epoch for event in epochs] == [0, 1]
    metrics = epochs[-1].metrics
    for key in ("val/voc_map", "val/coco_map", "val/coco_map50", *(f"val/ap/{name}" for name in SHAPE_CLASSES)):
        assert 0.0 <= metrics[key] <= 1.0, key

    written = {(event.message, event.path.name) for event in events if event.kind == "checkpoint"}
    assert written == {("best", "best.ckpt"), ("last", "last.ckpt")}
    assert result.best_checkpoint == tmp_path / "run" / "checkpoints" / "best.ckpt"
    assert result.last_checkpoint.is_file()
    assert (result.steps, result.epochs, result.stopped) == (6, 2, False)
    assert result.metrics == metrics
    assert result.classes == list(SHAPE_CLASSES)

    with open(tmp_path / "run" / "logs" / "version_0" / "metrics.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert {"train/loss", "train/loss_classifier", "val/voc_map", "val/coco_map", "val/ap/circle"} <= set(rows[0])
    assert [float(row["val/voc_map"]) for row in rows if row["val/voc_map"]] == pytest.approx(
        [event.metrics["val/voc_map"] for event in epochs])


def test_checkpoint_loads_weights_only_and_predicts_as_the_trained_module(shapes, tmp_path):
    trainer, module, data = build_run(tiny(shapes, tmp_path / "run", epochs=1))
    trainer.fit(module, datamodule=data)
    path = tmp_path / "run" / "checkpoints" / "last.ckpt"

    plain = torch.load(path, weights_only=True)  # no allowlist at all: plain data only
    assert plain["napari_faster_rcnn"]["classes"] == list(SHAPE_CLASSES)

    loaded = load_checkpoint(path)
    assert loaded.classes == list(SHAPE_CLASSES)
    assert loaded.config == module.config
    assert (loaded.epoch, loaded.global_step) == (0, 3)
    assert loaded.metrics == module.validation_metrics
    assert not loaded.model.training
    image = data.val_dataset[0][0]
    module.model.eval()
    with torch.no_grad():
        expected = module.model([image])[0]
        got = loaded.model([image])[0]
    assert len(got["boxes"]) > 0
    for key in ("boxes", "labels", "scores"):
        torch.testing.assert_close(got[key], expected[key])


def test_stop_ends_the_run_after_the_step_with_a_checkpoint(shapes, tmp_path, monkeypatch):
    monkeypatch.setattr("napari_faster_rcnn.core.training.run.BUNDLE_SECONDS", 0.0)  # each step at once
    stop = StopRequest()
    generator = iter_training(tiny(shapes, tmp_path / "run", epochs=50), stop)
    events = []
    for event in generator:
        events.append(event)
        if event.kind == "step" and event.step == 4:
            stop.request()
    steps = [event.step for event in events if event.kind == "step"]
    assert steps[-1] <= 5  # the step in progress when asked, at most
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt").global_step == steps[-1]


def test_stop_returns_a_result_marked_stopped(shapes, tmp_path):
    stop = StopRequest()
    stop.request()  # before the first step: nothing trains, nothing breaks
    result = run_training(tiny(shapes, tmp_path / "run", epochs=50), stop=stop)
    assert result.stopped and result.steps == 0


def test_resume_continues_the_step_count(shapes, tmp_path):
    first = run_training(tiny(shapes, tmp_path / "run", epochs=10, max_steps=4))
    assert first.steps == 4
    events, second = collect(iter_training(tiny(shapes, tmp_path / "run", epochs=10, max_steps=7,
                                                resume_from=first.last_checkpoint)))
    steps = [event.step for event in events if event.kind == "step"]
    assert steps == [5, 6, 7]
    assert second.steps == 7
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt").global_step == 7
    assert (tmp_path / "run" / "logs" / "version_1" / "metrics.csv").is_file()


def test_a_run_folder_with_checkpoints_is_not_overwritten_unless_asked(shapes, tmp_path):
    run_training(tiny(shapes, tmp_path / "run", epochs=1))
    with pytest.raises(FileExistsError, match="holds the checkpoints of another run"):
        run_training(tiny(shapes, tmp_path / "run", epochs=1))
    (tmp_path / "run" / "notes.txt").write_text("mine")
    result = run_training(tiny(shapes, tmp_path / "run", epochs=1, overwrite=True))
    assert result.steps == 3 and (tmp_path / "run" / "notes.txt").read_text() == "mine"


def test_early_stopping_ends_the_run_when_the_map_stops_improving(shapes, tmp_path):
    # A score threshold of 1 keeps no detection: the mAP is 0 at every validation, never better.
    result = run_training(tiny(shapes, tmp_path / "run", epochs=20, early_stopping_patience=2,
                               validation_score_threshold=1.0))
    assert result.epochs == 3  # the first validation sets the best; two more without improvement
    assert result.metrics["val/voc_map"] == 0.0


def test_an_unreadable_image_is_raised_from_the_generator_naming_it(shapes, tmp_path):
    data = write_synthetic_dataset(tmp_path / "data", 6, seed=1, height=64, width=64)
    (data / "input" / "003.png").write_bytes(b"not an image")
    generator = iter_training(tiny(data, tmp_path / "run"))
    with pytest.raises(ImageReadError, match="003.png"):
        collect(generator)


def test_an_image_damaged_after_the_dataset_was_built_is_named_from_a_loader_worker(tmp_path):
    data = write_synthetic_dataset(tmp_path / "data", 10, seed=1, height=64, width=64)
    damaged = data / "input" / "004.png"
    damaged.write_bytes(damaged.read_bytes()[:120])  # the header (and the size) stays readable
    settings = tiny(data, tmp_path / "run", split_ratios=(1.0, 0.0), validation=False, num_workers=1, cache=False)
    with pytest.raises(RuntimeError, match=r"^\S*004.png: image data is damaged .*\(in a DataLoader worker\)$"):
        run_training(settings)


def test_a_model_config_with_other_classes_is_refused(shapes, tmp_path):
    config = preset("cpu", ["cat", "dog"], **SMALL)
    with pytest.raises(ConfigError, match=r"\['cat', 'dog'\].*\['circle', 'square', 'triangle'\]"):
        run_training(tiny(shapes, tmp_path / "run", model=config))


def test_resuming_with_other_classes_is_refused_naming_the_checkpoint(shapes, tmp_path):
    first = run_training(tiny(shapes, tmp_path / "run", epochs=1))
    reordered = ["square", "circle", "triangle"]  # the same number of classes: the weights alone would fit
    with pytest.raises(CheckpointError, match=r"last.ckpt: it was trained for the classes \['circle', 'square'"):
        run_training(tiny(shapes, tmp_path / "resumed", classes=reordered, resume_from=first.last_checkpoint))


class RunsCode:
    """Unpickling this would create the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_that_would_run_code_is_refused_and_runs_nothing(shapes, tmp_path):
    result = run_training(tiny(shapes, tmp_path / "run", epochs=1))
    checkpoint = torch.load(result.last_checkpoint, weights_only=True)
    marker = tmp_path / "pwned"
    checkpoint["hyper_parameters"]["note"] = RunsCode(marker)
    tampered = tmp_path / "tampered.ckpt"
    torch.save(checkpoint, tampered)

    with pytest.raises(CheckpointError, match=r"tampered.ckpt: refused to load: the file would import (posix|os)"):
        load_checkpoint(tampered)
    # resuming reads it through the same weights-only loading
    with pytest.raises(CheckpointError, match=r"tampered.ckpt: refused to load.*nothing from the file was run"):
        run_training(tiny(shapes, tmp_path / "resumed", resume_from=tampered))
    assert not marker.exists()


def test_a_file_that_is_not_a_training_checkpoint_is_refused(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"weight": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="weights.pt: not a napari-faster-rcnn training checkpoint"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="missing.ckpt: no such checkpoint file"):
        load_checkpoint(tmp_path / "missing.ckpt")


def test_validation_counts_each_image_once_in_id_order():
    from napari_faster_rcnn.core.training.validation import ValidationCollector

    collector = ValidationCollector(["a", "b"])
    box = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    target = {"boxes": box, "labels": torch.tensor([2]), "image_id": torch.tensor(1)}
    found = {"boxes": box, "labels": torch.tensor([2]), "scores": torch.tensor([0.9])}
    missed = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64), "scores": torch.zeros(0)}
    other = {"boxes": box, "labels": torch.tensor([1]), "image_id": torch.tensor(0)}
    collector.add([found, missed], [target, other])
    collector.add([found], [target])  # a padded repeat, as a distributed sampler makes
    ground_truths, predictions = collector.annotations()
    assert [a.labels for a in ground_truths] == [["a"], ["b"]]
    metrics = collector.compute()
    assert metrics["val/ap/b"] == 1.0 and metrics["val/ap/a"] == 0.0
    assert metrics["val/voc_map"] == 0.5


def test_the_schedule_warms_up_then_follows_a_cosine():
    from napari_faster_rcnn.core.training.optimization import schedule_factor

    factors = [schedule_factor(step, 100, "cosine", warmup_steps=10) for step in range(101)]
    assert factors[0] == pytest.approx(0.001)
    assert factors[5] == pytest.approx(0.001 + 0.999 * 0.5)
    assert factors[10] == pytest.approx(1.0)
    assert factors[55] == pytest.approx(0.5)
    assert factors[100] == pytest.approx(0.0)
    assert np.all(np.diff(factors[10:]) <= 0)
    steps = [schedule_factor(step, 100, "multistep", 0, milestones=(0.5, 0.8), gamma=0.1) for step in (49, 50, 80)]
    assert steps == pytest.approx([1.0, 0.1, 0.01])


def test_best_checkpoint_holds_the_highest_validation_map_of_the_run(shapes, tmp_path, monkeypatch):
    from napari_faster_rcnn.core.model.checkpoints import read_checkpoint
    from napari_faster_rcnn.core.training.validation import ValidationCollector

    # A tiny model's mAP barely moves in three epochs; these values make the best epoch unmistakable
    # (neither the first nor the last), whatever the weights learn.
    scripted = iter([0.2, 0.7, 0.4])
    compute = ValidationCollector.compute

    def scripted_compute(self, iou_threshold=0.5):
        metrics = compute(self, iou_threshold)
        metrics["val/voc_map"] = next(scripted)
        return metrics

    monkeypatch.setattr(ValidationCollector, "compute", scripted_compute)
    result = run_training(tiny(shapes, tmp_path / "run", epochs=3))
    with open(tmp_path / "run" / "logs" / "version_0" / "metrics.csv", newline="") as file:
        validated = [(float(row["val/voc_map"]), int(row["epoch"])) for row in csv.DictReader(file)
                     if row["val/voc_map"]]
    assert [value for value, _ in validated] == pytest.approx([0.2, 0.7, 0.4])
    highest, epoch = max(validated)
    best = load_checkpoint(result.best_checkpoint)
    assert best.metrics["val/voc_map"] == pytest.approx(highest)
    assert best.epoch == epoch == 1
    stored = [state for key, state in read_checkpoint(result.best_checkpoint)["callbacks"].items()
              if key.startswith("ModelCheckpoint") and state.get("monitor") == "val/voc_map"]
    assert [float(state["best_model_score"]) for state in stored] == pytest.approx([highest])
