"""The plot in the "Train detector" dock: training loss per step above, validation mAP (VOC
and COCO) per epoch below, in napari's dark theme.

Redrawing a matplotlib canvas takes tens of milliseconds of the main thread,
and training may take a step every few milliseconds on a GPU, so the widget
redraws at most every :data:`REDRAW_INTERVAL_MS` (:meth:`TrainingPlot.schedule`)
and never once per event: the lines take the new points and the canvas
repaints when the timer fires.
"""

from __future__ import annotations

import time

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QSizePolicy

from ..core.statistics_plots import THEMES

REDRAW_INTERVAL_MS = 400
#: The loss line shows at most this many points (means of equal runs of steps): the plot is a
#: few hundred pixels wide, and drawing 100,000 points would take the main thread too long.
MAX_POINTS = 600
LOSS_COLOR, SMOOTH_COLOR, VOC_COLOR, COCO_COLOR = "#6baed6", "#1f9bff", "#ff7f50", "#5fd35f"


class TrainingPlot(FigureCanvasQTAgg):
    """Loss per step and mAP per epoch of a :class:`~.._training.TrainingProgress`."""

    def __init__(self, parent=None):
        palette = THEMES["dark"]
        # fixed margins: matplotlib's constrained layout would double the time of every redraw
        self.figure = Figure(figsize=(3.6, 3.4), dpi=90, facecolor=palette["background"])
        self.figure.subplots_adjust(left=0.17, right=0.97, top=0.97, bottom=0.15, hspace=0.3)
        super().__init__(self.figure)
        self.setParent(parent)
        self.setMinimumHeight(240)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.loss_axes, self.map_axes = self.figure.subplots(2, 1)
        for axes in (self.loss_axes, self.map_axes):
            axes.set_facecolor(palette["background"])
            axes.tick_params(colors=palette["text"], labelsize=8)
            for spine in axes.spines.values():
                spine.set_color(palette["frame"])
            axes.grid(alpha=0.25)
        self.loss_axes.set_ylabel("training loss", color=palette["text"], fontsize=9)
        self.map_axes.set_ylabel("validation mAP", color=palette["text"], fontsize=9)
        self.map_axes.set_xlabel("step", color=palette["text"], fontsize=9)
        self.map_axes.set_ylim(0, 1.02)
        (self.loss_line,) = self.loss_axes.plot([], [], color=LOSS_COLOR, linewidth=0.8, label="per step")
        (self.smooth_line,) = self.loss_axes.plot([], [], color=SMOOTH_COLOR, linewidth=1.8, label="mean")
        (self.voc_line,) = self.map_axes.plot([], [], marker="o", markersize=4, color=VOC_COLOR, label="VOC AP@0.5")
        (self.coco_line,) = self.map_axes.plot([], [], marker="o", markersize=4, color=COCO_COLOR,
                                               label="COCO mAP@[.5:.95]")
        self._legends()
        self.progress = None
        self.redraws = 0
        self.draw_seconds = 0.0
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(REDRAW_INTERVAL_MS)
        self._timer.timeout.connect(self.refresh)

    def show_progress(self, progress, iou_threshold: float = 0.5) -> None:
        """Follow ``progress`` (a new run): clear the lines."""
        self.progress = progress
        self.voc_line.set_label(f"VOC AP@{iou_threshold:g}")
        self._legends()
        self.refresh()

    def _legends(self) -> None:
        for axes, place in ((self.loss_axes, "upper right"), (self.map_axes, "lower right")):
            legend = axes.legend(loc=place, fontsize=7, frameon=False)
            for text in legend.get_texts():
                text.set_color(THEMES["dark"]["text"])

    def schedule(self) -> None:
        """Redraw soon: within :data:`REDRAW_INTERVAL_MS`, once for however many updates come meanwhile."""
        if not self._timer.isActive():
            self._timer.start()

    def refresh(self) -> None:
        """Put the progress's points into the lines and repaint now."""
        self._timer.stop()
        start = time.perf_counter()
        progress = self.progress
        steps = np.asarray(progress.loss_steps if progress else [], dtype=float)
        losses = np.asarray(progress.losses if progress else [], dtype=float)
        window = max(5, len(losses) // 20)
        if len(losses) >= 2 * window:
            smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
            self.smooth_line.set_data(*thin(steps[window - 1:], smooth))
        else:
            self.smooth_line.set_data([], [])
        self.loss_line.set_data(*thin(steps, losses))
        map_steps = progress.map_steps if progress else []
        self.voc_line.set_data(map_steps, progress.voc_map if progress else [])
        self.coco_line.set_data(map_steps, progress.coco_map if progress else [])
        self.loss_axes.relim()
        self.loss_axes.autoscale_view()
        last = max([*steps[-1:], *map_steps[-1:], 1])
        self.map_axes.set_xlim(self.loss_axes.get_xlim() if len(steps) > 1 else (0, last))
        self.draw()
        self.redraws += 1
        self.draw_seconds += time.perf_counter() - start


def thin(x: np.ndarray, y: np.ndarray, count: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """At most ``count`` points: the means of equal runs of consecutive points."""
    if len(x) <= count:
        return x, y
    starts = np.linspace(0, len(x), count + 1).astype(int)[:-1]
    sizes = np.diff(np.append(starts, len(x)))
    return np.add.reduceat(x, starts) / sizes, np.add.reduceat(y, starts) / sizes
