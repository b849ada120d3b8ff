"""The class table of the "Label boxes" widget: each class's key, name (with its colour) and
box counts on this image and in all images; a name is renamed by editing it."""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtGui import QColor, QIcon, QPixmap
from qtpy.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

from napari_faster_rcnn.layers import conventions, labeling

COLUMNS = ("key", "class", "here", "all")


class ClassTable(QTableWidget):
    """One row per class of a labeling session; the name column is editable and carries the old name."""

    def __init__(self, parent=None):
        super().__init__(0, len(COLUMNS), parent)
        self.setHorizontalHeaderLabels(COLUMNS)
        self.verticalHeader().setVisible(False)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked | QAbstractItemView.EditTrigger.EditKeyPressed)
        header = self.horizontalHeader()
        for column, mode in enumerate((QHeaderView.ResizeMode.ResizeToContents, QHeaderView.ResizeMode.Stretch,
                                       QHeaderView.ResizeMode.ResizeToContents,
                                       QHeaderView.ResizeMode.ResizeToContents)):
            header.setSectionResizeMode(column, mode)
        self.setToolTip("click a class (or press its key) for the next rectangles; double-click a name "
                        "to rename it; 'here' counts boxes on this image, 'all' in every image")

    def show_session(self, session) -> None:
        """Fill the rows from ``session`` and highlight its current class (without emitting signals)."""
        here, everywhere = session.current_counts(), session.total_counts()
        colors = session.layer.metadata.get(conventions.CLASS_COLORS, {})
        self.blockSignals(True)
        self.setRowCount(len(session.classes))
        for row, name in enumerate(session.classes):
            key = str(row + 1) if row < len(labeling.CLASS_KEYS) else ""
            cells = (key, name, str(here.get(name, 0)), f"{everywhere.get(name, 0):,}")
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                flags = Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsEnabled
                if column == 1:
                    flags |= Qt.ItemFlag.ItemIsEditable
                    item.setIcon(_swatch(colors.get(name, "#ffffff")))
                    item.setData(Qt.ItemDataRole.UserRole, name)
                else:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                item.setFlags(flags)
                self.setItem(row, column, item)
        if session.current_class in session.classes:
            self.selectRow(session.classes.index(session.current_class))
        else:
            self.clearSelection()
        self.fit()
        self.blockSignals(False)

    def fit(self) -> None:
        """As tall as its rows (two to eight; then it scrolls)."""
        count = self.rowCount()
        shown = min(max(count, 2), 8)
        row = self.rowHeight(0) if count else self.verticalHeader().defaultSectionSize()
        self.setFixedHeight(self.horizontalHeader().sizeHint().height() + row * shown + 2 * self.frameWidth() + 4)

    def showEvent(self, event) -> None:
        self.fit()  # the header has its real height once the style is applied
        super().showEvent(event)

    def selected_class(self) -> str | None:
        """The highlighted class, or None."""
        rows = self.selectionModel().selectedRows()
        if not rows:
            return None
        item = self.item(rows[0].row(), 1)
        return item.data(Qt.ItemDataRole.UserRole) if item is not None else None


def _swatch(color: str) -> QIcon:
    pixmap = QPixmap(12, 12)
    pixmap.fill(QColor(color))
    icon = QIcon(pixmap)
    icon.addPixmap(pixmap, QIcon.Mode.Selected)  # the true colour on the highlighted row too, not tinted
    return icon
