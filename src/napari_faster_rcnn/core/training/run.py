"""A whole training run from plain settings, as a generator of progress events.

This is what the "Train detector" widget and the ``demo`` command drive:

- :class:`~.training_settings.TrainingSettings`: the data (a folder or
  samples in memory), the split, the model config, augmentation, epochs,
  optimizer, device and the output folder, as plain values (re-exported here
  with ``TrainingResult`` and ``export_command``);
- :func:`iter_training`: a generator that runs ``Trainer.fit`` in a helper
  thread and yields :class:`~.callbacks.TrainingEvent` objects (steps with
  losses, epochs with validation metrics, checkpoints) as they happen, then
  returns a ``TrainingResult``. An exception in training (a bad config,
  an unreadable image, running out of memory) is raised from the generator
  itself, so a napari ``thread_worker``'s ``errored`` signal carries the real
  cause. Pass a :class:`~.callbacks.StopRequest` and call its ``request()``
  from any thread to stop after the step in progress, with a checkpoint;
  closing the generator does the same and waits for the thread;
- :func:`run_training`: the same, to the end, in the calling thread;
- :func:`export_command`: the YAML and command line that repeat the run
  headless (``napari-faster-rcnn fit --config run.yaml``), on a GPU server or
  a cluster.

Why a helper thread: Lightning's loop calls back into our code and cannot
yield, so the callbacks put events into a queue that the generator empties.
Only one device is used here (``devices=1``); several GPUs or nodes are the
command line's job (DDP starts processes, which a viewer must not).
"""

from __future__ import annotations

import math
import queue
import re
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from napari_faster_rcnn.core.model.auto_size import small_box_warning
from napari_faster_rcnn.core.model.config import ModelConfig
from napari_faster_rcnn.core.progress import run_to_end
from napari_faster_rcnn.core.training.callbacks import (
    ProgressReporter,
    StopOnRequest,
    StopRequest,
    TrainingEvent,
    prepare_run_folder,
    run_callbacks,
    run_loggers,
)
from napari_faster_rcnn.core.training.noise import quiet_lightning
from napari_faster_rcnn.core.training.pixels_summary import dataset_pixels_line
from napari_faster_rcnn.core.training.settings import TrainingResult, TrainingSettings, is_folder
from napari_faster_rcnn.core.training.summary import (
    WARNING_PREFIX,
    data_split,
    data_warnings,
    split_lines,
    summarize_run,
)

__all__ = [
    "build_run",
    "iter_training",
    "run_training",
]


def build_data_module(settings: TrainingSettings):
    """The :class:`~.data_module.DetectionDataModule` of ``settings``."""
    from napari_faster_rcnn.core.training.data_module import DetectionDataModule

    options = dict(ratios=settings.split_ratios, seed=settings.split_seed,
                   classes=list(settings.classes) if settings.classes is not None else None,
                   augmentation=settings.augmentation, batch_size=settings.batch_size,
                   num_workers=settings.num_workers, cache=settings.cache, tile_size=settings.tile_size,
                   min_visible=settings.min_visible)
    data, validation = settings.data, settings.validation_data
    if is_folder(data) and (validation is None or is_folder(validation)):
        return DetectionDataModule(root=str(data), val_root=None if validation is None else str(validation),
                                   **options)
    if is_folder(data) or is_folder(validation):
        raise ValueError("give both the training and the validation data as folders, or both as samples")
    return DetectionDataModule.from_samples(data, validation, **options)


def build_module(settings: TrainingSettings, classes: Sequence[str], training_items: Sequence | None = None):
    """The :class:`~.training.DetectorModule` of ``settings`` for the data's ``classes`` (and, for
    ``settings.auto_size``, the training images' sizes and boxes)."""
    from napari_faster_rcnn.core.training.module import DetectorModule

    model = settings.model
    options = dict(optimizer=settings.optimizer, learning_rate=settings.learning_rate,
                   weight_decay=settings.weight_decay, momentum=settings.momentum, scheduler=settings.scheduler,
                   warmup_steps=settings.warmup_steps, iou_threshold=settings.iou_threshold,
                   validation_score_threshold=settings.validation_score_threshold,
                   auto=settings.auto_size, training_items=training_items)
    if isinstance(model, ModelConfig):
        return DetectorModule(config=model.to_dict(), preset=None, classes=list(classes), **options)
    return DetectorModule(config=dict(model or {}), preset=settings.preset, classes=list(classes), **options)


def build_run(settings: TrainingSettings, report=None, stop: StopRequest | None = None):
    """``(trainer, module, data)`` of a run: the same parts :func:`iter_training` fits."""
    import lightning.pytorch as pl
    import torch

    from napari_faster_rcnn.core.model.checkpoints import SafeCheckpointIO

    output = prepare_run_folder(settings.output, resume=settings.resume_from is not None,
                                overwrite=settings.overwrite)
    quiet_lightning()
    if settings.cpu_threads is not None:
        torch.set_num_threads(max(1, int(settings.cpu_threads)))
    pl.seed_everything(settings.seed, workers=True, verbose=False)
    data = build_data_module(settings)
    classes = data.classes
    module = build_module(settings, classes, data.training_items if settings.auto_size else None)
    callbacks = run_callbacks(output, validation=settings.validation,
                              early_stopping_patience=settings.early_stopping_patience,
                              progress=settings.progress_bar)
    if report is not None:
        callbacks.append(ProgressReporter(report))
    callbacks.append(StopOnRequest(stop or StopRequest()))
    trainer = pl.Trainer(
        default_root_dir=str(output),
        max_epochs=settings.epochs,
        max_steps=settings.max_steps,
        accelerator=settings.accelerator,
        devices=1,
        precision=settings.precision,
        callbacks=callbacks,
        logger=run_loggers(output),
        plugins=[SafeCheckpointIO()],
        enable_progress_bar=settings.progress_bar,
        enable_model_summary=False,
        limit_val_batches=None if settings.validation else 0,
        check_val_every_n_epoch=settings.validation_every_epochs,
        num_sanity_val_steps=0,
        gradient_clip_val=settings.gradient_clip,
        log_every_n_steps=max(1, min(10, math.ceil(len(data.train_dataset) / settings.batch_size))),
    )
    return trainer, module, data


_WORKER_ERROR = re.compile(r"Caught (\w+) in DataLoader worker process \d+")


def _clearer(error: BaseException) -> BaseException:
    """A DataLoader worker's error, which torch wraps in a RuntimeError holding the whole
    traceback as text, as a short one: the original's last line, naming the file."""
    text = str(error)
    match = _WORKER_ERROR.search(text)
    if not isinstance(error, RuntimeError) or not match:
        return error
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else text
    cause = re.sub(rf"^(?:[\w.]*\.)?{match.group(1)}: ", "", last)  # "package.module.ImageReadError: "
    clear = RuntimeError(f"{cause} (in a DataLoader worker)")
    clear.__cause__ = error
    return clear


_DONE = object()


#: Step events reach the generator's thread in bundles, at most this often: waking a
#: thread after every 90 ms step of a small model costs the loop more than it is worth
#: (a plot redrawn 4 times a second is smooth); other events go at once.
BUNDLE_SECONDS = 0.25


class _Bundler:
    """Collects events in the training thread and puts them into ``queue`` as lists."""

    def __init__(self, queue_: queue.Queue):
        self.queue = queue_
        self.pending: list[TrainingEvent] = []
        self.sent = time.perf_counter()

    def __call__(self, event: TrainingEvent) -> None:
        self.pending.append(event)
        now = time.perf_counter()
        if event.kind != "step" or now - self.sent >= BUNDLE_SECONDS:
            self.flush(now)

    def flush(self, now: float | None = None) -> None:
        if self.pending:
            self.queue.put(self.pending)
            self.pending = []
        self.sent = time.perf_counter() if now is None else now


def iter_training(settings: TrainingSettings, stop: StopRequest | None = None):
    """Run a training, yielding :class:`~.callbacks.TrainingEvent` objects; returns a ``TrainingResult``.

    Step events come in bundles (at most every :data:`BUNDLE_SECONDS`), each
    with the time it happened (``event.seconds``). Raises whatever training
    raised (in the generator, when it reaches that point), with DataLoader
    workers' errors shortened to their cause.
    """
    stop = stop or StopRequest()
    events: queue.Queue = queue.Queue()
    report = _Bundler(events)
    outcome: dict = {}
    start = time.perf_counter()

    def work():
        try:
            report(TrainingEvent("log", message="reading the dataset"))
            trainer, module, data = build_run(settings, report, stop)
            split = data_split(data)
            report(TrainingEvent("log", message="\n".join([*split_lines(split),
                                                            dataset_pixels_line(data.train_dataset, module.config)])))
            for warning in data_warnings(split, settings.validation):
                report(TrainingEvent("log", message=f"{WARNING_PREFIX}{warning}"))
            if module.auto_size is not None:
                report(TrainingEvent("log", message=module.auto_size.describe()))
            warning = small_box_warning(module.config, data.training_items, fitted=module.auto_size is not None)
            if warning is not None:
                report(TrainingEvent("warning", message=warning))
            if settings.resume_from is not None:
                report(TrainingEvent("log", message=f"resuming from {settings.resume_from}"))
            trainer.fit(module, datamodule=data,
                        ckpt_path=None if settings.resume_from is None else str(settings.resume_from))
            outcome["result"] = _result(trainer, module, data, settings, stop, time.perf_counter() - start)
        except BaseException as error:  # noqa: BLE001 - handed to the generator's thread
            outcome["error"] = error
        finally:
            report.flush()
            events.put(_DONE)

    thread = threading.Thread(target=work, name="napari-faster-rcnn-training", daemon=True)
    thread.start()
    try:
        while True:
            bundle = events.get()
            if bundle is _DONE:
                break
            yield from bundle
    finally:
        if thread.is_alive():  # the consumer left early: stop, and wait for the checkpoint
            stop.request()
            thread.join()
    if "error" in outcome:
        raise _clearer(outcome["error"])
    return outcome["result"]


def _result(trainer, module, data, settings: TrainingSettings, stop: StopRequest, seconds: float) -> TrainingResult:
    callback = trainer.checkpoint_callback
    best = Path(callback.best_model_path) if callback is not None and callback.best_model_path else None
    last = Path(callback.last_model_path) if callback is not None and callback.last_model_path else None
    score = callback.best_model_score if callback is not None else None
    return TrainingResult(
        output=Path(trainer.default_root_dir),
        best_checkpoint=best if best is not None and best.is_file() else None,
        last_checkpoint=last if last is not None and last.is_file() else None,
        metrics=dict(module.validation_metrics),
        best_score=None if score is None else float(score),
        steps=trainer.global_step,
        epochs=trainer.current_epoch,
        stopped=stop.requested,
        seconds=seconds,
        classes=list(module.classes),
        summary=summarize_run(trainer, data, classes=module.classes, iou_threshold=module.iou_threshold,
                              validation=settings.validation),
    )


def run_training(settings: TrainingSettings, report=None, stop: StopRequest | None = None) -> TrainingResult:
    """:func:`iter_training` to the end in this thread, passing every event to ``report``."""
    return run_to_end(iter_training(settings, stop), report)


