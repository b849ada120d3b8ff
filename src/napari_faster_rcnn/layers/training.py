"""A training run as the "Train detector" widget drives it, without Qt: the run as a job a
``thread_worker`` drives, its progress as plain values, what to tell about errors, what keeps
the viewer responsive meanwhile, the devices.

**A run** (:class:`TrainingJob`) wraps :func:`~napari_faster_rcnn.core.training.run.iter_training`
for a napari ``GeneratorWorker`` with two changes: errors that are
``RuntimeError`` (out of memory, a DataLoader worker's failure) come out as
:class:`TrainingFailed`, because superqt's worker takes a ``RuntimeError`` from
a generator for a deleted worker and swallows it (no ``errored``, no
``finished``); and the job can be waited for from the main thread when the
viewer closes.

**Progress** (:class:`TrainingProgress`) reduces the run's events to the
points the plot draws and the text the progress bar shows; nothing in it
depends on how often the widget redraws.

**Responsiveness**: napari's event loop shares the GIL with the training
thread. :func:`preload_training_modules` and :func:`older_objects_frozen` take
away the two long holds of it measured in a run: loading compiled extensions
in the training thread, and full garbage collections.

The training data of a box layer, the preview and the export are in :mod:`~napari_faster_rcnn.layers.training_data`.

No Qt here.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from napari_faster_rcnn.core.training.summary import WARNING_PREFIX, summary_lines

__all__ = [
    "TrainingFailed",
    "TrainingJob",
    "TrainingProgress",
    "available_devices",
    "error_message",
    "older_objects_frozen",
    "preload_training_modules",
    "result_summary",
    "suggest_output_folder",
]

def preload_training_modules() -> None:
    """Import, in the calling (main) thread, what a run would otherwise import in its own thread.

    Loading a compiled extension (OpenCV, faster-coco-eval, torchvision's ops)
    holds the GIL for the whole ``dlopen``: done in the training thread while
    the viewer runs, it froze napari's event loop for up to a second (measured).
    albumentations' check for a newer version on PyPI (a network request at
    import, whose TLS setup also holds the GIL) is turned off, unless the
    environment says otherwise.
    """
    import os

    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    import albumentations  # noqa: F401
    import cv2  # noqa: F401
    import faster_coco_eval  # noqa: F401
    import torchvision.models.detection  # noqa: F401
    from lightning.pytorch.loggers import CSVLogger  # noqa: F401

    import napari_faster_rcnn.core.evaluation.metrics  # noqa: F401
    import napari_faster_rcnn.core.model.checkpoints  # noqa: F401
    import napari_faster_rcnn.core.training.run  # noqa: F401
    import napari_faster_rcnn.core.training.validation  # noqa: F401


# --- a run ---------------------------------------------------------------------------------------------


_FROZEN = [0]
_FREEZE_LOCK = threading.Lock()


@contextmanager
def older_objects_frozen():
    """Leave the objects that exist now out of the garbage collector's full collections, while
    the block runs (nested blocks share one freeze).

    A full collection holds the GIL while it walks every tracked object: in a
    viewer with torch and Lightning loaded that took 0.6 s (measured), once a
    minute or so, and froze napari's event loop as long whichever thread
    triggered it. Frozen, the objects that were there before the run (modules,
    classes, the viewer's layers) are not walked; those made by the run are. On
    leaving they return to the oldest generation, so garbage among them is still
    collected later.
    """
    import gc

    with _FREEZE_LOCK:
        _FROZEN[0] += 1
        if _FROZEN[0] == 1:
            gc.freeze()
    try:
        yield
    finally:
        with _FREEZE_LOCK:
            _FROZEN[0] -= 1
            if _FROZEN[0] == 0:
                gc.unfreeze()


class TrainingFailed(Exception):
    """A training run failed; ``str()`` says why (see :func:`error_message`)."""


def error_message(error: BaseException) -> str:
    """What to tell the person about a run that failed: the cause, and for running out of
    memory what to change."""
    text = str(error).strip() or type(error).__name__
    if "out of memory" in text.lower() or type(error).__name__ == "OutOfMemoryError":
        first = text.splitlines()[0][:300]
        return (f"out of memory ({first}); lower the batch size or the image size (min_size / max_size), "
                "or train on another device")
    if not isinstance(error, (ValueError, OSError, TrainingFailed)):
        text = f"{type(error).__name__}: {text}"
    return text


class TrainingJob:
    """One training run for a ``thread_worker``: :meth:`events` is the generator it drives.

    :meth:`stop` asks the run to end after the step in progress (with a
    checkpoint); :meth:`wait` blocks until the generator is done, for closing
    the viewer.
    """

    def __init__(self, settings):
        from napari_faster_rcnn.core.training.callbacks import StopRequest

        self.settings = settings
        self.stop_request = StopRequest()
        self._done = threading.Event()

    def events(self):
        """:func:`~napari_faster_rcnn.core.training.run.iter_training`'s events; returns its result."""
        from napari_faster_rcnn.core.training.run import iter_training

        try:
            with older_objects_frozen():
                return (yield from iter_training(self.settings, self.stop_request))
        except RuntimeError as error:
            raise TrainingFailed(error_message(error)) from error
        finally:
            self._done.set()

    def stop(self) -> None:
        self.stop_request.request()

    @property
    def stopping(self) -> bool:
        return self.stop_request.requested

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the run to end; True if it did within ``timeout`` seconds."""
        return self._done.wait(timeout)


class TrainingProgress:
    """A run's events as what the widget shows: loss per step, mAP per epoch, the progress text.

    Parameters
    ----------
    epochs
        The epochs the run was asked for (the run may end earlier, at ``max_steps``).
    """

    def __init__(self, epochs: int):
        self.epochs = int(epochs)
        self.total_steps: int | None = None
        self.steps_per_epoch: int | None = None
        self.step = 0
        self.epoch = 0
        self.loss_steps: list[int] = []
        self.losses: list[float] = []
        self.map_steps: list[int] = []
        self.voc_map: list[float] = []
        self.coco_map: list[float] = []
        self.checkpoints: dict[str, Path] = {}
        self.messages: list[str] = []
        self.warnings: list[str] = []  # about the data (a small validation part), shown until the end
        self.learning_rate: float | None = None
        self.events = 0

    def update(self, event) -> None:
        """Take in one :class:`~napari_faster_rcnn.core.training.callbacks.TrainingEvent`."""
        self.events += 1
        kind = event.kind
        if kind == "step":
            self.step, self.epoch = event.step, event.epoch
            if "loss" in event.losses:
                self.loss_steps.append(event.step)
                self.losses.append(float(event.losses["loss"]))
            self.learning_rate = event.learning_rate
        elif kind == "epoch":
            self.map_steps.append(event.step)
            self.voc_map.append(float(event.metrics.get("val/voc_map", np.nan)))
            self.coco_map.append(float(event.metrics.get("val/coco_map", np.nan)))
        elif kind == "start":
            self.total_steps, self.steps_per_epoch = event.total_steps, event.steps_per_epoch
            self.step, self.epoch = event.step, event.epoch
        elif kind == "checkpoint" and event.path is not None:
            self.checkpoints[event.message or "last"] = Path(event.path)
        elif kind == "log" and event.message:
            target = self.warnings if event.message.startswith(WARNING_PREFIX) else self.messages
            target.append(event.message)
        elif kind == "warning" and event.message:
            self.warnings.append(f"{WARNING_PREFIX}{event.message}")

    @property
    def total_epochs(self) -> int:
        """The epochs the run will last: ``epochs``, or fewer when ``max_steps`` ends it first."""
        if self.total_steps and self.steps_per_epoch:
            return max(1, min(self.epochs, -(-self.total_steps // self.steps_per_epoch)))
        return self.epochs

    def description(self) -> str:
        """``"epoch 2 of 5, step 37 of 200"`` (with the last loss once there is one)."""
        total = f" of {self.total_steps}" if self.total_steps else ""
        text = f"epoch {min(self.epoch + 1, self.total_epochs)} of {self.total_epochs}, step {self.step}{total}"
        if self.losses:
            text += f", loss {self.losses[-1]:.3f}"
        return text

    def status(self) -> str:
        """The widget's status during the run: the progress (before the first step, the last
        message's first line), then the warnings about the data."""
        if self.total_steps is not None or not self.messages:
            head = self.description()
        else:
            head = self.messages[-1].splitlines()[0]
        return "\n".join([head, *self.warnings])


def result_summary(result) -> str:
    """A finished run's result, as the ``fit`` command ends on it: how it ended and its time, then
    the checkpoints, the best epoch's metrics (per class too), what trained and validated, and the
    warnings about the data (:func:`~napari_faster_rcnn.core.training.summary.summary_lines`)."""
    how = f"stopped at step {result.steps}" if result.stopped else f"finished after {result.steps} steps"
    lines = [f"{how} ({result.seconds:.0f} s)"]
    if result.summary is not None:
        lines += summary_lines(result.summary)
    return "\n".join(lines)


# --- devices and folders ----------------------------------------------------------------------------


def available_devices() -> dict[str, str]:
    """The accelerators this machine has, with a description: ``cpu`` always, ``cuda`` and ``mps`` when present."""
    import os

    import torch

    devices = {"cpu": f"CPU ({os.cpu_count() or 1} cores)"}
    if torch.cuda.is_available():
        devices["cuda"] = torch.cuda.get_device_name(0) + (f" (+{torch.cuda.device_count() - 1})"
                                                           if torch.cuda.device_count() > 1 else "")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices["mps"] = "Apple GPU (MPS)"
    return devices


def suggest_output_folder(dataset_root: str | Path | None) -> Path:
    """A new run folder: ``runs/train``, ``train-2``, ... beside the dataset (else in the home folder),
    the first one without checkpoints."""
    base = Path(dataset_root).parent / f"{Path(dataset_root).name}-runs" if dataset_root else (
        Path.home() / "napari-faster-rcnn-runs")
    for number in range(1, 10000):
        folder = base / ("train" if number == 1 else f"train-{number}")
        if not (folder / "checkpoints").is_dir() or not any((folder / "checkpoints").glob("*.ckpt")):
            return folder
    return base / "train-new"
