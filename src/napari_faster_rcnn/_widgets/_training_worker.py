"""The workers of the "Train detector" widget, and the watch on the viewer's window that stops a run.

:class:`TrainingWorker` is napari's generator worker with the changes a training
run needs (see its docstring), :class:`QuietFunctionWorker` a function worker
whose errors the widget shows itself; :class:`CloseWatcher` calls the widget's
``shutdown`` when the viewer's window closes, which no dock widget hears
otherwise.
"""

from __future__ import annotations

import logging
import warnings

from napari.qt.threading import FunctionWorker, GeneratorWorker
from qtpy.QtCore import QEvent, QObject

from napari_faster_rcnn.layers.training import TrainingJob

logger = logging.getLogger(__name__)


class TrainingWorker(GeneratorWorker):
    """napari's generator worker for a :class:`~napari_faster_rcnn.layers.training.TrainingJob`.

    ``quit()`` (which napari calls on every running worker when its window closes
    or the application quits) asks the run to stop after its step, instead of
    abandoning the generator with the run going on behind it; the generator then
    ends as after Stop. Errors are the widget's to
    show, once and with the cause; warnings (Lightning's hints) go to the log,
    not into notifications.
    """

    job: TrainingJob | None = None

    def quit(self) -> None:
        if self.job is not None:
            self.job.stop()
        else:
            super().quit()

    def _relay_error(self, exc) -> None:
        pass

    def _relay_warning(self, show_warn_args) -> None:
        message, category, filename, lineno = show_warn_args[:4]
        logger.warning("%s", warnings.formatwarning(message, category, filename, lineno).strip())


class QuietFunctionWorker(FunctionWorker):
    """napari's function worker, but errors are the widget's to show (once, with the cause)."""

    def _relay_error(self, exc) -> None:
        pass


class CloseWatcher(QObject):
    """Stops the widget's run when the viewer's window (or its canvas, which ``viewer.close()``
    closes first) closes."""

    def __init__(self, viewer, widget):
        super().__init__(viewer.window._qt_window)
        self.widget = widget
        viewer.window._qt_window.installEventFilter(self)
        viewer.window._qt_viewer.installEventFilter(self)

    def eventFilter(self, watched, event) -> bool:
        if event.type() == QEvent.Type.Close:
            try:
                self.widget.shutdown()
            except Exception:  # noqa: BLE001 - an exception here would abort the process
                logger.exception("Train detector: stopping the run on closing failed")
        return False
