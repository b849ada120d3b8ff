"""Prediction: a trained detector over many images, with the images read ahead of the model.

:func:`iter_predictions` is the one loop every caller drives (the "Predict"
widget in a ``thread_worker``, :func:`predict_folder` for the ``predict``
command, the benchmark). It is a generator that yields one
:class:`PredictionRecord` per image, in the order of the images, and returns a
:class:`PredictionSummary`:

- a helper thread reads and converts the images (:func:`~napari_faster_rcnn.core.data.images.read_image`,
  then float32 ``(3, H, W)`` in ``[0, 1]`` as the training dataset makes them)
  into a bounded queue, ``read_ahead`` batches ahead, so that decoding overlaps
  the model rather than waiting for it. A thread rather than DataLoader
  worker processes: PIL and numpy release the GIL while they decode and
  convert, a thread starts in no time and is safe inside a Qt viewer (forking
  one is not), and on two cores it was as fast (see benchmarks/bench_prediction.py);
- batches run under ``torch.inference_mode()``, entered around each forward
  only (a generator that yields inside the ``with`` would leave the caller's
  code in inference mode between images);
- an image that cannot be read gives a record with ``error`` set and no
  annotation; the others are predicted;
- closing the generator (``.close()``, or dropping it) stops the reader thread
  and waits for it, and restores the model's settings: a cancel leaks nothing.

Raw detections
    The sliders of "Tune predictions" need the detections *before* the score
    threshold and NMS, so by default (``raw=True``) the run relaxes the box
    head's own post-processing (:func:`raw_detection_settings`: score
    threshold 0.01, NMS off, up to 300 detections per image) and restores it
    afterwards; the checkpoint is not touched. Greedy per-class NMS and a score
    threshold applied afterwards (:func:`.thresholds.apply_thresholds`) then
    give the boxes the model would have given with those settings, as long as
    the 300 kept include every candidate above the score threshold (the
    ``cpu`` preset has at most 100 proposals x its classes; a ResNet-50 FPN
    with 1,000 proposals may have more: raise ``detections_per_image``).

The settings live in :mod:`.settings`; :func:`.folders.predict_folder` writes
one annotation file per image for the command line.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from napari_faster_rcnn.core.data.annotations import Annotation
from napari_faster_rcnn.core.data.images import ImageReadError
from napari_faster_rcnn.core.prediction.settings import (
    DetectionSettings,
    raw_detection_settings,
    resolve_device,
)
from napari_faster_rcnn.core.progress import collect

__all__ = [
    "PredictionRecord",
    "PredictionSummary",
    "iter_predictions",
    "predict_images",
    "read_image_tensor",
]

# --- records ----------------------------------------------------------------------


@dataclass
class PredictionRecord:
    """One image's outcome, as :func:`iter_predictions` yields it.

    Attributes
    ----------
    index : int
        The image's position in the input.
    source : Path or None
        The image file (None for an image given as an array).
    annotation : Annotation or None
        The detections (labels as class names, scores, ``classes``); None when
        the image could not be read.
    image_size : (height, width) or None
    error : str or None
        Why the image could not be read (names the file).
    done, total : int
        Images predicted so far (this one included) and images to predict:
        unreadable images are left out of both, so ``total`` drops by one
        with each found (a progress bar then ends full, at the images
        predicted).
    """

    index: int
    source: Path | None
    annotation: Annotation | None
    image_size: tuple[int, int] | None
    error: str | None
    done: int
    total: int


@dataclass
class PredictionSummary:
    """What a run did: returned by :func:`iter_predictions`."""

    images: int = 0
    boxes: int = 0
    seconds: float = 0.0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (image, reason)


# --- reading ----------------------------------------------------------------------


def read_image_tensor(item):
    """An image file or array as the detector's input: float32 ``(3, H, W)`` in ``[0, 1]``.

    Arrays may be ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)`` of
    any type (a dask array is computed); scaled as the training dataset scales
    them (:func:`~napari_faster_rcnn.core.data.image_tensors.image_to_unit_float`).

    Raises
    ------
    ImageReadError
        For a file that cannot be read; ``ValueError`` for an array of another shape.
    """
    from napari_faster_rcnn.core.data.image_tensors import image_to_tensor, image_to_unit_float
    from napari_faster_rcnn.core.data.images import as_rgb, read_image

    image = read_image(item) if isinstance(item, (str, Path)) else as_rgb(np.asarray(item))
    if image.dtype != np.uint8:
        image = image_to_unit_float(image)
    return image_to_tensor(image)


_END = object()


def _read_ahead(items: Sequence, buffer: queue.Queue, stop: threading.Event) -> None:
    """The reader thread: ``(index, tensor or None, reason or None)`` per item, then ``_END``."""

    def put(entry) -> bool:
        while not stop.is_set():
            try:
                buffer.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    try:
        for index, item in enumerate(items):
            if stop.is_set() or not put(_read_one(index, item)):
                return
    except BaseException as error:  # anything else ends the run, raised where the caller sees it
        put(error)
        return
    put(_END)


def _read_one(index: int, item) -> tuple:
    try:
        return (index, read_image_tensor(item), None)
    except ImageReadError as error:
        return (index, None, error.reason)
    except ValueError as error:  # an array of the wrong shape
        return (index, None, str(error))


def _read_inline(items: Sequence):
    """Read in the caller's thread (``read_ahead=0``): the same entries, no helper thread."""
    for index, item in enumerate(items):
        yield _read_one(index, item)
    yield _END


def detections_to_annotation(output: dict, names: np.ndarray, classes: list[str]) -> Annotation:
    labels = output["labels"].cpu().numpy()
    known = labels < len(names)
    labels = [str(names[label]) if ok else str(label) for label, ok in zip(labels, known)]
    return Annotation(
        boxes=output["boxes"].float().cpu().numpy().astype(np.float64),
        labels=labels,
        scores=output["scores"].float().cpu().numpy().astype(np.float64),
        classes=list(classes),
    )


# --- the loop ---------------------------------------------------------------------


def iter_predictions(
    model,
    images: Sequence,
    classes: Sequence[str],
    batch_size: int = 4,
    device: str | None = None,
    read_ahead: int = 2,
    raw: bool = True,
    settings: DetectionSettings | None = None,
) -> Iterator[PredictionRecord]:
    """Predict ``images`` with ``model``, yielding a :class:`PredictionRecord` per image in order.

    Parameters
    ----------
    model
        A torchvision Faster R-CNN (``LoadedCheckpoint.model``); put in eval mode.
    images
        Image paths and/or arrays (see :func:`read_image_tensor`).
    classes
        Class names: the model's label ``k`` is ``classes[k - 1]``.
    batch_size
        Images per forward pass.
    device
        Where to run (``"auto"``, ``"cpu"``, ``"cuda"``, ...); the model is moved
        there. None: where the model is.
    read_ahead
        Batches read and converted ahead of the model, in a helper thread; 0
        reads each batch in the calling thread when the model is ready for it.
    raw
        Relax the box head's score threshold, NMS and cap for the run
        (:func:`raw_detection_settings`), restoring them afterwards.
    settings
        Other box-head settings for the run (instead of ``raw``).

    Returns
    -------
    PredictionSummary
        As the generator's return value (``StopIteration.value``).
    """
    import torch

    if batch_size < 1 or read_ahead < 0:
        raise ValueError(f"batch_size must be at least 1 and read_ahead at least 0, got {batch_size} and {read_ahead}")
    items = list(images)
    names = np.array(["__background__", *classes], dtype=object)
    if device is not None:
        model.to(resolve_device(device))
    target = next(model.parameters()).device
    if settings is None and raw:
        settings = raw_detection_settings(getattr(model, "config", None))
    was_training = model.training
    model.eval()
    previous = settings.apply(model) if settings is not None else None

    summary = PredictionSummary()
    start = time.perf_counter()
    stop = threading.Event()
    reader = None
    if read_ahead:
        buffer: queue.Queue = queue.Queue(maxsize=batch_size * read_ahead)
        reader = threading.Thread(target=_read_ahead, args=(items, buffer, stop), daemon=True,
                                  name="napari-faster-rcnn-read-ahead")
        reader.start()
        next_entry = buffer.get
    else:
        next_entry = _read_inline(items).__next__
    done = 0
    try:
        finished = False
        while not finished:
            pending, tensors = [], []
            while len(tensors) < batch_size:
                entry = next_entry()
                if entry is _END:
                    finished = True
                    break
                if isinstance(entry, BaseException):
                    raise entry
                pending.append(entry)
                if entry[1] is not None:
                    tensors.append(entry[1])
            outputs = iter(())
            if tensors:
                batch = [tensor.to(target, non_blocking=True) for tensor in tensors]
                with torch.inference_mode():
                    outputs = iter(model(batch))
            for index, tensor, reason in pending:
                source = Path(items[index]) if isinstance(items[index], (str, Path)) else None
                if tensor is None:
                    name = str(source) if source is not None else f"image {index}"
                    summary.skipped.append((name, reason))
                    total = len(items) - len(summary.skipped)
                    yield PredictionRecord(index, source, None, None, f"{name}: {reason}", done, total)
                    continue
                done += 1
                annotation = detections_to_annotation(next(outputs), names, list(classes))
                summary.images += 1
                summary.boxes += len(annotation)
                size = (int(tensor.shape[1]), int(tensor.shape[2]))
                total = len(items) - len(summary.skipped)
                yield PredictionRecord(index, source, annotation, size, None, done, total)
    finally:
        stop.set()
        if reader is not None:
            reader.join()
        if previous is not None:
            previous.apply(model)
        model.train(was_training)
    summary.seconds = time.perf_counter() - start
    return summary


def predict_images(model, images: Sequence, classes: Sequence[str], **options) -> tuple[list[PredictionRecord],
                                                                                      PredictionSummary]:
    """:func:`iter_predictions` to the end: every record and the summary."""
    return collect(iter_predictions(model, images, classes, **options))

