"""Continue training with new labels: fine-tune a trained model rather than start from scratch.

A new run starts from a checkpoint's weights and its model config (classes,
image sizes, anchors, normalization, BatchNorm and trainable blocks as that run
had them), with a fresh optimizer and schedule, on
the data as it is now (the labels added or corrected since). It is not a
resume: the optimizer state, the epoch count and the run folder are new.

The model keeps its classes: labels of a class the model was not trained for
are refused, with the classes named (rename them, or train a new model).
Classes the model knows but the new labels lack are kept (their box head
outputs stay as trained).

The weights are the config's ``weights`` set to the checkpoint file, which
:func:`~napari_faster_rcnn.core.model.detector.build_model` reads weights-only;
``fit`` does the same with ``--finetune_from CKPT``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from napari_faster_rcnn.core.model.checkpoints import CheckpointError, read_checkpoint
from napari_faster_rcnn.core.model.config import ModelConfig
from napari_faster_rcnn.core.training.settings import TrainingSettings

__all__ = ["check_finetune_classes", "finetune_config", "finetune_settings"]


def finetune_config(checkpoint: str | Path) -> ModelConfig:
    """The model config of ``checkpoint`` with its weights the checkpoint's own.

    Raises
    ------
    CheckpointError
        For a missing, unreadable or refused file, or one without a valid model config.
    """
    from napari_faster_rcnn.core.model.backbones import frozen_batch_norm, trainable_layers
    from napari_faster_rcnn.core.model.config_rules import ConfigError

    path = Path(checkpoint).resolve()
    content = read_checkpoint(path)
    values = (content.get("napari_faster_rcnn") or {}).get("config") or dict(
        content.get("hyper_parameters") or {}).get("config")
    if not isinstance(values, dict) or "state_dict" not in content:
        raise CheckpointError(f"{path}: not a napari-faster-rcnn training checkpoint (no model config and weights "
                              "in it); continue training needs the checkpoint of a run")
    if "normalization" not in values:  # saved before the option: scaled by the type's own range
        values = {**values, "normalization": "none"}
    try:
        trained = ModelConfig.from_dict(values)
        # the same network as trained: BatchNorm and the trainable blocks as that run resolved them
        # (left to their defaults, they would follow "starts from weights" now)
        return ModelConfig.from_dict({**values, "weights": str(path), "frozen_batch_norm": frozen_batch_norm(trained),
                                      "trainable_backbone_layers": trainable_layers(trained)})
    except ConfigError as error:
        raise CheckpointError(f"{path}: the model config in it is not valid: {error}") from None


def check_finetune_classes(model_classes: Sequence[str], data_classes: Sequence[str], checkpoint=None) -> None:
    """Refuse labels of classes the model was not trained for (a ``ValueError`` naming them)."""
    from napari_faster_rcnn.core.evaluation.matching import map_labels

    known = list(model_classes)
    new = [name for name, mapped in zip(data_classes, map_labels(list(data_classes), known)) if mapped not in known]
    if new:
        where = f" ({checkpoint})" if checkpoint is not None else ""
        raise ValueError(
            f"the labels have class(es) the model{where} was not trained for: {', '.join(new)}; continuing "
            f"keeps the model's classes ({', '.join(known)}): rename those labels to one of them, or train a new "
            "model (Train) to learn new classes")


def finetune_settings(checkpoint: str | Path, settings: TrainingSettings) -> TrainingSettings:
    """``settings`` made to fine-tune the model of ``checkpoint`` on their data.

    The model config (classes included) is the checkpoint's, its weights the
    checkpoint's; sizes are not fitted again (``auto_size`` off) and nothing is
    resumed (a fresh optimizer). Everything else (epochs, learning rate, data,
    output folder) is ``settings``'.

    Raises
    ------
    CheckpointError, ValueError
        For a checkpoint that cannot be read, or labels of a class the model does not know.
    """
    from napari_faster_rcnn.core.training.samples import dataset_classes

    config = finetune_config(checkpoint)
    sources = [settings.data] if isinstance(settings.data, (str, Path)) else list(settings.data)
    if settings.validation_data is not None:
        validation = settings.validation_data
        sources += [validation] if isinstance(validation, (str, Path)) else list(validation)
    check_finetune_classes(config.classes, dataset_classes(sources), checkpoint)
    return dataclasses.replace(settings, model=config, classes=list(config.classes), auto_size=False,
                               resume_from=None)
