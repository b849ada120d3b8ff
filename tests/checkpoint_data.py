"""A tiny trained checkpoint for the prediction tests, made once per test session.

Two training steps of the ``cpu`` preset at 64 px on six synthetic images,
through :func:`~napari_faster_rcnn.core.training.module.run.run_training`, so the file
is what training writes. The model predicts nothing sensible (every score is
near 1 / 4), which is all the tests need: boxes, labels, scores and their files.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

_MADE: dict[str, Path] = {}


def tiny_checkpoint(tmp_path_factory) -> Path:
    """The path of ``last.ckpt`` of a two-step run (made on the first call of the session)."""
    key = str(tmp_path_factory.getbasetemp())
    if key not in _MADE:
        from napari_faster_rcnn.core.data.synthetic import write_synthetic_dataset
        from napari_faster_rcnn.core.training.run import run_training
        from napari_faster_rcnn.core.training.settings import TrainingSettings
        from napari_faster_rcnn.core.training.transforms import AugmentationConfig

        root = tmp_path_factory.mktemp("checkpoint")
        data = write_synthetic_dataset(root / "shapes", 6, seed=5, height=64, width=64)
        result = run_training(TrainingSettings(
            data=data, output=root / "run", preset="cpu", model={"min_size": 64, "max_size": 64},
            split_ratios=(0.67, 0.33), epochs=1, max_steps=2, batch_size=2, num_workers=0, accelerator="cpu",
            augmentation=AugmentationConfig.none(), warmup_steps=1, seed=0,
        ))
        _MADE[key] = result.last_checkpoint
    return _MADE[key]


def assert_same_detections(first, second, atol=1e-3):
    """Assert two runs found the same detections, in whatever order near-equal scores put them.

    Each detection of ``first`` is paired with the detection of ``second`` of
    its label whose box and score are nearest; the pairs must be one to one and
    agree within ``atol``.
    """
    assert len(first) == len(second)
    if not len(first):
        return
    same_label = np.array(first.labels, dtype=object)[:, None] == np.array(second.labels, dtype=object)[None, :]
    distance = np.abs(first.boxes[:, None, :] - second.boxes[None, :, :]).max(axis=2)
    distance += np.abs(first.scores[:, None] - second.scores[None, :])
    distance[~same_label] = np.inf
    nearest = distance.argmin(axis=1)
    assert len(set(nearest.tolist())) == len(first), "two detections paired with one"
    assert distance[np.arange(len(first)), nearest].max() < atol


class RunsCode:
    """A pickled object that would create ``marker`` when unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def shapes_frames(folder: Path, count: int, seed: int = 3, size: int = 64):
    """``count`` synthetic-shapes images written under ``folder / "shapes"``: their PNGs, and their first
    channels stacked as the frames of a gray stack ``(count, size, size)``."""
    from napari_faster_rcnn.core.data.images import read_image
    from napari_faster_rcnn.core.data.synthetic import write_synthetic_dataset

    dataset = write_synthetic_dataset(Path(folder) / "shapes", count, seed=seed, height=size, width=size)
    pngs = sorted((dataset / "input").glob("*.png"))
    return pngs, np.stack([read_image(p)[:, :, 0] for p in pngs])


def raw_detections(checkpoint: Path, images) -> list:
    """The checkpoint's raw detections of ``images`` (paths or arrays), made without any widget."""
    from napari_faster_rcnn.core.model.checkpoints import load_checkpoint
    from napari_faster_rcnn.core.prediction.run import predict_images

    loaded = load_checkpoint(checkpoint)
    records, _ = predict_images(loaded.model, list(images), loaded.classes)
    return [record.annotation for record in records]


def loaded_predict_widget(viewer, qtbot, checkpoint: Path, score: float | None = None):
    """A Predict widget docked in ``viewer`` with ``checkpoint`` loaded, tiling off (and ``score`` set)."""
    from napari_faster_rcnn._widgets.predict import PredictWidget

    widget = PredictWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.path.setText(str(checkpoint))
    assert widget.load() is not None
    qtbot.waitUntil(widget.load_button.isEnabled, timeout=60_000)
    widget.tile.setValue(0)
    if score is not None:
        widget.score.setValue(score)
    return widget
