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
- ``--early_stopping_patience N`` stops after N validations without a better
  ``val/voc_map``;
- checkpoints are always read weights-only (:class:`~napari_faster_rcnn.core.model.checkpoints.SafeCheckpointIO`),
  also when resuming.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback

from napari_faster_rcnn.core.model.auto_size import small_box_warning
from napari_faster_rcnn.core.model.checkpoints import SafeCheckpointIO
from napari_faster_rcnn.core.training.callbacks import prepare_run_folder, progress_bar, run_callbacks, run_loggers
from napari_faster_rcnn.core.training.data_module import DetectionDataModule
from napari_faster_rcnn.core.training.module import DetectorModule

DEFAULT_OUTPUT = "runs/train"
TRAINER_DEFAULTS = {"default_root_dir": DEFAULT_OUTPUT, "max_epochs": 30, "log_every_n_steps": 10}


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
        parser.add_argument("--overwrite", type=bool, default=False,
                            help="start over in a run folder that holds another run's checkpoints (removes its "
                            "checkpoints, logs and config.yaml, nothing else)")

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand]
        output = config.trainer.default_root_dir or DEFAULT_OUTPUT
        config.trainer.default_root_dir = output
        if rank_zero_only.rank == 0:
            prepare_run_folder(output, resume=config.get("ckpt_path") is not None,
                               overwrite=bool(config.get("overwrite")))

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
    warning = small_box_warning(model.config, data.training_items)
    if warning is not None:
        print(f"warning: {warning}", file=sys.stderr)


def run_fit(argv: list[str]) -> int:
    """Parse ``argv`` (the arguments after ``fit``), build everything and train."""
    # Lightning warns when args are given while sys.argv has arguments too; here they are the same ones.
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
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
