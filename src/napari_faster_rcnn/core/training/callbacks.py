"""Lightning callbacks and trainer parts shared by every way of training here.

- :class:`ProgressReporter` hands :class:`TrainingEvent` objects (steps with
  their losses, epochs with their validation metrics, checkpoints written) to
  a plain function: the "Train detector" widget's queue, the demo's curves.
- :class:`StopRequest` / :class:`StopOnRequest`: a thread-safe flag another
  thread sets; training stops after the step in progress
  (``trainer.should_stop``), validating and saving as at an epoch's end;
- :class:`SaveFinalState`: ``last.ckpt`` always holds the last step, also
  when a run ends inside an epoch (``max_steps``, a stop);
- :func:`run_callbacks` and :func:`run_loggers`: the best/last checkpoints,
  early stopping, the progress bar and the CSV (and TensorBoard) logs of a
  run folder, the same for the command line, the widget and the demo.

A run folder holds ``checkpoints/best.ckpt`` (highest ``val/voc_map``),
``checkpoints/last.ckpt``, ``config.yaml`` (command line) and
``logs/version_N/metrics.csv`` (one version per start or resume), and
``tensorboard/version_N/`` when TensorBoard is installed.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint

from napari_faster_rcnn.core.data.atomic_files import remove_outputs
from napari_faster_rcnn.core.training.validation import MONITOR

__all__ = [
    "CHECKPOINT_FOLDER",
    "ProgressReporter",
    "SaveFinalState",
    "StopOnRequest",
    "StopRequest",
    "TrainingEvent",
    "prepare_run_folder",
    "progress_bar",
    "run_callbacks",
    "run_loggers",
]

CHECKPOINT_FOLDER = "checkpoints"
BEST_NAME = "best"
LAST_NAME = "last"
# What a run writes into its folder; only these are removed when a run starts over.
_RUN_OUTPUTS = (CHECKPOINT_FOLDER, "logs", "tensorboard", "config.yaml")


@dataclass(frozen=True)
class TrainingEvent:
    """Something that happened in a training run.

    Attributes
    ----------
    kind : str
        ``"log"`` (a message: the data, resuming, stopping, the sizes auto sizing chose),
        ``"warning"`` (a message on something likely to spoil the run: boxes too small for the model), ``"start"`` (the
        loop starts: ``total_steps`` and ``steps_per_epoch`` are known),
        ``"step"`` (an optimizer step ended: ``losses``, ``learning_rate``),
        ``"epoch"`` (validation ended: ``metrics``) or ``"checkpoint"``
        (``path`` written; ``message`` is ``"best"`` or ``"last"``).
    step : int
        Optimizer steps done (Lightning's ``global_step``).
    epoch : int
        The epoch, from 0.
    total_steps, steps_per_epoch : int or None
        The length of the run, as far as Lightning knows it.
    losses : dict
        ``loss`` (the sum) and each of torchvision's terms, for ``"step"``.
    learning_rate : float or None
    metrics : dict
        ``val/voc_map``, ``val/coco_map``, ``val/ap/<class>``, ... for ``"epoch"``.
    path : Path or None
    message : str
    seconds : float
        Since the run started.
    """

    kind: str
    step: int = 0
    epoch: int = 0
    total_steps: int | None = None
    steps_per_epoch: int | None = None
    losses: Mapping[str, float] = field(default_factory=dict)
    learning_rate: float | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    path: Path | None = None
    message: str = ""
    seconds: float = 0.0


class ProgressReporter(Callback):
    """Calls ``report(event)`` with a :class:`TrainingEvent` for every step, epoch and checkpoint
    (on the main process only). ``report`` should be quick: it runs inside the training loop."""

    def __init__(self, report: Callable[[TrainingEvent], None]):
        self.report = report
        self._start = time.perf_counter()
        self._paths: dict[str, str] = {}

    def _send(self, trainer: pl.Trainer, kind: str, **values) -> None:
        if trainer.is_global_zero:
            self.report(TrainingEvent(kind, step=trainer.global_step, epoch=trainer.current_epoch,
                                      seconds=time.perf_counter() - self._start, **values))

    def on_fit_start(self, trainer, pl_module) -> None:
        self._start = time.perf_counter()

    def on_train_start(self, trainer, pl_module) -> None:
        self._check_checkpoints(trainer, report=False)  # a resumed run's files are not news
        total = trainer.estimated_stepping_batches
        per_epoch = trainer.num_training_batches
        self._send(trainer, "start", total_steps=int(total) if total != float("inf") else None,
                   steps_per_epoch=int(per_epoch) if per_epoch != float("inf") else None)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_index) -> None:
        if not trainer.is_global_zero or not isinstance(outputs, Mapping):
            return
        losses = {"loss": float(outputs["loss"])}
        losses.update((name, float(value)) for name, value in outputs.get("losses", {}).items())
        rate = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else None
        self._send(trainer, "step", losses=losses, learning_rate=rate)

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        metrics = dict(getattr(pl_module, "validation_metrics", {}) or {})
        self._send(trainer, "epoch", metrics=metrics)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._check_checkpoints(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._check_checkpoints(trainer)

    def on_train_end(self, trainer, pl_module) -> None:
        self._check_checkpoints(trainer)

    def _check_checkpoints(self, trainer, report: bool = True) -> None:
        # Lightning runs ModelCheckpoint after every other callback, at the end of validation or of the
        # epoch, so what it wrote is seen at the next of these hooks (before the next step).
        for callback in trainer.checkpoint_callbacks:
            for name, path in ((BEST_NAME, callback.best_model_path), (LAST_NAME, callback.last_model_path)):
                if path and Path(path).is_file():
                    stamp = f"{path}:{Path(path).stat().st_mtime_ns}"
                    if self._paths.get(name) != stamp:
                        self._paths[name] = stamp
                        if report:
                            self._send(trainer, "checkpoint", path=Path(path), message=name)


class StopRequest:
    """A flag to stop a training run from another thread: :meth:`request`, then the run
    ends after the step in progress, with a checkpoint."""

    def __init__(self):
        self._event = threading.Event()

    def request(self) -> None:
        self._event.set()

    @property
    def requested(self) -> bool:
        return self._event.is_set()


class StopOnRequest(Callback):
    """Stops training at the next step's end once ``request`` is set (the run then
    validates and saves as at the end of an epoch; :class:`SaveFinalState` covers the rest)."""

    def __init__(self, request: StopRequest):
        self.request = request
        self.stopped_step: int | None = None

    def _check(self, trainer) -> None:
        if self.request.requested and not trainer.should_stop:
            trainer.should_stop = True
            self.stopped_step = trainer.global_step

    def on_train_start(self, trainer, pl_module) -> None:
        self._check(trainer)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_index) -> None:
        self._check(trainer)


class SaveFinalState(Callback):
    """Writes ``last.ckpt`` at the end of training when the last step was not saved yet.

    Lightning saves at the end of validation (or of an epoch); a run that ends
    inside an epoch (``max_steps``, a stop without a validation in that epoch)
    would otherwise leave ``last.ckpt`` some steps behind the model.
    """

    def __init__(self):
        self._saved_step: int | None = None

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        self._saved_step = checkpoint.get("global_step")

    def on_train_end(self, trainer, pl_module) -> None:
        callback = trainer.checkpoint_callback
        if trainer.global_step == 0 or self._saved_step == trainer.global_step or callback is None:
            return
        if callback.dirpath is None:
            return
        path = Path(callback.dirpath) / f"{LAST_NAME}{callback.FILE_EXTENSION}"
        trainer.save_checkpoint(path, weights_only=False)  # the whole state, to resume from
        callback.last_model_path = str(path)


def progress_bar() -> Callback:
    """Lightning's rich progress bar on a terminal when rich is installed, else its tqdm bar."""
    from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar

    if importlib.util.find_spec("rich") is not None and sys.stdout.isatty():
        return RichProgressBar()
    return TQDMProgressBar()


def run_callbacks(output: str | Path, validation: bool = True, early_stopping_patience: int | None = None,
                  progress: bool = False, checkpoints: bool = True) -> list[Callback]:
    """The checkpoints (``best.ckpt`` on ``val/voc_map``, ``last.ckpt``; unless ``checkpoints`` is
    False), optional early stopping on the same metric, and optionally the terminal's progress
    bar of a run in ``output``."""
    folder = Path(output) / CHECKPOINT_FOLDER
    callbacks: list[Callback] = []
    if checkpoints and validation:
        callbacks.append(ModelCheckpoint(dirpath=folder, filename=BEST_NAME, monitor=MONITOR, mode="max",
                                         save_top_k=1, save_last=True, auto_insert_metric_name=False))
    elif checkpoints:
        callbacks.append(ModelCheckpoint(dirpath=folder, save_top_k=0, save_last=True))
    if checkpoints:
        callbacks.append(SaveFinalState())
    if early_stopping_patience is not None:
        if not validation:
            raise ValueError("early stopping watches the validation mAP: it needs validation")
        # NaN (validation images without boxes) must not stop the run: the log says why it is NaN.
        callbacks.append(EarlyStopping(monitor=MONITOR, mode="max", patience=int(early_stopping_patience),
                                       check_finite=False))
    if progress:
        callbacks.append(progress_bar())
    return callbacks


def run_loggers(output: str | Path) -> list:
    """A CSV log (``logs/version_N/metrics.csv``), and TensorBoard's (``tensorboard/``) when installed."""
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    loggers = [CSVLogger(save_dir=str(output), name="logs")]
    if importlib.util.find_spec("tensorboard") is not None or importlib.util.find_spec("tensorboardX") is not None:
        loggers.append(TensorBoardLogger(save_dir=str(output), name="tensorboard", default_hp_metric=False))
    return loggers


def prepare_run_folder(output: str | Path, resume: bool = False, overwrite: bool = False) -> Path:
    """Make the run folder; refuse one that holds another run's checkpoints unless resuming it or ``overwrite``.

    ``overwrite`` removes only what a run writes (``checkpoints/``, ``logs/``,
    ``tensorboard/``, ``config.yaml``), never other files.
    """
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise NotADirectoryError(f"{output}: the run folder is a file")
    checkpoints = output / CHECKPOINT_FOLDER
    previous = sorted(checkpoints.glob("*.ckpt")) if checkpoints.is_dir() else []
    if previous and not resume:
        if not overwrite:
            raise FileExistsError(
                f"{output} holds the checkpoints of another run ({', '.join(p.name for p in previous)}); resume it "
                f"from {checkpoints / 'last.ckpt'}, choose another output folder, or overwrite it"
            )
        remove_outputs(output, _RUN_OUTPUTS)
    output.mkdir(parents=True, exist_ok=True)
    return output
