"""Pictures of a training run, drawn with matplotlib's Agg backend (no display needed).

- :func:`plot_training_curves`: the training loss per step and the
  validation mAP (VOC AP at the IoU threshold, COCO mAP@[.5:.95]) per epoch,
  side by side, from the run's :class:`~.callbacks.TrainingEvent` objects;
- :func:`draw_predictions`: one image with its ground-truth boxes (dashed) and
  the predicted boxes above a score threshold (solid, with class and score).

Both write a PNG atomically and return its path.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from napari_faster_rcnn.core.data.annotations import Annotation
from napari_faster_rcnn.core.data.atomic_files import atomic_write_bytes

# Distinct, readable colours for the classes (matplotlib's tab10 order).
_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
            "#17becf")


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


def _save(figure, path: str | Path) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    path = Path(path)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def plot_training_curves(events: Sequence, path: str | Path, title: str = "") -> Path:
    """Loss per step (left) and validation mAP per epoch (right) from a run's events."""
    steps = [(event.step, event.losses["loss"]) for event in events if event.kind == "step" and event.losses]
    epochs = [(event.step, event.metrics) for event in events if event.kind == "epoch" and event.metrics]
    figure = _figure(10, 4)
    loss_axes, map_axes = figure.subplots(1, 2)
    if steps:
        x, loss = np.array(steps, dtype=float).T
        loss_axes.plot(x, loss, color="#9ecae1", linewidth=0.8, label="per step")
        if len(loss) >= 10:
            window = max(5, len(loss) // 20)
            smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
            loss_axes.plot(x[window - 1:], smooth, color="#08519c", linewidth=1.8, label=f"mean of {window}")
        loss_axes.legend(loc="upper right")
    loss_axes.set(xlabel="step", ylabel="training loss (sum of the four terms)", title="Training loss")
    loss_axes.grid(alpha=0.3)
    if epochs:
        x = [step for step, _ in epochs]
        for key, label, colour in (("val/voc_map", "VOC AP@0.5 (mean over classes)", "#d62728"),
                                   ("val/coco_map", "COCO mAP@[.5:.95]", "#2ca02c")):
            values = [metrics.get(key, np.nan) for _, metrics in epochs]
            map_axes.plot(x, values, marker="o", color=colour, label=label)
        map_axes.legend(loc="lower right")
    map_axes.set(xlabel="step", ylabel="validation mAP", ylim=(0, 1.02), title="Validation, after each epoch")
    map_axes.grid(alpha=0.3)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return _save(figure, path)


def draw_predictions(image: np.ndarray, ground_truth: Annotation | None, prediction: Annotation,
                     classes: Sequence[str], path: str | Path, score_threshold: float = 0.5, scale: int = 3,
                     title: str = "") -> Path:
    """One image, enlarged ``scale`` times, with ground truth (dashed) and predictions above
    ``score_threshold`` (solid, labeled with class and score)."""
    from matplotlib.patches import Rectangle

    height, width = image.shape[:2]
    figure = _figure(width * scale / 100, height * scale / 100 + (0.35 if title else 0))
    axes = figure.add_axes((0, 0, 1, height / (height + (35 if title else 0) / scale)))
    axes.imshow(image, extent=(0, width, height, 0), interpolation="nearest")
    axes.set_axis_off()
    colour = {name: _COLOURS[index % len(_COLOURS)] for index, name in enumerate(classes)}
    if ground_truth is not None:
        for box in ground_truth.boxes:
            x1, y1, x2, y2 = box
            axes.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, linestyle="--", linewidth=1.2,
                                     edgecolor="white"))
    scores = prediction.scores if prediction.scores is not None else np.ones(len(prediction))
    for box, label, score in zip(prediction.boxes, prediction.labels, scores):
        if score < score_threshold:
            continue
        x1, y1, x2, y2 = box
        edge = colour.get(label, "#ffff00")
        axes.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, linewidth=2, edgecolor=edge))
        axes.text(x1, max(y1 - 1, 0), f"{label} {score:.2f}", color="white", fontsize=8, va="bottom",
                  bbox={"facecolor": edge, "edgecolor": "none", "pad": 1, "alpha": 0.85})
    axes.set_xlim(0, width)
    axes.set_ylim(height, 0)
    if title:
        figure.text(0.5, 1 - 0.3 / (height * scale / 100 + 0.35), title, ha="center", va="center", fontsize=9)
    return _save(figure, path)
