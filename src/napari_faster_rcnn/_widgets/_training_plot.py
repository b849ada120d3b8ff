"""The plot in the "Train detector" dock: training loss per step above, validation
mAP (VOC and COCO) per epoch below, in napari's dark theme.

**Drawn in a thread of its own.** napari's event loop must keep serving while a
run trains, but a full matplotlib draw (axes, ticks, legends: mostly text) took
25 ms of the main thread on a quiet machine and over 200 ms with the training
thread competing for the GIL and the CPU (measured), and ``blit`` repaints at
once. So :class:`PlotView` (matplotlib's Agg canvas, no Qt) renders into an image
in a render thread, and :class:`TrainingPlot` (the Qt widget) only hands it
snapshots of the progress and paints the last image it got back: a copy of a
few hundred kilobytes in the main thread per update. Only that thread touches
the figure.

Rendering is cheap as well: the widget asks for an update at most every
:data:`REDRAW_INTERVAL_MS`; updates coalesce (only the newest snapshot is
drawn); the axes are drawn once per run and kept as a background (the step axis
spans the whole run, known from its start; the loss axis goes from 0 to a round
number above the highest loss, so it changes only while the loss still rises,
early in a run), and an update
draws only the four lines over it (about 1 ms); the loss line shows at most
:data:`MAX_POINTS` points (means of runs of steps).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from qtpy.QtCore import QObject, Signal
from qtpy.QtGui import QImage, QPainter, QPixmap
from qtpy.QtWidgets import QSizePolicy, QWidget

from napari_faster_rcnn.core.statistics.plots import THEMES

logger = logging.getLogger(__name__)

REDRAW_INTERVAL_MS = 400
MAX_POINTS = 600
LOSS_COLOR, SMOOTH_COLOR, VOC_COLOR, COCO_COLOR = "#6baed6", "#1f9bff", "#ff7f50", "#5fd35f"
DPI = 90


@dataclass(frozen=True)
class Snapshot:
    """What one picture shows: copies of a progress's points, the size in pixels."""

    steps: np.ndarray
    losses: np.ndarray
    map_steps: np.ndarray
    voc_map: np.ndarray
    coco_map: np.ndarray
    total_steps: int | None
    iou_threshold: float
    width: int
    height: int
    run: int


def snapshot(progress, iou_threshold: float, width: int, height: int, run: int) -> Snapshot:
    def array(values):
        return np.array(values if progress is not None else [], dtype=float)

    return Snapshot(array(progress and progress.loss_steps), array(progress and progress.losses),
                    array(progress and progress.map_steps), array(progress and progress.voc_map),
                    array(progress and progress.coco_map), progress.total_steps if progress is not None else None,
                    iou_threshold, max(width, 50), max(height, 50), run)


class PlotView:
    """The figure and its Agg canvas; :meth:`render` draws a :class:`Snapshot` into RGBA bytes."""

    def __init__(self):
        palette = THEMES["dark"]
        self.figure = Figure(figsize=(4, 3), dpi=DPI, facecolor=palette["background"])
        self.canvas = FigureCanvasAgg(self.figure)
        self.figure.subplots_adjust(left=0.17, right=0.97, top=0.97, bottom=0.15, hspace=0.3)
        self.loss_axes, self.map_axes = self.figure.subplots(2, 1)
        for axes in (self.loss_axes, self.map_axes):
            axes.set_facecolor(palette["background"])
            axes.tick_params(colors=palette["text"], labelsize=8)
            for spine in axes.spines.values():
                spine.set_color(palette["frame"])
            axes.grid(alpha=0.25)
            axes.xaxis.set_major_locator(MaxNLocator(5, integer=True))
        self.loss_axes.yaxis.set_major_locator(MaxNLocator(4))
        self.loss_axes.set_ylabel("training loss", color=palette["text"], fontsize=9)
        self.map_axes.set_ylabel("validation mAP", color=palette["text"], fontsize=9)
        self.map_axes.set_xlabel("step", color=palette["text"], fontsize=9)
        self.map_axes.set_ylim(0, 1.02)

        def line(axes, color, label, **style):
            # animated: left out of full draws, drawn over the kept background
            return axes.plot([], [], color=color, label=label, animated=True, **style)[0]

        self.loss_line = line(self.loss_axes, LOSS_COLOR, "per step", linewidth=0.8)
        self.smooth_line = line(self.loss_axes, SMOOTH_COLOR, "mean", linewidth=1.8)
        self.voc_line = line(self.map_axes, VOC_COLOR, "VOC AP@0.5", marker="o", markersize=4)
        self.coco_line = line(self.map_axes, COCO_COLOR, "COCO mAP@[.5:.95]", marker="o", markersize=4)
        self.lines = (self.loss_line, self.smooth_line, self.voc_line, self.coco_line)
        self._background = None
        self._key = None
        self.renders = 0
        self.full_draws = 0
        self.seconds = 0.0  # drawing, in the render thread
        self.full_seconds = 0.0  # of which drawing the axes

    def render(self, shot: Snapshot) -> tuple[bytes, int, int]:
        start = time.perf_counter()
        self.loss_line.set_data(*thin(shot.steps, shot.losses))
        window = max(5, len(shot.losses) // 20)
        if len(shot.losses) >= 2 * window:
            smooth = np.convolve(shot.losses, np.ones(window) / window, mode="valid")
            self.smooth_line.set_data(*thin(shot.steps[window - 1:], smooth))
        else:
            self.smooth_line.set_data([], [])
        self.voc_line.set_data(shot.map_steps, shot.voc_map)
        self.coco_line.set_data(shot.map_steps, shot.coco_map)
        limits = self._limits(shot)
        key = (shot.width, shot.height, shot.run, shot.iou_threshold, limits)
        if key != self._key or self._background is None:
            logger.debug("plot axes drawn again: %s -> %s", self._key, key)
            self._key = key
            self.figure.set_size_inches(shot.width / DPI, shot.height / DPI)
            self.loss_axes.set_xlim(0, limits[0])
            self.map_axes.set_xlim(0, limits[0])
            self.loss_axes.set_ylim(*limits[1:])
            self.voc_line.set_label(f"VOC AP@{shot.iou_threshold:g}")
            self._legends()
            self.canvas.draw()
            self._background = self.canvas.copy_from_bbox(self.figure.bbox)
            self.full_draws += 1
            self.full_seconds += time.perf_counter() - start
        else:
            self.canvas.restore_region(self._background)
        for line in self.lines:
            line.axes.draw_artist(line)
        buffer = self.canvas.buffer_rgba()
        self.renders += 1
        self.seconds += time.perf_counter() - start
        return bytes(buffer), buffer.shape[1], buffer.shape[0]

    def _legends(self) -> None:
        for axes, place in ((self.loss_axes, "upper right"), (self.map_axes, "upper left")):
            legend = axes.legend(loc=place, fontsize=7, frameon=False)
            for text in legend.get_texts():
                text.set_color(THEMES["dark"]["text"])

    def _limits(self, shot: Snapshot) -> tuple[float, float, float]:
        """``(last step, 0, highest loss shown)``: the run's length when known (else doubling); the
        first of 1, 2, 2.5, 5 times a power of ten above every loss (1 before the first)."""
        last = max([*shot.steps[-1:], *shot.map_steps[-1:], 1.0])
        total = shot.total_steps
        right = float(total) if total and total >= last else float(2 ** int(np.ceil(np.log2(max(last, 8)))))
        finite = shot.losses[np.isfinite(shot.losses)]
        return right, 0.0, round_up(float(finite.max()) * 1.05) if len(finite) and finite.max() > 0 else 1.0


class _Bridge(QObject):
    rendered = Signal(object)  # (bytes, width, height), from the render thread to the main thread


class TrainingPlot(QWidget):
    """Shows a :class:`~napari_faster_rcnn.layers.training.TrainingProgress` as :class:`PlotView` renders it in its thread."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMinimumHeight(240)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.view = PlotView()
        self.progress = None
        self.iou_threshold = 0.5
        self.shown = 0  # pictures received from the render thread
        self.show_seconds = 0.0  # main-thread time spent taking them in
        self._run = 0
        self._pixmap: QPixmap | None = None
        self._request: Snapshot | None = None
        self._busy = False
        self._closing = False
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None
        self._bridge = _Bridge()
        self._bridge.rendered.connect(self._show)

    # --- what the widget calls ---------------------------------------------------------------

    def show_progress(self, progress, iou_threshold: float = 0.5) -> None:
        """Follow ``progress`` (a new run): the plot is empty until its first step."""
        self.progress, self.iou_threshold = progress, iou_threshold
        self._run += 1
        self.refresh()

    def refresh(self) -> None:
        """Ask for a picture of the progress as it is now (drawn in the render thread).

        Until a run's first step the plot stays empty: by then the step axis's
        length and the loss's range are known, so the axes are drawn once.
        """
        if self.progress is not None and not self.progress.loss_steps:
            self._pixmap = None
            self.update()
            return
        ratio = self.devicePixelRatioF()
        shot = snapshot(self.progress, self.iou_threshold, int(self.width() * ratio), int(self.height() * ratio),
                        self._run)
        with self._condition:
            if self._closing:
                return
            self._request = shot  # a newer snapshot replaces one not drawn yet
            self._condition.notify_all()
        if self._thread is None:
            self._thread = threading.Thread(target=self._render_loop, name="napari-faster-rcnn-plot", daemon=True)
            self._thread.start()

    def wait(self, timeout: float = 10.0) -> bool:
        """Wait until every picture asked for is drawn (its painting follows in the event loop)."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while self._request is not None or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._condition.wait(left)
        return True

    def stop(self) -> None:
        """End the render thread."""
        with self._condition:
            self._closing = True
            self._condition.notify_all()

    @property
    def loss_line(self):
        return self.view.loss_line

    @property
    def voc_line(self):
        return self.view.voc_line

    @property
    def coco_line(self):
        return self.view.coco_line

    # --- the render thread and painting -----------------------------------------------------------

    def _render_loop(self) -> None:
        while True:
            with self._condition:
                while self._request is None and not self._closing:
                    self._condition.wait()
                if self._closing:
                    return
                shot, self._request = self._request, None
                self._busy = True
            try:
                picture = self.view.render(shot)
            except Exception:  # noqa: BLE001 - a plot that fails must not end the thread or the run
                logger.exception("Train detector: drawing the plot failed")
                picture = None
            with self._condition:
                self._busy = False
                self._condition.notify_all()
            if picture is not None and not self._closing:
                try:
                    self._bridge.rendered.emit(picture)
                except RuntimeError:  # the widget is gone
                    return

    def _show(self, picture) -> None:
        start = time.perf_counter()
        data, width, height = picture
        image = QImage(data, width, height, width * 4, QImage.Format.Format_RGBA8888)
        self._pixmap = QPixmap.fromImage(image)  # a copy: data may go
        self._pixmap.setDevicePixelRatio(self.devicePixelRatioF())
        self.shown += 1
        self.update()
        self.show_seconds += time.perf_counter() - start

    def paintEvent(self, event) -> None:
        if self._pixmap is not None:
            painter = QPainter(self)
            painter.drawPixmap(0, 0, self._pixmap)
            painter.end()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.refresh()

    def closeEvent(self, event) -> None:
        self.stop()
        super().closeEvent(event)


def round_up(value: float) -> float:
    """The first of 1, 2, 2.5, 5 (times a power of ten) at or above ``value`` (> 0)."""
    power = 10.0 ** np.floor(np.log10(value))
    return float(next(step * power for step in (1, 2, 2.5, 5, 10) if step * power >= value))


def thin(x: np.ndarray, y: np.ndarray, count: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """At most ``count`` points: the means of equal runs of consecutive points."""
    if len(x) <= count:
        return x, y
    starts = np.linspace(0, len(x), count + 1).astype(int)[:-1]
    sizes = np.diff(np.append(starts, len(x)))
    return np.add.reduceat(x, starts) / sizes, np.add.reduceat(y, starts) / sizes
