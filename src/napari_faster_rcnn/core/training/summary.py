"""What a training run tells a person: how the data was split, whether its validation part is
big enough to trust, and at the end where the checkpoints are and what the best epoch scored.

The ``fit`` command prints these lines and the "Train detector" widget shows the
same ones in its status, so both say the same:

- :func:`data_split` counts the images (those without boxes too) and boxes of
  each part of a :class:`~.data_module.DetectionDataModule`; :func:`split_lines`
  says it in words at the start of a run;
- :func:`data_warnings` warns when the validation part is small (fewer than
  :data:`SMALL_VALIDATION_IMAGES` images or :data:`SMALL_VALIDATION_BOXES`
  boxes, unless it holds :data:`DENSE_VALIDATION_BOXES` boxes): then its mAP swings by about 0.2 from one epoch to the next, and
  ``best.ckpt`` is picked by chance as much as by the model;
- :func:`summarize_run` collects what a finished run left (the best and last
  checkpoints, the best epoch's metrics as ``best.ckpt`` holds them) and
  :func:`summary_lines` says it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "DENSE_VALIDATION_BOXES",
    "SMALL_VALIDATION_BOXES",
    "SMALL_VALIDATION_IMAGES",
    "WARNING_PREFIX",
    "DataSplit",
    "PartCounts",
    "RunSummary",
    "data_split",
    "data_warnings",
    "split_lines",
    "summarize_run",
    "summary_lines",
]

#: Below this many validation images or boxes, the validation mAP is too noisy to pick a best epoch by.
SMALL_VALIDATION_IMAGES = 10
SMALL_VALIDATION_BOXES = 20
#: ... unless the images are crowded: from this many boxes, a few images (one astronomy image of 500
#: stars) validate well enough, as AP's sampling error follows the number of objects (about
#: sqrt(p (1 - p) / n) for a recall p: 0.035 at 200 boxes, 0.11 at 20).
DENSE_VALIDATION_BOXES = 200
#: How a line (or a training log message) that warns begins.
WARNING_PREFIX = "warning: "


@dataclass(frozen=True)
class PartCounts:
    """Images (those without boxes among them) and boxes of one part of the data."""

    images: int
    images_without_boxes: int
    boxes: int

    @classmethod
    def of(cls, dataset) -> PartCounts:
        """The counts of a :class:`~.dataset.DetectionDataset` (boxes as training sees them)."""
        counts = list(dataset.box_counts)
        return cls(len(counts), sum(1 for count in counts if count == 0), sum(counts))

    def describe(self) -> str:
        """``"6 images (1 without boxes), 14 boxes"``."""
        return (f"{_count(self.images, 'image')} ({self.images_without_boxes} without boxes), "
                f"{_count(self.boxes, 'box')}")


@dataclass(frozen=True)
class DataSplit:
    """How a run's data was divided, and the counts of each part.

    Attributes
    ----------
    how : str
        Where the parts come from, in words (the folder and the ratios, or a
        separate validation set).
    train, validation : PartCounts
    test : PartCounts or None
        The held-out part of a split (None with a separate validation set).
    """

    how: str
    train: PartCounts
    validation: PartCounts
    test: PartCounts | None = None


def data_split(data_module) -> DataSplit:
    """The parts of a :class:`~.data_module.DetectionDataModule` and their counts."""
    train, validation, test = data_module.train_dataset, data_module.val_dataset, data_module.test_dataset
    root = data_module.root
    source = str(root) if root is not None else "the given images"
    if test is None:
        other = str(data_module.val_root) if data_module.val_root is not None else "separate images"
        how = f"all of {source} trains, {other} validates"
    else:
        total = len(train) + len(validation) + len(test)
        ratios = ", ".join(f"{ratio:g}" for ratio in data_module.ratios)
        how = f"{_count(total, 'image')} of {source} split by the ratios {ratios} (seed {data_module.seed})"
    return DataSplit(how, PartCounts.of(train), PartCounts.of(validation),
                     None if test is None else PartCounts.of(test))


def split_lines(split: DataSplit) -> list[str]:
    """The split in words: how, then one line per part."""
    lines = [f"data: {split.how}", f"  train: {split.train.describe()}",
             f"  validation: {split.validation.describe()}"]
    if split.test is not None and split.test.images:
        lines.append(f"  test (held out, not used in training): {split.test.describe()}")
    return lines


def data_warnings(split: DataSplit, validation: bool = True) -> list[str]:
    """What about the data makes a run's numbers unreliable (an empty list when nothing)."""
    part = split.validation
    if not validation or not part.images:
        return []  # no validation at all is an error of its own, raised by the data module
    if part.boxes >= DENSE_VALIDATION_BOXES or (part.images >= SMALL_VALIDATION_IMAGES
                                                and part.boxes >= SMALL_VALIDATION_BOXES):
        return []
    return [
        f"validation holds only {_count(part.images, 'image')} and {_count(part.boxes, 'box')}: its mAP can swing "
        "by about 0.2 between epochs, so the best checkpoint is picked partly by chance; give validation at least "
        f"{SMALL_VALIDATION_IMAGES} images and {SMALL_VALIDATION_BOXES} boxes (a larger validation ratio, or a "
        "validation folder)"
    ]


@dataclass
class RunSummary:
    """What a finished (or stopped) run left, for :func:`summary_lines`.

    Attributes
    ----------
    best_checkpoint, last_checkpoint : Path or None
    best_epoch, best_step : int or None
        Where the best checkpoint was saved (the epoch counted from 0, as
        Lightning and ``metrics.csv`` count it).
    best_metrics : dict
        The validation metrics ``best.ckpt`` holds (``val/voc_map``,
        ``val/coco_map``, ``val/ap/<class>``, ``val/coco_ap/<class>``, ...).
    last_step : int
        Optimizer steps done.
    classes : list of str
    iou_threshold : float
        The IoU of the VOC AP.
    validation : bool
        Whether the run validated (without, there is no best checkpoint).
    split : DataSplit or None
    warnings : list of str
        From :func:`data_warnings`, repeated at the end.
    problem : str or None
        Why the best checkpoint's metrics could not be read.
    validation_tile : int
        The side of the tiles the validation images were predicted in (merged, as ``predict`` merges
        them: see :mod:`.validation`), when some validation image is larger than a tile; 0 otherwise.
    """

    best_checkpoint: Path | None
    last_checkpoint: Path | None
    best_epoch: int | None
    best_step: int | None
    best_metrics: dict[str, float]
    last_step: int
    classes: list[str]
    iou_threshold: float = 0.5
    validation: bool = True
    split: DataSplit | None = None
    warnings: list[str] = field(default_factory=list)
    problem: str | None = None
    validation_tile: int = 0


def summarize_run(trainer, data_module=None, classes: Sequence[str] = (), iou_threshold: float = 0.5,
                  validation: bool = True) -> RunSummary:
    """What ``trainer`` left after ``fit``: its checkpoints and the best one's epoch and metrics (read
    weights-only from the file), with the counts of ``data_module``'s parts."""
    from napari_faster_rcnn.core.model.checkpoints import CheckpointError, read_checkpoint
    from napari_faster_rcnn.core.training.module import CHECKPOINT_KEY

    callback = trainer.checkpoint_callback
    best = _existing(callback.best_model_path if callback is not None else None)
    last = _existing(callback.last_model_path if callback is not None else None)
    best_epoch = best_step = problem = None
    metrics: dict[str, float] = {}
    if best is not None:
        try:
            checkpoint = read_checkpoint(best)
        except CheckpointError as error:
            problem = str(error)
        else:
            section = checkpoint.get(CHECKPOINT_KEY) or {}
            metrics = {str(key): float(value) for key, value in (section.get("metrics") or {}).items()}
            best_epoch, best_step = int(checkpoint.get("epoch", 0)), int(checkpoint.get("global_step", 0))
    split = data_split(data_module) if data_module is not None else None
    return RunSummary(
        best_checkpoint=best, last_checkpoint=last, best_epoch=best_epoch, best_step=best_step,
        best_metrics=metrics, last_step=int(trainer.global_step), classes=list(classes),
        iou_threshold=float(iou_threshold), validation=bool(validation), split=split,
        warnings=data_warnings(split, validation) if split is not None else [], problem=problem,
        validation_tile=_validation_tile(data_module),
    )


def _validation_tile(data_module) -> int:
    """The tile side validation used, when some validation image is larger (see :class:`RunSummary`)."""
    tile = int(getattr(data_module, "used_tile_size", 0) or 0)
    if not tile:
        return 0
    sizes = getattr(data_module.val_dataset, "image_sizes", ())
    return tile if any(max(int(height), int(width)) > tile for height, width in sizes) else 0


def summary_lines(summary: RunSummary) -> list[str]:
    """The summary in words: checkpoints, the best epoch's VOC AP and COCO mAP (per class too),
    what trained and validated, and the warnings."""
    voc = f"VOC AP@{summary.iou_threshold:g}"
    lines = []
    if summary.best_checkpoint is not None:
        where = "" if summary.best_epoch is None else f" (epoch {summary.best_epoch}, step {summary.best_step})"
        lines.append(f"best checkpoint: {summary.best_checkpoint}{where}")
    elif summary.validation:
        lines.append("best checkpoint: none (no validation finished)")
    else:
        lines.append("best checkpoint: none (the run did not validate)")
    if summary.last_checkpoint is not None:
        lines.append(f"last checkpoint: {summary.last_checkpoint} (step {summary.last_step})")
    if summary.problem:
        lines.append(f"the best checkpoint's metrics could not be read: {summary.problem}")
    metrics = summary.best_metrics
    if metrics:
        lines.append(f"best epoch's validation: {_metric_pair(metrics, 'val/voc_map', 'val/coco_map', voc)}")
        for name in summary.classes:
            lines.append(f"  {name}: {_metric_pair(metrics, f'val/ap/{name}', f'val/coco_ap/{name}', voc)}")
        if summary.validation_tile:
            lines.append(f"  (the validation images predicted in tiles of {summary.validation_tile} px, merged as "
                         "'predict' merges them, and measured whole)")
    split = summary.split
    if split is not None:
        text = f"trained on {split.train.describe()}"
        if summary.validation:
            text += f"; validated on {split.validation.describe()}"
        lines.append(text)
    lines += [f"{WARNING_PREFIX}{warning}" for warning in summary.warnings]
    return lines


def _metric_pair(metrics: Mapping[str, float], voc_key: str, coco_key: str, voc_name: str) -> str:
    return f"{voc_name} {_value(metrics.get(voc_key))}, COCO mAP {_value(metrics.get(coco_key))}"


def _value(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"  # a class without ground truth in validation: nothing to average
    return f"{value:.3f}"


def _existing(path) -> Path | None:
    return Path(path) if path and Path(path).is_file() else None


def _count(number: int, noun: str) -> str:
    plural = noun + ("es" if noun.endswith("x") else "s")
    return f"{number} {noun if number == 1 else plural}"
