"""``napari-faster-rcnn fit --finetune_from CKPT``: continue training with new labels from a model."""

from __future__ import annotations

import numpy as np
import yaml

from napari_faster_rcnn.cli import main
from napari_faster_rcnn.core.data.annotations import Annotation, save_annotation
from napari_faster_rcnn.core.data.synthetic import write_synthetic_dataset
from napari_faster_rcnn.core.model.checkpoints import load_checkpoint
from tests.checkpoint_data import tiny_checkpoint


def test_finetune_from_starts_a_new_run_from_the_checkpoint(tmp_path_factory, tmp_path, capsys):
    checkpoint = tiny_checkpoint(tmp_path_factory)
    trained = load_checkpoint(checkpoint)
    data = write_synthetic_dataset(tmp_path / "new", 6, seed=9, height=64, width=64)
    args = ["fit", "--data.root", str(data), "--data.ratios", "[0.67, 0.33]", "--data.batch_size", "2",
            "--data.num_workers", "0", "--trainer.max_steps", "1", "--trainer.accelerator", "cpu",
            "--trainer.enable_progress_bar", "false", "--model.optimizer", "adamw", "--model.warmup_steps", "1",
            "--model.auto", "true", "--trainer.default_root_dir", str(tmp_path / "run"),
            "--finetune_from", str(checkpoint)]
    assert main(args) == 0
    continued = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert continued.global_step == 1  # a fresh run, not a resumed one
    assert continued.config.weights == str(checkpoint.resolve())
    assert continued.classes == trained.classes and continued.config.min_size == trained.config.min_size
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["finetune_from"] == str(checkpoint) and saved["model"]["auto"] is False

    save_annotation(data / "target" / "000.pt", Annotation(np.array([[2, 2, 30, 30]]), ["star"], classes=["star"]))
    capsys.readouterr()
    assert main([*args[:-4], "--trainer.default_root_dir", str(tmp_path / "run2"),
                 "--finetune_from", str(checkpoint)]) == 2
    err = capsys.readouterr().err
    assert "not trained for: star" in err and "Traceback" not in err
