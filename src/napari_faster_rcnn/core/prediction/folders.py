"""Predictions written to a folder: one annotation file per image and ``thresholds.json``.

This is the ``predict`` command's core. :func:`find_images` finds the images
as the reader does (a dataset folder in any layout, or image files);
:func:`predict_folder` runs :func:`~.prediction.iter_predictions` over them and
writes, for each image, ``NAME.pt`` (or ``.json``) named after it, with
``boxes``, ``labels`` (class names), ``scores`` and ``classes``, plus
``thresholds.json`` with the thresholds the files passed: then opening the
folder in napari starts the "Tune predictions" sliders there, and
``napari-faster-rcnn evaluate --pred`` reads it as it is. With ``raw`` the
files hold the raw detections and ``thresholds.json`` the values to start
tuning from. With ``tiling``, images larger than a tile are predicted in
overlapping tiles whose detections are merged (:mod:`.tiles`); the files hold
the merged detections, raw or thresholded, as for any image.

A stack (a multi-page TIFF or OME-TIFF with leading dimensions, time or z) is predicted plane
by plane, every plane or those ``planes`` chooses (see :mod:`.stacks`), and written as ONE file,
``NAME.pt`` (or ``.json``), with ``boxes``, ``labels``, ``scores``, ``classes`` and ``planes``
(each box's leading coordinates). Predictions are not labels: the file has no
``labeled_planes``. The thresholds (score, per-class NMS) apply plane by plane, as they do
image by image. A folder may mix stacks and 2-D images; ``planes`` concerns stacks only.

Nothing is overwritten unless asked: files already in the output folder that
this run would write are listed, and the run refuses before any work.
"""

from __future__ import annotations

import json
import queue
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from napari_faster_rcnn.core.data.annotations import THRESHOLDS_FILE, save_annotation
from napari_faster_rcnn.core.prediction.run import PredictionRecord, PredictionSummary, TileProgress, iter_predictions
from napari_faster_rcnn.core.prediction.settings import starting_thresholds
from napari_faster_rcnn.core.prediction.stacks import join_planes, stack_items
from napari_faster_rcnn.core.prediction.thresholds import Thresholds, apply_thresholds
from napari_faster_rcnn.core.prediction.tiles import Tiling

__all__ = ["FolderPrediction", "find_images", "predict_folder"]

SUFFIXES = (".pt", ".json")


@dataclass
class FolderPrediction:
    """What :func:`predict_folder` wrote."""

    out_dir: Path
    written: list[Path]
    thresholds: Thresholds
    thresholds_file: Path
    raw: bool
    summary: PredictionSummary
    boxes: int = 0  # written (after the thresholds, unless raw)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # found but left out, and unreadable
    tiling: Tiling | None = None  # how images were tiled (None: each whole)
    tiled: int = 0  # images predicted in more than one tile
    stacks: int = 0  # stacks written (one file each)
    planes: int = 0  # planes of stacks predicted


def find_images(inputs: str | Path | Sequence[str | Path]) -> tuple[list[Path], list[tuple[str, str]]]:
    """The images to predict: every image of each folder (found as the reader finds them) and each file.

    Returns
    -------
    (paths, skipped)
        The image files, in the order given (a folder's sorted by name), and
        ``(path, reason)`` for what was left out.

    Raises
    ------
    ValueError
        (``DatasetError``) for a folder without images; ``FileNotFoundError``
        for a path that does not exist; ``ValueError`` when two images have the
        same name (their prediction files would be one file).
    """
    from napari_faster_rcnn.core.data.folders import ANNOTATIONS_ONLY, discover_dataset
    from napari_faster_rcnn.core.data.image_files import IMAGE_SUFFIXES, is_image_file

    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    paths: list[Path] = []
    skipped: list[tuple[str, str]] = []
    for given in map(Path, inputs):
        if given.is_dir():
            dataset = discover_dataset(given)
            found = [sample.image for sample in dataset.samples if sample.image is not None]
            if not found or dataset.layout == ANNOTATIONS_ONLY:
                raise ValueError(f"{given}: no images (.png, .jpg, .tif, .bmp or .webp) in it or in its input/")
            paths.extend(found)
            skipped.extend((str(path), reason) for path, reason in dataset.skipped
                           if is_image_file(path))  # annotation files there are not ours to report
        elif given.is_file():
            if is_image_file(given):
                paths.append(given)
            else:
                skipped.append((str(given), f"not an image file ({', '.join(IMAGE_SUFFIXES)})"))
        else:
            raise FileNotFoundError(f"{given}: no such file or folder")
    by_stem: dict[str, Path] = {}
    for path in paths:
        if path.stem in by_stem and by_stem[path.stem] != path:
            raise ValueError(f"{by_stem[path.stem]} and {path} have the same name {path.stem!r}: their predictions "
                             "would be one file; predict them into separate folders")
        by_stem[path.stem] = path
    return list(dict.fromkeys(paths)), skipped


def predict_folder(
    checkpoint_or_model,
    images: str | Path | Sequence[str | Path],
    out_dir: str | Path,
    thresholds: Thresholds | None = None,
    raw: bool = False,
    classes: Sequence[str] | None = None,
    suffix: str = ".pt",
    batch_size: int = 4,
    device: str | None = "auto",
    read_ahead: int = 2,
    overwrite: bool = False,
    progress: Callable[[PredictionRecord], None] | None = None,
    tiling: Tiling | None = None,
    planes: str | None = None,
    tile_progress: Callable[[TileProgress], None] | None = None,
) -> FolderPrediction:
    """Predict every image and write one annotation file per image into ``out_dir``.

    Parameters
    ----------
    checkpoint_or_model
        A checkpoint path, a :class:`~.checkpoints.LoadedCheckpoint`, or a
        model (then ``classes`` is needed).
    images
        A folder (any dataset layout), image files, or a list of both.
    out_dir
        Where ``NAME{suffix}`` and ``thresholds.json`` go (made if missing).
    thresholds
        Applied to the raw detections before writing (default: the model
        config's, see :func:`~.prediction.starting_thresholds`); with ``raw``
        only saved, as where tuning starts.
    raw
        Write the raw detections (no thresholds applied).
    suffix
        ``".pt"`` or ``".json"``.
    device
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"mps"`` (None: where the model is).
    overwrite
        Replace prediction files (and ``thresholds.json``) already in ``out_dir``.
    progress
        Called with each :class:`~.prediction.PredictionRecord`.
    tiling
        Predict images larger than a tile in overlapping tiles, merged
        (:func:`~.tiles.chosen_tiling` gives the checkpoint's default); None:
        each image whole, in one pass.
    planes
        The planes of each stack to predict, a text such as ``"3:7"`` (see
        :mod:`.stacks`); None: every plane. 2-D images are predicted whatever it says.
    tile_progress
        Called with a :class:`~.run.TileProgress` after each batch of a tiled image's tiles (a large
        image takes minutes before its record comes).

    Raises
    ------
    FileExistsError
        When ``out_dir`` holds files this run would write (before any work).
    ValueError
        For a bad checkpoint (``CheckpointError``), classes the model does not
        have, no images, or no image that could be read.
    """
    if suffix not in SUFFIXES:
        raise ValueError(f"unknown annotation format {suffix!r} (use .pt or .json)")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"{out_dir}: the output is a file, not a folder")
    model, classes, config = _model_and_classes(checkpoint_or_model, classes)
    thresholds = thresholds if thresholds is not None else starting_thresholds(config)
    unknown = sorted(set(thresholds.classes or ()) - set(classes))
    if unknown:
        raise ValueError(f"classes {unknown} are not the model's; it knows {', '.join(classes)}")
    paths, skipped = find_images(images)
    if not paths:
        raise ValueError("no images to predict" + "".join(f"; {path}: {reason}" for path, reason in skipped[:5]))
    items, owners, stacks = _run_items(paths, planes, skipped)
    if not items:
        raise ValueError("no images to predict" + "".join(f"; {path}: {reason}" for path, reason in skipped[:5]))
    destinations = {owner: out_dir / f"{paths[owner].stem}{suffix}" for owner in dict.fromkeys(owners)}
    _refuse_overwrite(out_dir, list(destinations.values()), thresholds, overwrite)

    written, boxes, tiled, stacks_written, planes_done = [], 0, 0, 0, 0
    left = Counter(owner for owner in owners if owner in stacks)  # planes of each stack still to come
    stack_planes: dict[int, list] = {owner: [] for owner in stacks}  # (plane, annotation) of each stack
    generator = iter_predictions(model, items, classes, batch_size=batch_size, device=device, read_ahead=read_ahead,
                                 tiling=tiling, tile_progress=tile_progress is not None)
    writer = _BackgroundWriter()
    try:
        while True:
            try:
                record = next(generator)
            except StopIteration as finished:
                summary = finished.value
                break
            if isinstance(record, TileProgress):
                tile_progress(record)
                continue
            owner = owners[record.index]
            annotation = None
            if record.annotation is not None:  # thresholds per image, and per plane of a stack
                annotation = record.annotation if raw else apply_thresholds(record.annotation, thresholds)
                tiled += record.tiles > 1
            if owner not in stacks:
                if annotation is not None:
                    writer.save(destinations[owner], annotation)
                    written.append(destinations[owner])
                    boxes += len(annotation)
            else:
                left[owner] -= 1
                if annotation is not None:
                    stack_planes[owner].append((record.plane, annotation))
                    planes_done += 1
                if left[owner] == 0 and stack_planes[owner]:  # the stack's last plane: its one file
                    done = stack_planes.pop(owner)
                    joined = join_planes([a for _, a in done], [p for p, _ in done], plane_dims=stacks[owner],
                                         classes=classes)
                    writer.save(destinations[owner], joined)
                    written.append(destinations[owner])
                    boxes += len(joined)
                    stacks_written += 1
            if progress is not None:
                progress(record)
    finally:
        generator.close()
        writer.finish()  # raises what a write raised (a full disk, say)
    if not written:
        raise ValueError("no image could be read: " + "; ".join(f"{reason}" for _, reason in summary.skipped[:5]))
    from napari_faster_rcnn.core.prediction.thresholds import save_thresholds

    thresholds_file = save_thresholds(out_dir, thresholds)
    return FolderPrediction(out_dir, written, thresholds, thresholds_file, raw, summary, boxes,
                            skipped=[*skipped, *summary.skipped], tiling=tiling, tiled=tiled,
                            stacks=stacks_written, planes=planes_done)


def _run_items(paths: list[Path], planes: str | None, skipped: list) -> tuple[list, list[int], dict[int, int]]:
    """The run's images: each 2-D image, and each chosen plane of each stack (a
    :class:`~.stacks.StackPlane`); per item, the index of its file in ``paths``; and per stack,
    its number of leading dimensions. A stack without a chosen plane goes to ``skipped``."""
    from napari_faster_rcnn.core.data.stack_files import stack_shape
    from napari_faster_rcnn.core.prediction.stacks import parse_planes

    if planes is not None:
        parse_planes(planes)  # a bad text is refused before any work, whatever the images
    items, owners, stacks = [], [], {}
    for index, path in enumerate(paths):
        shape = stack_shape(path)
        if shape is None:
            items.append(path)
            owners.append(index)
            continue
        chosen = stack_items(path, shape, planes)
        if not chosen:
            skipped.append((str(path), f"no plane {planes} in a stack of {shape[0]} planes"))
            continue
        items.extend(chosen)
        owners.extend([index] * len(chosen))
        stacks[index] = len(shape)
    return items, owners, stacks


def _model_and_classes(checkpoint_or_model, classes):
    from napari_faster_rcnn.core.model.checkpoints import LoadedCheckpoint, load_checkpoint

    if isinstance(checkpoint_or_model, (str, Path)):
        checkpoint_or_model = load_checkpoint(checkpoint_or_model)
    if isinstance(checkpoint_or_model, LoadedCheckpoint):
        return checkpoint_or_model.model, list(classes or checkpoint_or_model.classes), checkpoint_or_model.config
    config = getattr(checkpoint_or_model, "config", None)
    classes = list(classes or getattr(config, "classes", None) or [])
    if not classes:
        raise ValueError("a model without a config needs its class names (classes=...)")
    return checkpoint_or_model, classes, config


def _refuse_overwrite(out_dir: Path, destinations: list[Path], thresholds: Thresholds, overwrite: bool) -> None:
    if overwrite or not out_dir.is_dir():
        return
    existing = [path for path in destinations if path.exists()]
    saved = out_dir / THRESHOLDS_FILE
    if saved.exists():
        try:
            same = json.loads(saved.read_text(encoding="utf-8")) == thresholds.to_dict()
        except (OSError, ValueError):
            same = False
        if not same:
            existing.append(saved)
    if existing:
        names = ", ".join(path.name for path in existing[:5]) + (" ..." if len(existing) > 5 else "")
        raise FileExistsError(f"{out_dir} already holds {len(existing)} of the files this would write ({names}); "
                              "choose another folder or pass --overwrite to replace them")


class _BackgroundWriter:
    """Annotation files saved in a helper thread, so that waiting for the disk overlaps the model.

    Each file is still written atomically (:func:`~.annotations.save_annotation`);
    :meth:`finish` waits for every file and raises the first error a write met.
    """

    def __init__(self, backlog: int = 64):
        self._queue: queue.Queue = queue.Queue(maxsize=backlog)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="napari-faster-rcnn-write", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is None:
                try:
                    save_annotation(*item, labeled_planes=False)  # predictions are not labels
                except BaseException as error:  # kept for finish(), the files after it are not written
                    self._error = error

    def save(self, path: Path, annotation) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put((path, annotation))

    def finish(self) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error
