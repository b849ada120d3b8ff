"""**Import…** and **Export…** in the "Label boxes" widget: COCO JSON, Pascal VOC XML, YOLO txt
and our own folders, through :mod:`..core.formats` in a ``thread_worker``.

Export writes the session's dataset (every image, with the edits on screen not
yet saved, and the whole class list) into a new folder; core refuses a folder
that holds anything, so nothing is overwritten. Import converts a folder into a
new folder of ours beside it (``NAME_pt``; the folder imported from is never
written to; why it converts: :mod:`~napari_faster_rcnn.layers.interchange`), opens that with our reader
and labels it.

The questions (which folder, which format) are methods that tests replace or
bypass: :meth:`InterchangeActions.export_dataset` and
:meth:`~InterchangeActions.import_dataset` take their folders as arguments.
"""

from __future__ import annotations

from pathlib import Path

from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QObject
from qtpy.QtWidgets import QFileDialog, QInputDialog, QMenu, QPushButton

from napari_faster_rcnn._widgets._common import set_progress, start_worker
from napari_faster_rcnn.core.formats import (
    FORMAT_TITLES,
    FORMATS,
    FormatError,
    iter_convert_dataset,
    iter_write_dataset,
    matching_formats,
)
from napari_faster_rcnn.layers import conventions
from napari_faster_rcnn.layers.conventions import is_boxes
from napari_faster_rcnn.layers.interchange import import_destination, inside, layer_dataset

PLUGIN = "napari-faster-rcnn"
SHOWN_LINES = 6  # of a report's summary in the status line (all of it in the tooltip and the notification)


class InterchangeActions(QObject):
    """The Import… and Export… buttons of a :class:`~.label_boxes.LabelBoxesWidget`.

    They go into the widget's ``file_actions`` row, before its stretch; the
    widget's ``status`` label shows what they did, the viewer's activity dock
    their progress.
    """

    def __init__(self, widget):
        super().__init__(widget)
        self.widget = widget
        self.worker = None
        self.import_button = QPushButton("Import…")
        self.import_button.setToolTip("label a COCO JSON, Pascal VOC or YOLO dataset: it is converted into a new "
                                      "folder beside it, which is opened here; the folder itself is left as it is")
        self.export_button = QPushButton("Export…")
        self.export_button.setToolTip("write every image and its boxes (unsaved edits too) and the class list "
                                      "into a new folder, in the format chosen")
        self.export_menu = QMenu(self.export_button)
        for fmt in FORMATS:
            action = self.export_menu.addAction(FORMAT_TITLES[fmt])
            action.setData(fmt)
            action.triggered.connect(lambda checked=False, fmt=fmt: self._export_clicked(fmt))
        self.export_button.setMenu(self.export_menu)
        row = widget.file_actions
        for button in (self.import_button, self.export_button):
            row.insertWidget(row.count() - 1, button)  # before the stretch
        self.import_button.clicked.connect(self._import_clicked)

    def refresh(self) -> None:
        """Enable what can run now: export needs a session, neither runs while one is running."""
        idle = self.worker is None
        session = self.widget.session
        self.export_button.setEnabled(idle and session is not None and not session.closed)
        self.import_button.setEnabled(idle)

    # --- questions (tests replace or bypass these) --------------------------------------------

    def ask_export_folder(self, fmt: str) -> Path | None:
        start = self._dataset_root()
        folder = QFileDialog.getExistingDirectory(
            self.widget, f"Export as {FORMAT_TITLES[fmt]} into a new (or empty) folder",
            str(start.parent) if start else "")
        return Path(folder) if folder else None

    def ask_import_source(self) -> Path | None:
        start = self._dataset_root()
        folder = QFileDialog.getExistingDirectory(self.widget, "Import a COCO JSON, Pascal VOC or YOLO dataset",
                                                  str(start) if start else "")
        return Path(folder) if folder else None

    def ask_import_destination(self, source: Path, default: Path) -> Path | None:
        path, _ = QFileDialog.getSaveFileName(
            self.widget, f"New folder for the labels of {source.name} (in our format)", str(default),
            options=QFileDialog.Option.ShowDirsOnly | QFileDialog.Option.DontConfirmOverwrite)
        return Path(path) if path else None

    def choose_format(self, source: Path, candidates: list[str]) -> str | None:
        titles = [FORMAT_TITLES[fmt] for fmt in candidates]
        title, chosen = QInputDialog.getItem(self.widget, "Which format?",
                                             f"{source.name} holds files of several formats. Read it as:",
                                             titles, 0, False)
        return candidates[titles.index(title)] if chosen else None

    def _export_clicked(self, fmt: str) -> None:
        if self.widget.session is None:
            return
        folder = self.ask_export_folder(fmt)
        if folder is not None:
            self.export_dataset(folder, fmt)

    def _import_clicked(self) -> None:
        source = self.ask_import_source()
        if source is None:
            return
        fmt = self._format_of(source)
        if fmt == "pt":
            self._open_ours(source)
        if fmt in (None, "pt"):
            return
        destination = self.ask_import_destination(source, import_destination(source))
        if destination is not None:
            self.import_dataset(source, destination, fmt)

    # --- export ---------------------------------------------------------------------------------

    def export_dataset(self, folder, fmt: str):
        """Write the session's dataset into the new (or empty) ``folder`` as ``fmt``; returns the
        worker, or None when there is nothing to export (said in the status line)."""
        session = self.widget.session
        if session is None or session.closed:
            return self._say("open a box layer first: there is nothing to export")
        try:
            dataset = layer_dataset(session.layer)  # here, in the main thread: the worker touches no layer
        except ValueError as error:
            return self._say(f"not exported: {error}", error=True)
        title = FORMAT_TITLES[fmt]
        self._say(f"exporting {len(dataset)} images as {title} to {folder} …")
        return self._start(iter_write_dataset, (dataset, Path(folder), fmt), f"Export {title}",
                           self._exported, "Export")

    def _exported(self, report) -> None:
        self._report(report, f"exported {report.images} images, {report.boxes} boxes and "
                             f"{len(report.classes)} classes as {FORMAT_TITLES[report.format]} to {report.destination}")

    # --- import ---------------------------------------------------------------------------------

    def import_dataset(self, source, destination=None, fmt: str | None = None):
        """Convert the dataset folder ``source`` (in ``fmt``; detected when None, asked when several
        fit) into the new folder ``destination`` (``NAME_pt`` beside it by default), then open and
        label it. Returns the worker, or None when nothing is converted."""
        source = Path(source)
        fmt = fmt or self._format_of(source)
        if fmt is None:
            return None
        if fmt == "pt":
            return self._open_ours(source)
        destination = Path(destination) if destination else import_destination(source)
        if inside(destination, source):
            return self._say(f"not imported: {destination} lies inside {source}, and the folder imported from "
                             "is never written to; choose a folder outside it", error=True)
        self._say(f"importing {source.name} ({FORMAT_TITLES[fmt]}) into {destination} …")
        return self._start(iter_convert_dataset, (source, destination, "pt", fmt), f"Import {FORMAT_TITLES[fmt]}",
                           self._imported, "Import")

    def _format_of(self, source: Path) -> str | None:
        try:
            candidates = matching_formats(source)
        except FormatError as error:
            return self._say(f"not imported: {error}", error=True)
        if not candidates:
            return self._say(f"not imported: {source} holds no COCO JSON, Pascal VOC XML or YOLO dataset "
                             "(and no images)", error=True)
        return candidates[0] if len(candidates) == 1 else self.choose_format(source, candidates)

    def _imported(self, report) -> None:
        layer = self._open(report.destination)
        where = f"; labeling {layer.name!r}" if layer is not None else ""
        self._report(report, f"imported {report.images} images, {report.boxes} boxes and {len(report.classes)} "
                             f"classes from {report.source.name} ({FORMAT_TITLES[report.source_format]}) into "
                             f"{report.destination}{where}")

    def _open_ours(self, folder: Path) -> None:
        layer = self._open(folder)
        if layer is not None:
            self._say(f"{folder.name} is already a napari-faster-rcnn dataset: opened it as it is, nothing "
                      "converted")

    def _open(self, folder: Path):
        """Open ``folder`` with our reader and label its box layer from the first image; the layer, or None."""
        try:
            layers = self.widget.viewer.open(folder, plugin=PLUGIN)
        except Exception as error:  # napari wraps reader errors; the message names the file and the reason
            self._say(f"could not open {folder}: {error}", error=True)
            return None
        boxes = [layer for layer in layers if is_boxes(layer)]
        if not boxes:
            return None
        self.widget.boxes.set_layer(boxes[-1])
        if self.widget.session is not None:
            self.widget.session.go_to(0)  # napari shows a new stack's middle image; labeling starts at the first
        return boxes[-1]

    # --- running ----------------------------------------------------------------------------------

    def _start(self, function, arguments, description, on_returned, verb):
        if self.worker is not None:
            return self._say(f"{verb} not started: an import or export is running; wait until it is done")
        worker = start_worker(function, *arguments, desc=description, errored=lambda error: self._failed(verb, error),
                              yielded=lambda step: self._progress(worker, step, verb), returned=on_returned,
                              finished=self._finished)
        self.worker = worker
        self.refresh()
        return worker

    def _progress(self, worker, step, verb) -> None:
        done, total = step
        set_progress(worker, done, total)
        self.widget.status.setText(f"{verb.lower()}ing: {done} / {total} images …")

    def _finished(self) -> None:
        self.worker = None
        self.refresh()

    def _failed(self, verb, error) -> None:
        if isinstance(error, FileExistsError):
            message = f"{verb} refused, nothing was written: {error}"
        else:
            message = f"{verb} failed: {error}"
        self._say(message, error=True)

    def _report(self, report, headline: str) -> None:
        summary = report.summary()
        lines = [headline]
        lines += [f"note: {note}" for note in report.notes]
        if report.skipped:
            lines.append(f"skipped {len(report.skipped)} (hover for the list): "
                         + "; ".join(f"{path.name}: {reason}" for path, reason in report.skipped[:2]))
        self.widget.status.setText("\n".join(lines[:SHOWN_LINES]))
        self.widget.status.setToolTip(summary)
        (show_warning if report.skipped else show_info)(summary)

    def _say(self, text: str, error: bool = False) -> None:
        self.widget.status.setText(text)
        self.widget.status.setToolTip("")
        if error:
            show_error(text)
        return None

    def _dataset_root(self) -> Path | None:
        session = self.widget.session
        root = session.layer.metadata.get(conventions.DATASET_ROOT) if session is not None else None
        return Path(root) if root else None
