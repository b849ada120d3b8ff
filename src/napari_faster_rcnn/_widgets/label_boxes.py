"""The "Label boxes" dock widget: classes, navigation through a stack, saving, import and export.

A thin view of a :class:`~napari_faster_rcnn.layers.labeling.LabelingSession`: the controls call the
session, and the session's ``changed``/``saved`` events redraw the labels. The
class table is :mod:`._class_table`; Import… and Export… (COCO, VOC, YOLO) are
:mod:`._interchange_actions`. The questions the session asks (overwrite a file
another program changed, remove a class that has boxes, unsaved edits on
closing) are message boxes (:mod:`._label_dialogs`); tests replace
:meth:`LabelBoxesWidget.confirm_overwrite`, :meth:`~LabelBoxesWidget.confirm_remove_class`
and :meth:`~LabelBoxesWidget.ask_unsaved`.

The viewer gets ``n``, ``b`` and ``1``..``9`` too (the box and image layers have
them from the session), and a guard on the main window saves or asks before it
closes with unsaved edits.
"""

from __future__ import annotations

from pathlib import Path

from napari.layers import Image
from qtpy.QtCore import Qt
from qtpy.QtGui import QColor
from qtpy.QtWidgets import (
    QCheckBox,
    QColorDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
)

from napari_faster_rcnn._widgets import _label_dialogs as dialogs
from napari_faster_rcnn._widgets._class_table import ClassTable
from napari_faster_rcnn._widgets._common import DockedWidget, LayerCombo
from napari_faster_rcnn._widgets._interchange_actions import InterchangeActions
from napari_faster_rcnn._widgets._ranking import NextMostUseful
from napari_faster_rcnn._widgets._suggestions import SuggestionsBox
from napari_faster_rcnn.layers import box_colors, box_layers, conventions, labeling, stack_labeling
from napari_faster_rcnn.layers.conventions import is_boxes
from napari_faster_rcnn.layers.interchange import read_only_note

SHOWN_UNLABELED = 6  # names listed before "and N more"


class LabelBoxesWidget(DockedWidget):
    """Label boxes on one image or a stack: classes and their keys, next / previous image, autosave."""

    def __init__(self, napari_viewer):
        super().__init__()
        # napari hands plugin widgets a proxy of the viewer; the close guard needs its real window
        napari_viewer = getattr(napari_viewer, "__wrapped__", napari_viewer)
        self.viewer = napari_viewer
        self.session: labeling.LabelingSession | None = None
        self.stack_layer = None  # a stack read as data (time, z): labeled planes, not pages of images
        self._viewer_keys: list[tuple] = []

        self.boxes = LayerCombo(napari_viewer, is_boxes)
        self.boxes.setToolTip("the box layer to label (open an image or a dataset folder with Faster R-CNN)")
        self.image = LayerCombo(napari_viewer, lambda layer: isinstance(layer, Image))
        self.new_layer = QPushButton("New box layer")
        self.new_layer.setToolTip("start an empty box layer on this image layer (existing annotation files beside "
                                  "its images are loaded)")
        new_row = QHBoxLayout()
        new_row.addWidget(self.image, 1)
        new_row.addWidget(self.new_layer)
        form = QFormLayout()
        form.addRow("boxes", self.boxes)
        form.addRow("image", new_row)

        # classes
        self.classes = ClassTable()
        self.class_name = QLineEdit()
        self.class_name.setPlaceholderText("new class name")
        self.add_button = QPushButton("Add")
        self.color_button = QPushButton("Colour…")
        self.remove_button = QPushButton("Remove")
        self.move_button = QPushButton("Selected boxes → class")
        self.move_button.setToolTip("give the boxes selected on this image the highlighted class")
        add_row = QHBoxLayout()
        add_row.addWidget(self.class_name, 1)
        add_row.addWidget(self.add_button)
        edit_row = QHBoxLayout()
        for button in (self.color_button, self.remove_button, self.move_button):
            edit_row.addWidget(button)
        class_layout = QVBoxLayout()
        class_layout.addWidget(self.classes)
        class_layout.addLayout(add_row)
        class_layout.addLayout(edit_row)
        class_box = QGroupBox("Classes (keys 1-9)")
        class_box.setLayout(class_layout)

        # navigation
        self.position = QLabel("no box layer")
        self.position.setWordWrap(True)
        self.previous_button = QPushButton("◀ Previous (b)")
        self.next_button = QPushButton("Next (n) ▶")
        self.unlabeled_button = QPushButton("Next unlabeled")
        self.unlabeled_button.setToolTip("go to the next image without boxes")
        self.unlabeled = QLabel("")
        self.unlabeled.setWordWrap(True)
        navigation_row = QHBoxLayout()
        for button in (self.previous_button, self.next_button, self.unlabeled_button):
            navigation_row.addWidget(button)
        navigation_layout = QVBoxLayout()
        navigation_layout.addWidget(self.position)
        navigation_layout.addLayout(navigation_row)
        navigation_layout.addWidget(self.unlabeled)
        self.next_useful = NextMostUseful(self)  # "Next most useful": ranks the unlabeled images with a model
        navigation_layout.addWidget(self.next_useful)
        navigation_box = QGroupBox("Images")
        navigation_box.setLayout(navigation_layout)

        # files: Save, autosave, Import… and Export…
        self.save_button = QPushButton("Save")
        self.save_button.setToolTip("write every image with unsaved edits to its annotation file")
        self.autosave = QCheckBox("autosave")
        self.autosave.setChecked(True)
        self.autosave.setToolTip("save an image's annotation file when you leave it, and after class changes")
        self.file_actions = QHBoxLayout()
        self.file_actions.addWidget(self.save_button)
        self.file_actions.addWidget(self.autosave)
        self.file_actions.addStretch(1)
        self.interchange = InterchangeActions(self)  # Import… and Export…, before the stretch
        self.status = QLabel("")
        self.status.setWordWrap(True)
        file_layout = QVBoxLayout()
        file_layout.addLayout(self.file_actions)
        file_layout.addWidget(self.status)
        file_box = QGroupBox("Files")
        file_box.setLayout(file_layout)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(class_box)
        layout.addWidget(navigation_box)
        layout.addWidget(file_box)
        self.suggestions = SuggestionsBox(napari_viewer)  # a model's boxes as suggestions (_suggestions)
        layout.addWidget(self.suggestions)
        layout.addStretch(1)

        self.boxes.currentIndexChanged.connect(self._on_layer)
        self.new_layer.clicked.connect(self.start_new_layer)
        self.add_button.clicked.connect(self.add_class)
        self.class_name.returnPressed.connect(self.add_class)
        self.color_button.clicked.connect(self.recolor_class)
        self.remove_button.clicked.connect(self.remove_class)
        self.move_button.clicked.connect(self.move_selected)
        self.classes.itemSelectionChanged.connect(self._on_class_clicked)
        self.classes.itemChanged.connect(self._on_class_edited)
        self.previous_button.clicked.connect(lambda: self.session and self.session.previous_image())
        self.next_button.clicked.connect(lambda: self.session and self.session.next_image())
        self.unlabeled_button.clicked.connect(self.next_unlabeled)
        self.save_button.clicked.connect(self.save)
        self.autosave.toggled.connect(self._on_autosave)
        self._bind_viewer_keys()
        dialogs.CloseGuard.install(napari_viewer)
        self._on_layer()

    # --- the session --------------------------------------------------------------------------

    def _on_layer(self, index=None) -> None:
        if self.session is not None:
            self.session.events.changed.disconnect(self.refresh)
            self.session.events.saved.disconnect(self._on_saved)
        layer = self.boxes.layer()
        self.stack_layer = layer if layer is not None and stack_labeling.is_stack_layer(layer) else None
        self.session = labeling.labeling_session(self.viewer, layer) if layer is not None else None
        if self.session is not None:
            self.session.confirm_overwrite = lambda paths: self.confirm_overwrite(paths)
            self.session.confirm_remove_class = lambda name, count: self.confirm_remove_class(name, count)
            self.session.ask_unsaved = lambda count, can_cancel: self.ask_unsaved(count, can_cancel)
            self.session.autosave = self.autosave.isChecked()
            self.session.events.changed.connect(self.refresh)
            self.session.events.saved.connect(self._on_saved)
            self.status.setText(_file_note(self.session))
        self.suggestions.set_session(self.session)
        self.refresh()

    def start_new_layer(self):
        """Add an empty box layer on the chosen image layer and label it."""
        image = self.image.layer()
        if image is None:
            self.status.setText("open an image first")
            return None
        try:
            layer = box_layers.new_box_layer(self.viewer, image)
        except ValueError as error:  # an unreadable annotation beside the image, or too many dimensions
            self.status.setText(str(error))
            return None
        self.boxes.set_layer(layer)
        return layer

    def refresh(self, event=None) -> None:
        """Show what the session holds now."""
        session = self.session
        enabled = session is not None and not session.closed
        for control in (self.classes, self.class_name, self.add_button, self.color_button, self.remove_button,
                        self.move_button, self.previous_button, self.next_button, self.unlabeled_button,
                        self.save_button):
            control.setEnabled(enabled)
        self.interchange.refresh()
        if not enabled:
            self.position.setText("no box layer: open an image or a dataset folder with Faster R-CNN, or start a "
                                  "new box layer on an image layer")
            self.unlabeled.setText("")
            self.classes.setRowCount(0)
            return
        index, count = session.current or 0, len(session)
        name = session.image_name(index)
        window = session.window_status()  # a crowded image: only the boxes around the view are editable
        self.position.setText(f"image {index + 1} of {count}" + (f": {name}" if name else "") + (f"; {window}" if window else ""))
        self.previous_button.setEnabled(index > 0)
        self.next_button.setEnabled(index < count - 1)
        self.classes.show_session(session)
        unsaved = len(session.store.dirty)  # images left with edits (the one on screen counts once left)
        self.save_button.setText(f"Save ({unsaved} unsaved)" if unsaved else "Save")
        empty = session.unlabeled()
        self.unlabeled_button.setEnabled(bool([i for i in empty if i != index]))
        self.unlabeled_button.setToolTip("go to the next image without boxes")
        if session.is_stack:
            self._refresh_stack(count - len(empty), count)
        elif session.has_planes:  # a folder whose pages include stacks' planes: labeled pages out of all
            self.unlabeled.setText(f"{count - len(empty)} of {count} labeled (draw a box, or press "
                                   f"{stack_labeling.NO_OBJECTS_KEY} for 'no objects here')")
            self.unlabeled_button.setToolTip("go to the next page nobody labeled (no box, no file, not marked with "
                                             f"{stack_labeling.NO_OBJECTS_KEY})")
        elif not empty:
            self.unlabeled.setText("every image has boxes")
        else:
            names = [session.image_name(i) or f"#{i + 1}" for i in empty[:SHOWN_UNLABELED]]
            more = f" and {len(empty) - SHOWN_UNLABELED} more" if len(empty) > SHOWN_UNLABELED else ""
            self.unlabeled.setText(f"{len(empty)} of {count} without boxes: {', '.join(names)}{more}")

    def _refresh_stack(self, labeled: int, count: int) -> None:
        """A stack read as data: the plane shown and the labeled planes out of all."""
        session = self.session
        window = session.window_status()
        self.position.setText(f"{session.image_name(session.current or 0)} of a stack of {count} planes"
                              + (f"; {window}" if window else ""))
        self.unlabeled.setText(f"{labeled} of {count} planes labeled (draw a box, or press "
                               f"{stack_labeling.NO_OBJECTS_KEY} for 'no objects here')")
        self.unlabeled_button.setToolTip("go to the next plane nobody labeled (no box drawn, not marked with "
                                         f"{stack_labeling.NO_OBJECTS_KEY})")

    def selected_class(self) -> str | None:
        return self.classes.selected_class() if self.session is not None else None

    # --- controls -> session --------------------------------------------------------------------

    def _on_class_clicked(self) -> None:
        name = self.selected_class()
        if name is not None and name != self.session.current_class:
            self.session.set_current_class(name)

    def _on_class_edited(self, item) -> None:
        old = item.data(Qt.ItemDataRole.UserRole)
        if item.column() != 1 or old is None or item.text() == old:
            return
        try:
            self.session.rename_class(old, item.text())
        except ValueError as error:
            self.status.setText(str(error))
            self.refresh()

    def add_class(self) -> str | None:
        """Add the class named in the text field (it becomes the current class)."""
        if self.session is None:
            return None
        try:
            name = self.session.add_class(self.class_name.text())
        except ValueError as error:
            self.status.setText(str(error))
            return None
        self.class_name.clear()
        return name

    def recolor_class(self, color=None) -> None:
        """Give the highlighted class a colour (asked for in a colour dialog unless given)."""
        name = self.selected_class()
        if name is None:
            return
        if not color:
            current = QColor(self.session.layer.metadata[conventions.CLASS_COLORS][name])
            chosen = QColorDialog.getColor(current, self, f"Colour of {name}")
            if not chosen.isValid():
                return
            color = chosen.name()
        self.session.recolor_class(name, color)
        color = self.session.layer.metadata[conventions.CLASS_COLORS][name]
        hard = [kind for kind, background in (("light", "#ffffff"), ("dark", "#000000"))
                if box_colors.contrast_ratio(color, background) < 3]
        self.status.setText(f"{name}'s labels are hard to read on {hard[0]} images; a colour of middle "
                            "brightness reads on both" if hard else "")

    def remove_class(self) -> bool:
        name = self.selected_class()
        return self.session.remove_class(name) if name is not None else False

    def move_selected(self) -> int:
        name = self.selected_class()
        if name is None:
            return 0
        moved = self.session.move_selected_to_class(name)
        self.status.setText(f"{moved} box{'es' if moved != 1 else ''} → {name}" if moved else
                            "select boxes on the image first (select mode: S)")
        return moved

    def next_unlabeled(self) -> int | None:
        if self.session is None:
            return None
        target = self.session.next_unlabeled()
        if self.session.is_stack:  # a plane: its leading coordinates
            if target is None:
                self.status.setText("every other plane is labeled")
            return None if target is None else stack_labeling.plane_of(self.session, target)
        if target is None:
            self.status.setText("every other page is labeled" if self.session.has_planes
                                else "every other image has boxes")
        return target

    def save(self):
        return self.session.save() if self.session is not None else None

    def _on_autosave(self, checked: bool) -> None:
        if self.session is not None:
            self.session.autosave = checked
            if checked:
                self.session.save()

    def _on_saved(self, event) -> None:
        report = event.report
        parts = []
        if report.written:
            parts.append(f"saved {report.written[0].name}" if len(report.written) == 1
                         else f"saved {len(report.written)} files")
        if report.reloaded:
            parts.append(f"read {len(report.reloaded)} file(s) again that another program changed")
        if report.refused:
            parts.append(f"not saved (changed on disk): {', '.join(p.name for p in report.refused[:3])}")
        if report.without_file:
            parts.append(f"{len(report.without_file)} image(s) have no annotation file: use File > Save "
                         "Selected Layers")
        self.status.setText("; ".join(parts))

    # --- questions (tests replace these) ----------------------------------------------------------

    def confirm_overwrite(self, paths: list[Path]) -> bool:
        return dialogs.confirm_overwrite(self, paths)

    def confirm_remove_class(self, name: str, count: int) -> bool:
        return dialogs.confirm_remove_class(self, name, count)

    def ask_unsaved(self, count: int, can_cancel: bool) -> str:
        return dialogs.ask_unsaved(self.viewer.window._qt_window, count, can_cancel)

    # --- keys and closing ----------------------------------------------------------------------------

    def _bind_viewer_keys(self) -> None:
        def run(action_name, *arguments):
            def action(viewer):
                if self.session is not None and not self.session.closed:
                    getattr(self.session, action_name)(*arguments)
            return action

        bindings = {labeling.NEXT_KEY: run("next_image"), labeling.PREVIOUS_KEY: run("previous_image")}
        for number, key in enumerate(labeling.CLASS_KEYS, start=1):
            bindings[key] = run("class_for_key", number)
        for key, action in bindings.items():
            self._viewer_keys.append((key, self.viewer.bind_key(key, action, overwrite=True)))

    def teardown(self) -> None:
        self.suggestions.teardown()
        self.next_useful.teardown()
        for key, previous in reversed(self._viewer_keys):
            self.viewer.bind_key(key, previous, overwrite=True)
        self._viewer_keys = []
        if self.session is not None:
            self.session.events.changed.disconnect(self.refresh)
            self.session.events.saved.disconnect(self._on_saved)
        self.boxes.disconnect_viewer()
        self.image.disconnect_viewer()


def _file_note(session) -> str:
    read_only = read_only_note(session.layer)
    if read_only:
        return read_only
    missing = sum(path is None for path in session.store.files)
    if session.is_stack and not missing:
        return "autosave writes the stack's file when you leave a plane" if session.autosave else ""
    if missing == len(session):
        return "these images have no files: save the boxes with File > Save Selected Layers"
    if session.has_planes:
        return ("autosave writes each image's file, and a stack's one file, when you leave a page"
                if session.autosave else "")
    return "autosave writes each image's file when you leave it" if session.autosave else ""
