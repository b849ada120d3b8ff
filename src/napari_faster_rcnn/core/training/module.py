"""The Lightning module that trains a torchvision Faster R-CNN: :class:`DetectorModule`.

Training follows torchvision's detection references: the model takes a batch
of images and targets and returns a dict of losses (RPN objectness and box
regression, box-head classification and regression); the loss is their sum,
and every term is logged (``train/loss``, ``train/loss_classifier``, ...).
Optimizer and schedule are in :mod:`.optimization`; validation metrics in
:mod:`.validation` (``val/voc_map``, ``val/coco_map``, per class).

**Configuration.** The model is a :class:`~.config.ModelConfig`: a preset
(``"default"``, ``"mobilenet"``, ``"cpu"``) with field overrides in ``config``,
or a whole config. The classes come from the data: the data module knows them
and the command line links them into ``classes``, so a model cannot be trained
with a class list other than its dataset's (a mismatch is an error naming both).

**Checkpoints** carry the resolved config, the class names and the last
validation metrics as plain data, in the module's hyper-parameters and in a
``napari_faster_rcnn`` entry, so that one file rebuilds the model without
network or code from the file (see :mod:`.checkpoints`).

**Validation** lowers the box head's score threshold to
``validation_score_threshold`` (default 0.01): AP is the area under the whole
precision-recall curve, and the usual 0.05 (or a user's 0.5) would cut it short.
The config's own threshold is what predictions use later. As ``predict`` does, the
box head gives raw detections (no NMS, predict's cap of 1,000) and the config's NMS
runs on each whole image (:class:`~.validation.ValidationCollector`), so that the best
validation AP is what ``predict --score 0.01`` then ``evaluate`` give, also where an
image has more objects than the box head's ``box_detections_per_img``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import lightning.pytorch as pl
import torch

from napari_faster_rcnn import __version__
from napari_faster_rcnn.core.model.config import ModelConfig, preset
from napari_faster_rcnn.core.model.config_rules import ConfigError
from napari_faster_rcnn.core.model.detector import build_model
from napari_faster_rcnn.core.training.optimization import (
    DEFAULT_LEARNING_RATES,
    build_optimizer,
    build_scheduler,
    check_optimization,
)
from napari_faster_rcnn.core.training.validation import MONITOR, ValidationCollector

__all__ = ["CHECKPOINT_KEY", "MONITOR", "DetectorModule", "resolve_model_config"]

#: The checkpoint entry with what prediction needs, as plain data.
CHECKPOINT_KEY = "napari_faster_rcnn"
CHECKPOINT_FORMAT = 1


def resolve_model_config(config: ModelConfig | Mapping | None, preset_name: str | None,
                         classes: Sequence[str] | None) -> ModelConfig:
    """The model config of a run: ``config`` (a whole config, or overrides of the preset's
    fields), with the data's ``classes``.

    Raises
    ------
    ConfigError
        When no classes are known, or the config names other classes than the data.
    """
    given = list(classes) if classes is not None else None
    if isinstance(config, ModelConfig):
        if given is not None and list(config.classes) != given:
            raise ConfigError(_mismatch(list(config.classes), given), "classes")
        return config
    overrides = dict(config or {})
    named = overrides.pop("classes", None)
    if named is not None:
        named = [str(name) for name in named]
        if given is not None and named != given:
            raise ConfigError(_mismatch(named, given), "classes")
    names = given if given is not None else named
    if not names:
        raise ConfigError("no classes: train with a dataset (its classes are the model's), or list them in "
                          "the model config's classes", "classes")
    if preset_name:
        return preset(preset_name, names, **overrides)
    return ModelConfig.from_dict({"classes": names, **overrides})


def _mismatch(model_classes: list[str], data_classes: list[str]) -> str:
    return (f"the model config names the classes {model_classes}, but the dataset's are {data_classes}; the "
            "model must predict the dataset's classes in the same order (drop classes from the model config, "
            "or give the data module the class list)")


class DetectorModule(pl.LightningModule):
    """A Faster R-CNN trained with Lightning.

    Parameters
    ----------
    config
        Model config fields over the preset's, any of them: {weights: none,
        min_size: 512} (see the README's Models section).
    preset
        The starting model config: default (ResNet-50 FPN, COCO weights),
        mobilenet, cpu; null: torchvision's defaults without weights.
    classes
        The class names, from the data module (the command line links them).
    optimizer, learning_rate, weight_decay, momentum
        ``"sgd"`` or ``"adamw"``; the learning rate defaults to 0.005 (SGD) or
        1e-4 (AdamW); momentum is SGD's.
    scheduler, warmup_steps, milestones, gamma
        The schedule per optimizer step: linear warm-up, then ``"cosine"``,
        ``"multistep"`` (times ``gamma`` at the ``milestones``, fractions of
        the training) or ``"constant"``.
    iou_threshold
        IoU at which a detection counts as found for the VOC AP (``val/voc_map``).
    validation_score_threshold
        The box head's score threshold during validation.
    auto
        Fit min_size, max_size and the anchors to the training boxes
        (:func:`~napari_faster_rcnn.core.model.auto_size.auto_size`); the
        checkpoint records the sizes chosen.
    training_items
        ``((height, width), Annotation)`` of the training images that ``auto``
        fits to (the command line links them from the data module).
    normalization
        How image values become [0, 1] (the config's ``normalization``, see
        :mod:`~napari_faster_rcnn.core.data.intensity`): ``auto`` (8-bit / 255,
        anything else per-image 1st-99.8th percentiles), ``percentiles:LOW,HIGH``,
        ``range:LOW,HIGH`` or ``none``; None: the config's (default ``auto``).
    channels
        The image channels the detector sees, in order (the config's ``channels``, see
        :mod:`~napari_faster_rcnn.core.data.channels`): ``"0"``, ``"0,2"``, ``"2,1,0"`` or a list;
        None: the config's (default: gray, RGB or RGBA as they are).
    """

    def __init__(
        self,
        config: dict[str, Any] | None = None,
        preset: str | None = "default",
        classes: list[str] | None = None,
        optimizer: str = "sgd",
        learning_rate: float | None = None,
        weight_decay: float = 1e-4,
        momentum: float = 0.9,
        scheduler: str = "cosine",
        warmup_steps: int = 100,
        milestones: tuple[float, ...] = (0.6, 0.85),
        gamma: float = 0.1,
        iou_threshold: float = 0.5,
        validation_score_threshold: float = 0.01,
        auto: bool = False,
        training_items: Sequence | None = None,
        normalization: str | None = None,
        channels: str | list[int] | None = None,
    ):
        super().__init__()
        check_optimization(optimizer, scheduler, learning_rate, warmup_steps, milestones, gamma, weight_decay,
                           momentum)
        if not 0.0 < iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold!r}")
        if not 0.0 <= validation_score_threshold <= 1.0:
            raise ValueError(f"validation_score_threshold must be in [0, 1], got {validation_score_threshold!r}")
        self.config = resolve_model_config(config, preset, classes)
        if normalization is not None:
            self.config = self.config.replace(normalization=normalization)
        if channels is not None:
            self.config = self.config.replace(channels=channels)
        #: What auto sizing chose and why (:class:`~napari_faster_rcnn.core.model.auto_size.AutoSize`), or None.
        self.auto_size = None
        if auto:
            if training_items is None:
                raise ConfigError("fitting the sizes to the data needs the training images (training_items, "
                                  "linked from the data module on the command line)", "auto")
            from napari_faster_rcnn.core.model.auto_size import auto_size

            self.auto_size = auto_size(self.config, training_items)
            self.config = self.auto_size.config
        self.classes = list(self.config.classes)
        self.optimizer_name = optimizer
        self.learning_rate = float(learning_rate if learning_rate is not None else DEFAULT_LEARNING_RATES[optimizer])
        self.weight_decay = float(weight_decay)
        self.momentum = float(momentum)
        self.scheduler_name = scheduler
        self.warmup_steps = int(warmup_steps)
        self.milestones = tuple(float(point) for point in milestones)
        self.gamma = float(gamma)
        self.iou_threshold = float(iou_threshold)
        self.validation_score_threshold = float(validation_score_threshold)
        # Plain values only, resolved: the checkpoint loads with weights_only=True, and these
        # rebuild this module exactly (config is complete, so no preset is applied again).
        self.save_hyperparameters({
            "config": self.config.to_dict(),
            "preset": None,
            "classes": self.classes,
            "optimizer": optimizer,
            "learning_rate": self.learning_rate,
            "weight_decay": self.weight_decay,
            "momentum": self.momentum,
            "scheduler": scheduler,
            "warmup_steps": self.warmup_steps,
            "milestones": list(self.milestones),
            "gamma": self.gamma,
            "iou_threshold": self.iou_threshold,
            "validation_score_threshold": self.validation_score_threshold,
            "auto": False,  # config holds the sizes auto sizing chose: loading must not choose again
            "normalization": None,  # in config
            "channels": None,  # in config
        })
        self.model = build_model(self.config)
        self.validation_metrics: dict[str, float] = {}
        self._collector = ValidationCollector(self.classes)
        self._score_threshold = self.config.box_score_thresh

    @classmethod
    def from_config(cls, config: ModelConfig, **options) -> DetectorModule:
        """A module for a whole :class:`~.config.ModelConfig` (classes included)."""
        return cls(config=config, preset=None, classes=list(config.classes), **options)

    def forward(self, images, targets=None):
        return self.model(images, targets)

    # -- training ----------------------------------------------------------------------------

    def setup(self, stage: str) -> None:
        data = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        data_classes = getattr(data, "classes", None)
        if data_classes is not None and list(data_classes) != self.classes:
            raise ConfigError(_mismatch(self.classes, list(data_classes)), "classes")

    def training_step(self, batch, batch_index):
        images, targets = batch
        losses = self.model(images, targets)
        loss = sum(losses.values())
        if not torch.isfinite(loss):
            terms = ", ".join(f"{name} {value.item():.4g}" for name, value in losses.items())
            raise FloatingPointError(
                f"the training loss is {loss.item()} at step {self.global_step} ({terms}): training diverged; "
                f"lower the learning rate (now {self.learning_rate:g}) or warm up longer"
            )
        # Loggers write on-step values only every log_every_n_steps, and each self.log costs about
        # 1 ms (Lightning copies its metadata), 5% of a cpu-preset step: log when they are written,
        # and the loss every step only for a progress bar. Every step's terms go to callbacks below.
        size = len(images)
        every = self.trainer.log_every_n_steps if self._trainer is not None else 1
        written = every > 0 and ((self.global_step + 1) % every == 0 or self.trainer.should_stop)
        if written or (self._trainer is not None and self.trainer.progress_bar_callback is not None):
            self.log("train/loss", loss, prog_bar=True, batch_size=size)
        if written:
            self.log_dict({f"train/{name}": value for name, value in losses.items()}, batch_size=size)
        return {"loss": loss, "losses": {name: value.detach() for name, value in losses.items()}}

    def configure_optimizers(self):
        optimizer = build_optimizer(self.model.parameters(), self.optimizer_name, self.learning_rate,
                                    self.weight_decay, self.momentum)
        total = self.trainer.estimated_stepping_batches
        if not math.isfinite(total):
            if self.scheduler_name != "constant":
                raise ValueError(f"the {self.scheduler_name} schedule needs the length of the training: set "
                                 "max_epochs or max_steps, or use the constant schedule")
            total = self.warmup_steps
        scheduler = build_scheduler(optimizer, int(total), self.scheduler_name, self.warmup_steps,
                                    self.milestones, self.gamma)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # -- validation --------------------------------------------------------------------------

    def on_validation_epoch_start(self) -> None:
        self._collector.reset()
        self._collector.nms_threshold = float(self.config.box_nms_thresh)
        self._score_threshold = self.model.roi_heads.score_thresh
        self.model.roi_heads.score_thresh = self.validation_score_threshold

    def validation_step(self, batch, batch_index):
        images, targets = batch
        # as predict does: raw detections (the box head without NMS, predict's raw cap), then the model's NMS in
        # the collector, on a whole image or on a tiled image's merged tiles
        from napari_faster_rcnn.core.prediction.settings import DetectionSettings, raw_detection_settings

        raw = DetectionSettings(self.validation_score_threshold, 1.0, raw_detection_settings(self.config).detections_per_img)
        previous = raw.apply(self.model)
        try:
            detections = self.model(images)
        finally:
            previous.apply(self.model)
        self._collector.add(detections, targets)

    def on_validation_epoch_end(self) -> None:
        self.model.roi_heads.score_thresh = self._score_threshold
        self._collector.gather()
        metrics = self._collector.compute(self.iou_threshold)
        self._collector.reset()
        self.log_dict(metrics, sync_dist=True)
        if not self.trainer.sanity_checking:
            self.validation_metrics = metrics

    # -- checkpoints -------------------------------------------------------------------------

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        data = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        augmentation = getattr(data, "augmentation", None)
        checkpoint[CHECKPOINT_KEY] = {
            "format": CHECKPOINT_FORMAT,
            "version": __version__,
            "config": self.config.to_dict(),
            "classes": list(self.classes),
            "metrics": {key: float(value) for key, value in self.validation_metrics.items()},
            "monitor": MONITOR,
            "iou_threshold": self.iou_threshold,
            "augmentation": augmentation.to_dict() if augmentation is not None else None,
            "training_images": self._training_images(data),
        }
        if self.auto_size is not None:  # plain values: what auto sizing chose and from what
            checkpoint[CHECKPOINT_KEY]["auto_size"] = self.auto_size.to_dict()

    def _training_images(self, data) -> dict | None:
        """The training images' sizes (:meth:`DetectionDataset.size_record`; a tile's at most when the run
        trained on tiles, so that tiled prediction defaults to the scale of training), computed once."""
        if getattr(self, "_size_record", None) is None:
            try:
                record = data.training_images_record() if hasattr(data, "training_images_record") else None
            except (ValueError, OSError):  # no data module with data: nothing to record
                record = None
            self._size_record = record
        return self._size_record

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        from napari_faster_rcnn.core.model.checkpoints import CheckpointError

        section = checkpoint.get(CHECKPOINT_KEY) or {}
        saved = section.get("classes")
        if saved is not None and list(saved) != self.classes:
            where = getattr(self._trainer, "ckpt_path", None) if self._trainer is not None else None
            raise CheckpointError(
                f"{where or 'the checkpoint'}: it was trained for the classes {list(saved)}, but this run's are "
                f"{self.classes}; resume only with the same classes (to start from its weights with other "
                "classes, give the checkpoint as the model config's weights instead)"
            )
        self.validation_metrics = dict(section.get("metrics") or {})
