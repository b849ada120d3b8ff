"""Small pieces shared by the widgets: the dock widgets' base class, a combo box of layers that keeps
itself current, a compact table sized to its rows, a worker's progress bar, a form's row of widgets."""

from __future__ import annotations

from collections.abc import Callable

from napari.qt.threading import create_worker
from qtpy.QtCore import QEvent
from qtpy.QtWidgets import QComboBox, QHBoxLayout, QHeaderView, QLabel, QLineEdit, QSpinBox, QTableWidget, QWidget


class DockedWidget(QWidget):
    """A dock widget that lets go of the viewer once: when it is closed, or when napari takes it out of
    its dock.

    napari's dock "x" button (``remove_dock_widget``) sets the widget's parent to None and deletes the
    dock, without a close event. A widget still connected to the viewer after that would go on drawing
    its layers and answering its keys. Subclasses put what they connected to the viewer in
    :meth:`teardown`.
    """

    _docked = False  # class attributes: Qt may send events before __init__ sets anything
    _torn_down = False

    def teardown(self) -> None:
        """Disconnect from the viewer, stop workers (called once)."""

    def _tear_down_once(self) -> None:
        if not self._torn_down:
            self._torn_down = True
            self.teardown()

    def event(self, event) -> bool:
        if event.type() == QEvent.Type.ParentChange:
            if self.parent() is not None:
                self._docked = True
            elif self._docked:
                self._tear_down_once()
        return super().event(event)

    def closeEvent(self, event) -> None:
        self._tear_down_once()
        super().closeEvent(event)


def start_worker(function, *args, errored: Callable, desc: str | None = None, button=None,
                 yielded: Callable | None = None, returned: Callable | None = None,
                 finished: Callable | None = None):
    """Run ``function(*args)`` in a napari worker whose handlers are all connected before it starts
    (a fast worker could finish before a handler connected afterwards sees it); returns the worker.

    ``errored`` is given to the worker itself, so that it does not also raise the error in the main
    thread; ``desc`` names its progress bar in napari's activity dock; ``button`` is disabled until the
    worker has finished.
    """
    worker = create_worker(function, *args, _connect={"errored": errored}, _start_thread=False,
                           **({"_progress": {"desc": desc}} if desc is not None else {}))
    for signal, handler in (("yielded", yielded), ("returned", returned), ("finished", finished)):
        if handler is not None:  # a function (not generator) worker has no `yielded`
            getattr(worker, signal).connect(handler)
    if button is not None:
        button.setEnabled(False)
        worker.finished.connect(lambda: button.setEnabled(True))
    worker.start()
    return worker


class LayerCombo(QComboBox):
    """The viewer's layers that ``accept`` allows, kept current as layers come, go and are renamed."""

    def __init__(self, viewer, accept: Callable, parent=None):
        super().__init__(parent)
        self.viewer = viewer
        self.accept = accept
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(12)
        for emitter in (viewer.layers.events.inserted, viewer.layers.events.removed, viewer.layers.events.moved):
            emitter.connect(self.refresh)
        self.refresh()

    def refresh(self, event=None) -> None:
        current = self.layer()
        layers = [layer for layer in self.viewer.layers if self.accept(layer)]
        self.blockSignals(True)
        self.clear()
        for layer in layers:
            self.addItem(layer.name, layer)
        if current in layers:
            self.setCurrentIndex(layers.index(current))
        self.blockSignals(False)
        if self.layer() is not current:
            self.currentIndexChanged.emit(self.currentIndex())

    def layer(self):
        """The chosen layer, or None."""
        index = self.currentIndex()
        return self.itemData(index) if index >= 0 else None

    def set_layer(self, layer) -> None:
        index = self.findData(layer)
        if index >= 0:
            self.setCurrentIndex(index)

    def disconnect_viewer(self) -> None:
        for emitter in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed,
                        self.viewer.layers.events.moved):
            emitter.disconnect(self.refresh)


def set_progress(worker, done: int, total: int) -> None:
    """Show ``done`` of ``total`` on the napari progress bar of a ``create_worker(..., _progress=...)`` worker."""
    bar = getattr(worker, "pbar", None)
    if bar is not None:
        bar.total, bar.n = total, done
        bar.refresh()


def compact_table(columns) -> QTableWidget:
    """A table of ``columns`` without row numbers, its columns fitted to their contents, as high as its header."""
    table = QTableWidget(0, len(columns))
    table.setHorizontalHeaderLabels(list(columns))
    table.verticalHeader().setVisible(False)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    table.horizontalHeader().setStretchLastSection(True)
    table.setFixedHeight(table.horizontalHeader().sizeHint().height() + 4)
    return table


def fit_table_rows(table: QTableWidget, rows: int, most: int) -> None:
    """Give ``table`` ``rows`` rows and the height to show them, at most ``most`` (it scrolls beyond)."""
    table.setRowCount(rows)
    visible = table.verticalHeader().defaultSectionSize() * min(rows, most)
    table.setFixedHeight(table.horizontalHeader().height() + visible + 4)


def size_box(value: int, tooltip: str) -> QSpinBox:
    """A spin box for an image size in pixels (the model's min_size or max_size)."""
    box = QSpinBox()
    box.setRange(32, 8192)
    box.setSingleStep(32)
    box.setValue(value)
    box.setSuffix(" px")
    box.setToolTip(tooltip)
    box.setKeyboardTracking(False)  # one update per typed number, not per digit
    return box


def row(*items) -> QWidget:
    """``items`` side by side without margins (one form row): a text becomes a label, a line edit or a
    combo box takes the width left over."""
    holder = QWidget()
    layout = QHBoxLayout(holder)
    layout.setContentsMargins(0, 0, 0, 0)
    for item in items:
        widget = QLabel(item) if isinstance(item, str) else item
        layout.addWidget(widget, 1 if isinstance(widget, (QLineEdit, QComboBox)) else 0)
    return holder
