"""A training run's settings as plain values, and the command line that repeats them.

:class:`TrainingSettings` is what the "Train detector" widget fills in and
:func:`.training_run.iter_training` runs; :class:`TrainingResult` is what a run
leaves; :func:`export_command` turns settings into the YAML and the
``napari-faster-rcnn fit --config`` command that repeat the run headless, on a
GPU server or a cluster (the same module, data module and callbacks run there).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from napari_faster_rcnn.core.model.config import ModelConfig
from napari_faster_rcnn.core.training.summary import RunSummary
from napari_faster_rcnn.core.training.transforms import AugmentationConfig

__all__ = ["TrainingResult", "TrainingSettings", "export_command", "is_folder"]


@dataclass
class TrainingSettings:
    """Everything a training run needs, as plain values.

    Attributes
    ----------
    data
        A dataset folder, or samples (:class:`~.samples.TrainingSample`,
        ``(image path, annotation)`` pairs) as the layers in napari give them.
    output
        The run folder (checkpoints, logs).
    validation_data
        A separate validation folder or samples; then ``data`` is not split.
    split_ratios, split_seed
        ``(train, validation, test)`` fractions of ``data`` and the seed of the split.
    classes
        The class list in class-id order (default: the data's).
    model
        A whole :class:`~.config.ModelConfig` (its classes must be the data's),
        or overrides of the ``preset``'s fields (``{"weights": "none"}``), or None.
    preset
        ``"default"``, ``"mobilenet"`` or ``"cpu"`` (see :data:`~.config.PRESETS`).
    auto_size
        Fit ``min_size``, ``max_size`` and the anchors to the training boxes
        (:func:`~napari_faster_rcnn.core.model.auto_size.auto_size`; ``fit --model.auto true``).
    augmentation
        Random augmentation of the training images.
    epochs, max_steps
        The run ends at whichever comes first (``max_steps=-1``: no step limit).
    batch_size, optimizer, learning_rate, weight_decay, momentum, scheduler, warmup_steps
        See :class:`~.training.DetectorModule` (learning rate None: the optimizer's default).
    accelerator, precision
        Lightning's: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"mps"``; ``"32-true"``,
        ``"16-mixed"``, ``"bf16-mixed"``.
    tile_size, min_visible
        Train on tiles of this many pixels cut from larger images (None: the
        model's ``max_size``; 0: whole images), keeping a box cut by a tile
        border when ``min_visible`` of its area is inside (see
        :mod:`~napari_faster_rcnn.core.training.tiling`).
    num_workers, cache
        DataLoader workers (None: one per CPU but one, at most 4); keep images in memory.
    validation, validation_every_epochs, early_stopping_patience
        Validate every so many epochs (``val/voc_map`` picks ``best.ckpt``);
        stop after so many validations without improvement (None: never).
    gradient_clip, seed, resume_from, overwrite
        Gradient norm clipping; the seed; a checkpoint to resume; start over in
        an ``output`` that holds a previous run's checkpoints.
    iou_threshold, validation_score_threshold
        The IoU of the VOC AP; the box head's score threshold during validation.
    progress_bar
        Lightning's progress bar on the terminal (the widget shows its own).
    cpu_threads
        torch's CPU threads for the run (``torch.set_num_threads``, for the
        whole process); None leaves torch's choice. On a CPU in a viewer, one
        per core but one keeps a core for the viewer: torch's threads wait for
        each other at every operation, so a core taken by something else stalls
        every step.
    """

    data: str | Path | Sequence
    output: str | Path = "runs/train"
    validation_data: str | Path | Sequence | None = None
    split_ratios: tuple[float, ...] = (0.8, 0.1, 0.1)
    split_seed: int = 0
    classes: Sequence[str] | None = None
    model: ModelConfig | Mapping | None = None
    preset: str = "default"
    auto_size: bool = False
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    epochs: int = 30
    max_steps: int = -1
    batch_size: int = 4
    optimizer: str = "sgd"
    learning_rate: float | None = None
    weight_decay: float = 1e-4
    momentum: float = 0.9
    scheduler: str = "cosine"
    warmup_steps: int = 100
    accelerator: str = "auto"
    precision: str = "32-true"
    num_workers: int | None = None
    cache: bool = True
    tile_size: int | None = None
    min_visible: float = 0.5
    validation: bool = True
    validation_every_epochs: int = 1
    early_stopping_patience: int | None = None
    gradient_clip: float | None = None
    seed: int = 0
    resume_from: str | Path | None = None
    overwrite: bool = False
    iou_threshold: float = 0.5
    validation_score_threshold: float = 0.01
    progress_bar: bool = False
    cpu_threads: int | None = None


@dataclass
class TrainingResult:
    """What a finished (or stopped) run left.

    ``metrics`` are the last validation's; ``best_score`` is ``val/voc_map``
    of ``best_checkpoint`` (None without validation); ``summary`` is what the
    run tells a person at its end (:func:`~.summary.summary_lines`).
    """

    output: Path
    best_checkpoint: Path | None
    last_checkpoint: Path | None
    metrics: dict[str, float]
    best_score: float | None
    steps: int
    epochs: int
    stopped: bool
    seconds: float
    classes: list[str]
    summary: RunSummary | None = None


def is_folder(value) -> bool:
    """Whether data settings name a folder (rather than samples in memory)."""
    return isinstance(value, (str, os.PathLike))


def export_command(settings: TrainingSettings, config_path: str | Path = "run.yaml") -> tuple[str, str]:
    """``(yaml_text, command_line)`` that repeat ``settings`` headless with ``napari-faster-rcnn fit``.

    Write ``yaml_text`` to ``config_path``; the command line names that file.
    The data must be folders (layers held in memory cannot be named in a file:
    save them first). Paths are made absolute, so the file runs from anywhere;
    on a cluster, add ``--trainer.devices``, ``--trainer.num_nodes`` and
    ``--trainer.strategy ddp`` (see the README's Train section).

    Raises
    ------
    ValueError
        When the data are samples in memory.
    """
    import yaml

    if not is_folder(settings.data) or not (settings.validation_data is None or is_folder(settings.validation_data)):
        raise ValueError("the training data are images and boxes in memory; save them to a dataset folder first, "
                         "then export the command for that folder")
    model = settings.model
    classes = list(settings.classes) if settings.classes is not None else None
    if isinstance(model, ModelConfig):
        overrides, preset_name = model.to_dict(), None
        classes = classes or list(model.classes)
    else:
        overrides, preset_name = dict(model or {}), settings.preset
    overrides.pop("classes", None)  # the data's; data.classes fixes their order
    absolute = lambda path: None if path is None else str(Path(path).resolve())  # noqa: E731
    config = {
        "seed_everything": settings.seed,
        "trainer": {
            "default_root_dir": absolute(settings.output),
            "max_epochs": settings.epochs,
            "max_steps": settings.max_steps,
            "accelerator": settings.accelerator,
            "devices": 1,
            "precision": settings.precision,
            "check_val_every_n_epoch": settings.validation_every_epochs,
            "limit_val_batches": None if settings.validation else 0,
            "gradient_clip_val": settings.gradient_clip,
        },
        "model": {
            "config": overrides or None,
            "preset": preset_name,
            "auto": settings.auto_size,
            "optimizer": settings.optimizer,
            "learning_rate": settings.learning_rate,
            "weight_decay": settings.weight_decay,
            "momentum": settings.momentum,
            "scheduler": settings.scheduler,
            "warmup_steps": settings.warmup_steps,
            "iou_threshold": settings.iou_threshold,
            "validation_score_threshold": settings.validation_score_threshold,
        },
        "data": {
            "root": absolute(settings.data),
            "val_root": absolute(settings.validation_data),
            "ratios": list(settings.split_ratios),
            "seed": settings.split_seed,
            "classes": classes,
            "augmentation": settings.augmentation.to_dict(),
            "batch_size": settings.batch_size,
            "num_workers": settings.num_workers,
            "cache": settings.cache,
            "tile_size": settings.tile_size,
            "min_visible": settings.min_visible,
        },
        "early_stopping_patience": settings.early_stopping_patience,
        "overwrite": settings.overwrite,
        "ckpt_path": absolute(settings.resume_from),
    }
    header = f"# Repeat this training headless: napari-faster-rcnn fit --config {Path(config_path).name}\n"
    text = header + yaml.safe_dump(config, sort_keys=False, default_flow_style=None)
    return text, f"napari-faster-rcnn fit --config {config_path}"
