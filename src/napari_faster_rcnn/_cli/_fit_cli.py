"""The LightningCLI behind ``napari-faster-rcnn fit`` (imported only when the command runs).

What it adds to Lightning's own CLI:

- the data module's classes go into the model (``link_arguments`` on
  instantiation), so the model always predicts the dataset's classes;
- the run folder (``trainer.default_root_dir``, default ``runs/train``) gets
  the best and last checkpoints, the CSV log (TensorBoard's too when
  installed) and ``config.yaml``, the complete config that runs again; a folder
  holding another run's checkpoints is refused unless the run resumes
  (``--ckpt_path``) or ``--overwrite`` is given;
- ``--model.auto true`` fits ``min_size``, ``max_size`` and the anchors to the
  training boxes (the data module's ``training_items`` are linked into the
  model); what it chose is printed, and a warning when most boxes are too
  small for the model's anchors or feature map, auto or not;
- ``--finetune_from CKPT`` continues training with new labels: the run
  starts from the checkpoint's weights and model config (classes, sizes,
  anchors; see :mod:`~napari_faster_rcnn.core.training.finetune`), with a
  fresh optimizer, in a new run folder;
- a run lasts ``--trainer.max_epochs`` (default 30) unless ``--trainer.max_steps`` or ``max_time``
  is given alone: then that decides;
- ``--early_stopping_patience N`` stops after N validations without a better
  ``val/voc_map``;
- it says at the start how the data was split (images, those without boxes,
  boxes), warns when the validation part is too small to trust its mAP, and
  ends on a summary: the best and last checkpoints, the best epoch's VOC AP
  and COCO mAP (per class too), what trained and validated
  (:mod:`~napari_faster_rcnn.core.training.summary`); Lightning's messages
  that are not about the run are left out
  (:func:`~napari_faster_rcnn.core.training.noise.quiet_lightning`);
- checkpoints are always read weights-only (:class:`~napari_faster_rcnn.core.model.checkpoints.SafeCheckpointIO`),
  also when resuming; ``--ckpt_path`` is read so before Lightning's CLI
  looks into it (for the model's hyper-parameters), so a refused file stops
  the command with one line naming it and what it would import.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback

from napari_faster_rcnn.core.model.auto_size import small_box_warning
from napari_faster_rcnn.core.model.checkpoints import SafeCheckpointIO, read_checkpoint
from napari_faster_rcnn.core.training.callbacks import prepare_run_folder, progress_bar, run_callbacks, run_loggers
from napari_faster_rcnn.core.training.data_module import DetectionDataModule
from napari_faster_rcnn.core.training.finetune import check_finetune_classes, finetune_config
from napari_faster_rcnn.core.training.module import DetectorModule
from napari_faster_rcnn.core.training.noise import quiet_lightning
from napari_faster_rcnn.core.training.pixels_summary import dataset_pixels_line
from napari_faster_rcnn.core.training.samples import dataset_classes
from napari_faster_rcnn.core.training.summary import (
    WARNING_PREFIX,
    data_split,
    data_warnings,
    split_lines,
    summarize_run,
    summary_lines,
)

DEFAULT_OUTPUT = "runs/train"
#: The run's length when neither ``--trainer.max_epochs``, ``max_steps`` nor ``max_time`` is given.
DEFAULT_EPOCHS = 30
TRAINER_DEFAULTS = {"default_root_dir": DEFAULT_OUTPUT, "max_epochs": None, "log_every_n_steps": 10}


def run_length(max_epochs, max_steps, max_time) -> int | None:
    """``max_epochs`` for the trainer: as given, else :data:`DEFAULT_EPOCHS` unless the run's length is
    given in steps or time (so ``--trainer.max_steps 300`` alone trains 300 steps, as in Lightning,
    rather than stopping at a default number of epochs first)."""
    if max_epochs is not None or (max_steps is not None and max_steps != -1) or max_time:
        return max_epochs
    return DEFAULT_EPOCHS


class RunConfigSaver(SaveConfigCallback):
    """Writes the complete config to the run folder's ``config.yaml`` (a resumed run's replaces it)."""

    def __init__(self, parser, config, **options):
        super().__init__(parser, config, overwrite=True, save_to_log_dir=False, **options)

    def save_config(self, trainer, pl_module, stage: str) -> None:
        path = Path(trainer.default_root_dir) / self.config_filename
        path.parent.mkdir(parents=True, exist_ok=True)
        self.parser.save(self.config, str(path), skip_none=False, overwrite=True)


class FitCLI(LightningCLI):
    """LightningCLI with only ``fit``, the classes linked from the data, and the run folder's parts."""

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        return {"fit": {"model", "train_dataloaders", "val_dataloaders", "datamodule"}}

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data.classes", "model.classes", apply_on="instantiate")
        # what --model.auto true fits the sizes and anchors to: the training part of the data
        parser.link_arguments("data.training_items", "model.training_items", apply_on="instantiate")
        parser.add_argument("--early_stopping_patience", type=int | None, default=None,
                            help="stop after this many validations without a better val/voc_map (default: never)")
        parser.add_argument("--finetune_from", type=str | None, default=None,
                            help="continue training with new labels: start from this checkpoint's weights and "
                            "model config (classes, sizes, anchors), with a fresh optimizer and run; labels of "
                            "classes the model does not know are refused (unlike --ckpt_path, which resumes a run)")
        parser.add_argument("--overwrite", type=bool, default=False,
                            help="start over in a run folder that holds another run's checkpoints (removes its "
                            "checkpoints, logs and config.yaml, nothing else)")

    def _parse_ckpt_path(self) -> None:
        # Lightning's CLI reads --ckpt_path with its own torch.load to take the model's hyper-parameters
        # from it; ours reads it weights-only with our allowlist and raises CheckpointError (one line,
        # naming the file and what it would import) for a refused or missing file.
        subcommand = self.config.get("subcommand")
        path = self.config[subcommand].get("ckpt_path") if subcommand else None
        finetune = self.config[subcommand].get("finetune_from") if subcommand else None
        if finetune is not None:
            if path is not None:
                raise ValueError("--finetune_from starts a new run from a model's weights and --ckpt_path resumes a "
                                 "run: give one of them")
            self._finetune(subcommand, finetune)
            return
        if path is None:
            return
        hyperparameters = dict(read_checkpoint(path).get("hyper_parameters") or {})
        hyperparameters = {key: value for key, value in hyperparameters.items() if not key.startswith("_")}
        if hyperparameters:
            self.config = self.parser.parse_object({subcommand: {"model": hyperparameters}}, self.config)

    def _finetune(self, subcommand: str, checkpoint: str) -> None:
        """The model config (classes included) of ``checkpoint`` with its weights; sizes not fitted again."""
        config = finetune_config(checkpoint)
        data = self.config[subcommand].data
        roots = [root for root in (data.get("root"), data.get("val_root")) if root]
        if roots:
            check_finetune_classes(config.classes, dataset_classes(roots), checkpoint)
        overrides = {"model": {"config": config.to_dict(), "preset": None, "auto": False},
                     "data": {"classes": list(config.classes)}}
        self.config = self.parser.parse_object({subcommand: overrides}, self.config)

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand]
        output = config.trainer.default_root_dir or DEFAULT_OUTPUT
        config.trainer.default_root_dir = output
        trainer = config.trainer
        trainer.max_epochs = run_length(trainer.max_epochs, trainer.max_steps, trainer.max_time)
        if rank_zero_only.rank == 0:
            prepare_run_folder(output, resume=config.get("ckpt_path") is not None,
                               overwrite=bool(config.get("overwrite")))

    def _validates(self) -> bool:
        return self.trainer.limit_val_batches not in (0, 0.0)

    def before_fit(self) -> None:
        if rank_zero_only.rank != 0:  # the rank from the environment: the trainer's is not set before fit
            return
        split = data_split(self.datamodule)
        print("\n".join([*split_lines(split), dataset_pixels_line(self.datamodule.train_dataset, self.model.config)]), flush=True)
        for warning in data_warnings(split, validation=self._validates()):
            print(f"{WARNING_PREFIX}{warning}", file=sys.stderr, flush=True)

    def after_fit(self) -> None:
        if not self.trainer.is_global_zero:
            return
        summary = summarize_run(self.trainer, self.datamodule, classes=self.model.classes,
                                iou_threshold=self.model.iou_threshold, validation=self._validates())
        print("\n".join(summary_lines(summary)), flush=True)

    def after_instantiate_classes(self) -> None:
        if rank_zero_only.rank == 0:
            report_sizes(self.model, self.datamodule)

    def instantiate_trainer(self, **kwargs):
        config = self.config_init[self.subcommand]
        trainer = config["trainer"]
        output = Path(trainer["default_root_dir"])
        validation = trainer.get("limit_val_batches") not in (0, 0.0)
        callbacks = list(trainer.get("callbacks") or [])
        callbacks += run_callbacks(output, validation=validation,
                                   early_stopping_patience=config.get("early_stopping_patience"),
                                   checkpoints=trainer.get("enable_checkpointing") is not False)
        if trainer.get("enable_progress_bar") in (None, True):
            callbacks.append(progress_bar())
        kwargs["callbacks"] = callbacks
        if trainer.get("logger") in (None, True):
            kwargs["logger"] = run_loggers(output)
        plugins = trainer.get("plugins") or []
        kwargs["plugins"] = [*(plugins if isinstance(plugins, list) else [plugins]), SafeCheckpointIO()]
        return super().instantiate_trainer(**kwargs)


def report_sizes(model: DetectorModule, data: DetectionDataModule) -> None:
    """Print what ``--model.auto true`` chose, and warn when the boxes are too small for the model."""
    import sys

    if model.auto_size is not None:
        print(model.auto_size.describe(), file=sys.stderr)
    warning = small_box_warning(model.config, data.training_items, fitted=model.auto_size is not None)
    if warning is not None:
        print(f"warning: {warning}", file=sys.stderr)


def run_fit(argv: list[str]) -> int:
    """Parse ``argv`` (the arguments after ``fit``), build everything and train."""
    # Lightning warns when args are given while sys.argv has arguments too; here they are the same ones.
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
    quiet_lightning()
    FitCLI(
        DetectorModule,
        DetectionDataModule,
        save_config_callback=RunConfigSaver,
        trainer_defaults=TRAINER_DEFAULTS,
        seed_everything_default=0,
        auto_configure_optimizers=False,  # DetectorModule has its own (SGD or AdamW, warm-up, schedule)
        parser_kwargs={"prog": "napari-faster-rcnn", "description": "Train a Faster R-CNN detector."},
        args=["fit", *argv],
    )
    return 0
