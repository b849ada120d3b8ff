"""Continue training with new labels: the run starts from the checkpoint's weights, config and classes."""

import dataclasses

import numpy as np
import pytest
import torch

from napari_faster_rcnn.core.data.annotations import Annotation, load_annotation, save_annotation
from napari_faster_rcnn.core.data.synthetic import write_synthetic_dataset
from napari_faster_rcnn.core.model.checkpoints import load_checkpoint
from napari_faster_rcnn.core.training.finetune import finetune_config, finetune_settings
from napari_faster_rcnn.core.training.run import build_module, run_training
from napari_faster_rcnn.core.training.settings import TrainingSettings
from napari_faster_rcnn.core.training.transforms import AugmentationConfig
from tests.checkpoint_data import tiny_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory)


def settings_for(data, output):
    return TrainingSettings(data=data, output=output, preset="cpu", model={"min_size": 64, "max_size": 64},
                            split_ratios=(0.67, 0.33), epochs=1, max_steps=1, batch_size=2, num_workers=0,
                            accelerator="cpu", augmentation=AugmentationConfig.none(), warmup_steps=1, seed=1,
                            auto_size=True)


def test_continuing_starts_from_the_checkpoints_weights_not_random_ones(checkpoint, tmp_path):
    data = write_synthetic_dataset(tmp_path / "new", 4, seed=11, height=64, width=64)
    trained = load_checkpoint(checkpoint)
    settings = finetune_settings(checkpoint, settings_for(data, tmp_path / "run"))
    assert settings.model.classes == trained.config.classes and settings.classes == trained.classes
    assert settings.auto_size is False and settings.resume_from is None
    assert settings.model.min_size == trained.config.min_size and settings.model.anchors() == trained.config.anchors()

    start = build_module(settings, settings.classes).model.state_dict()
    saved = trained.model.state_dict()
    assert set(start) == set(saved)
    for name, value in saved.items():
        torch.testing.assert_close(start[name], value, msg=name)
    # from scratch, the same settings start elsewhere
    scratch = build_module(dataclasses.replace(settings_for(data, tmp_path / "other"), auto_size=False),
                           trained.classes).model.state_dict()
    assert not torch.equal(scratch["roi_heads.box_predictor.cls_score.weight"],
                           saved["roi_heads.box_predictor.cls_score.weight"])

    # and a run trains on from there, in a new folder, with a fresh optimizer (step count from 0)
    result = run_training(settings)
    assert result.steps == 1 and result.last_checkpoint is not None
    assert load_checkpoint(result.last_checkpoint).classes == trained.classes


def test_a_subset_of_the_classes_is_fine_and_new_classes_are_refused(checkpoint, tmp_path):
    data = write_synthetic_dataset(tmp_path / "new", 3, seed=12, height=64, width=64)
    first = sorted((data / "target").glob("*.pt"))[0]
    truth = load_annotation(first)
    only_circles = Annotation(truth.boxes[:1], ["circle"], classes=["circle"])
    save_annotation(first, only_circles)
    finetune_settings(checkpoint, settings_for(data, tmp_path / "run"))  # classes it knows: fine
    save_annotation(first, Annotation(np.array([[2, 2, 20, 20]]), ["star"], classes=["star"]))
    with pytest.raises(ValueError, match=r"not trained for: star.*rename those labels"):
        finetune_settings(checkpoint, settings_for(data, tmp_path / "run2"))


def test_a_file_that_is_no_checkpoint_is_refused(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"a": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="weights.pt"):
        finetune_config(path)
