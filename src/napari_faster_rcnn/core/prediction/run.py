"""Prediction: a trained detector over many images, with the images read ahead of the model.

:func:`iter_predictions` is the one loop every caller drives (the "Predict"
widget in a ``thread_worker``, :func:`predict_folder` for the ``predict``
command, the benchmark). It is a generator that yields one
:class:`PredictionRecord` per image, in the order of the images, and returns a
:class:`PredictionSummary`:

- a helper thread (:class:`.reading.ImageReader`) reads and converts the images
  (:func:`~napari_faster_rcnn.core.data.images.read_image`, then float32 ``(3, H, W)`` in
  ``[0, 1]`` as the training dataset makes them) into a bounded queue, ``read_ahead`` batches ahead, so that decoding overlaps
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
    threshold 0.01, NMS off, up to 1,000 detections per image) and restores it
    afterwards; the checkpoint is not touched. Greedy per-class NMS and a score
    threshold applied afterwards (:func:`.thresholds.apply_thresholds`) then
    give the boxes the model would have given with those settings, as long as
    the 1,000 kept include every candidate above the score threshold (the
    ``cpu`` preset has at most 300 proposals x its classes; a ResNet-50 FPN
    with 1,000 proposals may have more: raise ``detections_per_image``).

Tiles
    With ``tiling`` (a :class:`.tiles.Tiling` of a tile size above 0), an image
    larger than a tile is cut into overlapping tiles
    (:meth:`.tiles.Tiling.grid`), which go through the model in the batches of
    ``batch_size`` (tiles of one image, or of neighbouring images, together);
    their detections are shifted back into the image and merged across tile
    borders (:func:`.tile_merge.merge_tile_detections`: an object cut by a border
    ends as one box) before the image's record is yielded. The merge runs as the
    tiles come in (:class:`.tile_merge.TileMerger`, row of tiles by row of tiles, the
    same result), so that an image's raw detections are never held all at once. Each tile gets the
    raw-detection settings above, so the merged detections are raw too and the
    thresholds apply to them as to a whole image's. Such an image is read tile
    by tile where its format allows (:mod:`~napari_faster_rcnn.core.data.regions`:
    tiled or striped TIFF, OME-TIFF, Zarr; of any type), else kept as read
    (uint8, uint16, ...) until its tiles are normalized and converted, one by
    one; the percentiles of an image of more than 8 bits are the whole image's,
    from a strided subsample (:func:`~napari_faster_rcnn.core.data.regions.sampled_percentiles`).
    ``tile_progress`` also yields a :class:`TileProgress` after each batch that
    holds tiles of a tiled image, for a progress bar per tile.

Stacks
    A plane of a stack is an image of the run given as a :class:`.stacks.StackPlane` (see
    :func:`.stacks.stack_items`: every plane, or those chosen): only that plane is read, and its
    record carries ``plane`` and its annotation ``planes`` (each box's leading coordinates),
    so that :func:`.stacks.join_planes` makes the stack's one annotation of them.

Reading the images (and the read-ahead thread) lives in :mod:`.reading`; an image's way through the
model (its inputs, whole or tile by tile, and its detections until complete) in :mod:`.pending`; the
settings in :mod:`.settings`; :func:`.folders.predict_folder` writes one annotation file per image for
the command line.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import numpy as np

from napari_faster_rcnn.core.data.annotations import Annotation
from napari_faster_rcnn.core.prediction.pending import PendingImage, model_inputs
from napari_faster_rcnn.core.prediction.reading import ImageReader
from napari_faster_rcnn.core.prediction.settings import (
    DetectionSettings,
    raw_detection_settings,
    resolve_device,
)
from napari_faster_rcnn.core.prediction.stacks import StackPlane
from napari_faster_rcnn.core.prediction.tiles import Tiling
from napari_faster_rcnn.core.progress import collect

__all__ = [
    "PredictionRecord",
    "PredictionSummary",
    "TileProgress",
    "iter_predictions",
    "predict_images",
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
        The image file, or the stack's file for a plane (None for an image given as an array).
    annotation : Annotation or None
        The detections (labels as class names, scores, ``classes``; for a plane
        of a stack also ``planes``, the plane of each box); None when the image
        could not be read.
    image_size : (height, width) or None
    error : str or None
        Why the image could not be read (names the file).
    done, total : int
        Images predicted so far (this one included) and images to predict:
        unreadable images are left out of both, so ``total`` drops by one
        with each found (a progress bar then ends full, at the images
        predicted).
    tiles : int
        The tiles the image was predicted in (1: whole; 0: not read).
    plane : tuple of int or None
        For a plane of a stack (a :class:`.stacks.StackPlane`): its leading coordinates.
    """

    index: int
    source: Path | None
    annotation: Annotation | None
    image_size: tuple[int, int] | None
    error: str | None
    done: int
    total: int
    tiles: int = 1
    plane: tuple | None = None


@dataclass
class TileProgress:
    """Tiles of a tiled image done so far, as :func:`iter_predictions` yields it with ``tile_progress``.

    Attributes
    ----------
    index : int
        The image's position in the input.
    done, tiles : int
        Its tiles predicted so far, and in all.
    images_done, total : int
        Images predicted before it, and images to predict (unreadable ones left out).
    """

    index: int
    done: int
    tiles: int
    images_done: int
    total: int


@dataclass
class PredictionSummary:
    """What a run did: returned by :func:`iter_predictions`."""

    images: int = 0
    boxes: int = 0
    seconds: float = 0.0
    tiles: int = 0  # forward passes: one per whole image, one per tile of a tiled image
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (image, reason)


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
    tiling: Tiling | None = None,
    tile_progress: bool = False,
) -> Iterator[PredictionRecord]:
    """Predict ``images`` with ``model``, yielding a :class:`PredictionRecord` per image in order.

    Parameters
    ----------
    model
        A torchvision Faster R-CNN (``LoadedCheckpoint.model``); put in eval mode.
    images
        Image paths and/or arrays (see :func:`.reading.read_image_tensor`), and/or planes of stacks
        (:class:`.stacks.StackPlane`: their records carry ``plane``).
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
    tiling
        Cut images larger than a tile into overlapping tiles and merge their
        detections (see the module docstring); None or a tile size of 0: every
        image whole, in one pass.
    tile_progress
        Also yield a :class:`TileProgress` after each batch holding tiles of a tiled image.

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

    if tiling is not None and not tiling.enabled:
        tiling = None
    # the rule the model trained with (a bare torchvision model: "auto", the default)
    normalization = getattr(getattr(model, "config", None), "normalization", "auto")
    channels = getattr(getattr(model, "config", None), "channels", None)  # and its channels
    summary = PredictionSummary()
    start = time.perf_counter()
    # read ahead in a helper thread, read_ahead batches ahead; 0: in this thread
    reader = ImageReader(items, tiling, normalization, channels, buffer_size=batch_size * read_ahead)
    pending: deque[PendingImage] = deque()
    work = model_inputs(reader.next_entry, tiling, pending)
    done = 0
    try:
        while True:
            batch = list(islice(work, batch_size))
            if batch:
                inputs = [tensor.to(target, non_blocking=True) for _, tensor in batch]
                with torch.inference_mode():
                    outputs = model(inputs)
                for (image, _), output in zip(batch, outputs):
                    image.add(output)
                summary.tiles += len(batch)
                if tile_progress:
                    for image in dict.fromkeys(image for image, _ in batch if image.grid is not None):
                        yield TileProgress(image.index, image.received, image.expected, done,
                                           len(items) - len(summary.skipped))
            while pending and pending[0].complete:
                image = pending.popleft()
                item = items[image.index]
                plane = item.plane if isinstance(item, StackPlane) else None
                source = Path(item) if isinstance(item, (str, Path)) else (item.path if plane is not None else None)
                if image.reason is not None:
                    name = str(source) if source is not None else f"image {image.index}"
                    if plane is not None:
                        name += f" plane {list(plane)}"
                    summary.skipped.append((name, image.reason))
                    yield PredictionRecord(image.index, source, None, None, f"{name}: {image.reason}", done,
                                           len(items) - len(summary.skipped), tiles=0, plane=plane)
                    continue
                done += 1
                annotation = image.annotation(names, list(classes))
                if plane is not None:
                    annotation = Annotation(annotation.boxes, annotation.labels, annotation.scores, annotation.classes,
                                            planes=np.tile(np.asarray(plane, dtype=np.int64), (len(annotation), 1)))
                summary.images += 1
                summary.boxes += len(annotation)
                yield PredictionRecord(image.index, source, annotation, image.size, None, done,
                                       len(items) - len(summary.skipped), tiles=image.expected, plane=plane)
            if not batch:
                break
    finally:
        work.close()
        reader.close()
        if previous is not None:
            previous.apply(model)
        model.train(was_training)
    summary.seconds = time.perf_counter() - start
    return summary


def predict_images(model, images: Sequence, classes: Sequence[str], **options) -> tuple[list[PredictionRecord],
                                                                                      PredictionSummary]:
    """:func:`iter_predictions` to the end: every record and the summary."""
    return collect(iter_predictions(model, images, classes, **options))
