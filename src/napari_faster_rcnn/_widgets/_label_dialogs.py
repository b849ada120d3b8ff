"""The questions the "Label boxes" widget asks, as message boxes, and the guard that asks them
before the viewer's window closes with unsaved boxes."""

from __future__ import annotations

from pathlib import Path

from qtpy.QtCore import QEvent, QObject
from qtpy.QtWidgets import QMessageBox

from napari_faster_rcnn.layers import label_saving, labeling


def confirm_overwrite(parent, paths: list[Path]) -> bool:
    """Overwrite annotation files another program changed?"""
    names = "\n".join(str(p) for p in paths[:8]) + (f"\n… and {len(paths) - 8} more" if len(paths) > 8 else "")
    answer = QMessageBox.question(
        parent, "Annotation changed on disk",
        f"{len(paths)} annotation file(s) changed on disk since they were opened, by another program:\n\n"
        f"{names}\n\nOverwrite them with the boxes in the viewer?",
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No,
    )
    return answer == QMessageBox.StandardButton.Yes


def confirm_remove_class(parent, name: str, count: int) -> bool:
    """Remove a class and delete its boxes?"""
    answer = QMessageBox.question(
        parent, "Remove class", f"Remove the class {name!r} and delete its {count:,} box(es) in every image?",
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No,
    )
    return answer == QMessageBox.StandardButton.Yes


def ask_unsaved(parent, count: int, can_cancel: bool) -> str:
    """Save, discard (or cancel) unsaved boxes?"""
    buttons = QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
    if can_cancel:
        buttons |= QMessageBox.StandardButton.Cancel
    answer = QMessageBox.question(
        parent, "Unsaved boxes",
        f"{count} image(s) have boxes that are not saved. Save them?", buttons, QMessageBox.StandardButton.Save,
    )
    return {QMessageBox.StandardButton.Save: label_saving.SAVE,
            QMessageBox.StandardButton.Discard: label_saving.DISCARD}.get(answer, label_saving.CANCEL)


class CloseGuard(QObject):
    """Saves (autosave) or asks before the viewer's window closes with unsaved boxes.

    ``viewer.close()`` closes the canvas first and cannot be stopped; closing the
    window (its close button, Ctrl+W, Ctrl+Q) can: there the question offers Cancel.
    """

    def __init__(self, viewer):
        super().__init__(viewer.window._qt_window)
        self.viewer = viewer

    @classmethod
    def install(cls, viewer) -> None:
        window = viewer.window._qt_window
        if window.findChild(cls) is None:
            guard = cls(viewer)
            window.installEventFilter(guard)
            viewer.window._qt_viewer.installEventFilter(guard)

    def eventFilter(self, watched, event) -> bool:
        if event.type() == QEvent.Type.Close:
            can_cancel = watched is self.parent()
            for session in labeling.sessions(self.viewer):
                if not session.resolve_unsaved(can_cancel):
                    event.ignore()
                    return True
        return False
