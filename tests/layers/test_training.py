"""A training run as the widget drives it, without Qt (_training): its progress as plain values,
errors, the job a worker runs, the garbage collector's freeze, the output folder."""

from __future__ import annotations

import gc

import pytest

from napari_faster_rcnn.core.training.callbacks import TrainingEvent
from napari_faster_rcnn.core.training.settings import TrainingSettings
from napari_faster_rcnn.layers import training


def test_progress_keeps_the_points_and_says_epoch_and_step():
    progress = training.TrainingProgress(epochs=30)
    progress.update(TrainingEvent("log", message="reading the dataset"))
    progress.update(TrainingEvent("start", total_steps=10, steps_per_epoch=5))
    assert progress.total_epochs == 2 and progress.description() == "epoch 1 of 2, step 0 of 10"
    for step in range(1, 7):
        progress.update(TrainingEvent("step", step=step, epoch=(step - 1) // 5, losses={"loss": 1 / step},
                                      learning_rate=0.01))
    progress.update(TrainingEvent("epoch", step=5, metrics={"val/voc_map": 0.4, "val/coco_map": 0.2}))
    progress.update(TrainingEvent("checkpoint", step=5, path="run/checkpoints/best.ckpt", message="best"))
    assert progress.loss_steps == [1, 2, 3, 4, 5, 6] and progress.losses[-1] == pytest.approx(1 / 6)
    assert (progress.map_steps, progress.voc_map, progress.coco_map) == ([5], [0.4], [0.2])
    assert progress.description() == "epoch 2 of 2, step 6 of 10, loss 0.167"
    assert progress.checkpoints["best"].name == "best.ckpt" and progress.messages == ["reading the dataset"]


def test_errors_say_the_cause_and_what_to_change_when_memory_runs_out():
    import torch

    message = training.error_message(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert message.startswith("out of memory (CUDA out of memory.") and "batch size" in message
    assert training.error_message(ValueError("a.png: cannot read")) == "a.png: cannot read"
    assert training.error_message(KeyError("boxes")) == "KeyError: 'boxes'"


def test_a_job_turns_runtime_errors_into_failures_a_worker_reports(monkeypatch):
    def broken(settings, stop=None):
        yield TrainingEvent("log", message="reading the dataset")
        raise RuntimeError("Caught ValueError in DataLoader worker process 0")

    monkeypatch.setattr("napari_faster_rcnn.core.training.run.iter_training", broken)
    job = training.TrainingJob(TrainingSettings(data="unused"))
    events = job.events()
    assert next(events).kind == "log" and not job.done
    with pytest.raises(training.TrainingFailed, match="DataLoader worker") as failure:
        next(events)
    assert isinstance(failure.value.__cause__, RuntimeError) and job.done and job.wait(0)
    assert not isinstance(failure.value, RuntimeError)


def test_objects_older_than_a_run_are_frozen_while_it_runs():
    before = gc.get_freeze_count()
    with training.older_objects_frozen():
        frozen = gc.get_freeze_count()
        with training.older_objects_frozen():
            # not frozen again (the count would grow by the objects made since); frozen objects that
            # another thread frees meanwhile leave the count, so it may shrink
            assert gc.get_freeze_count() <= frozen
        assert 0 < gc.get_freeze_count() <= frozen
    assert gc.get_freeze_count() == before == 0


def test_the_output_folder_suggested_is_a_new_one(tmp_path):
    root = tmp_path / "cells"
    assert training.suggest_output_folder(root) == tmp_path / "cells-runs" / "train"
    (tmp_path / "cells-runs" / "train" / "checkpoints").mkdir(parents=True)
    assert training.suggest_output_folder(root) == tmp_path / "cells-runs" / "train"  # no checkpoint yet
    (tmp_path / "cells-runs" / "train" / "checkpoints" / "last.ckpt").write_bytes(b"")
    assert training.suggest_output_folder(root) == tmp_path / "cells-runs" / "train-2"
