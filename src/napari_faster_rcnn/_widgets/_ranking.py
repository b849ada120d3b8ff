"""The "Next most useful" row of Label boxes: rank the open folder's unlabeled images (on a stack's box
layer, its unlabeled planes) with a checkpoint (in a worker) and go to the most useful one (the dims
slider moves there; for a large image scored through its tiles, the view goes to its most useful
tile); pressing again goes to the next one.

The checkpoint is the one in the path field, or, when that is empty, the best (else last)
checkpoint of the last run of a docked "Train detector". The ranking is made once per checkpoint
and session (:mod:`napari_faster_rcnn.layers.ranking`); images labeled meanwhile are skipped, and at
the end of the ranking the next press ranks again.
"""

from __future__ import annotations

from pathlib import Path

from napari.utils.notifications import show_error
from qtpy.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget

from napari_faster_rcnn._widgets._common import set_progress, start_worker
from napari_faster_rcnn.layers import ranking


def last_trained_checkpoint(viewer) -> Path | None:
    """The best (else last) checkpoint of the last run of a "Train detector" docked in ``viewer``."""
    window = getattr(viewer, "window", None)
    widgets = getattr(window, "dock_widgets", None) or {}
    for widget in widgets.values():
        result = getattr(widget, "result", None)
        checkpoint = getattr(result, "best_checkpoint", None) or getattr(result, "last_checkpoint", None)
        if checkpoint is not None and Path(checkpoint).is_file():
            return Path(checkpoint)
    return None


class NextMostUseful(QWidget):
    """A checkpoint field, its browse button, the "Next most useful" button and what it found."""

    def __init__(self, label_boxes):
        super().__init__()
        self.owner = label_boxes  # the Label boxes widget: its viewer and session
        self.walk: ranking.RankingWalk | None = None
        self._walk_key = None  # (checkpoint, session) the walk belongs to
        self.worker = None
        self.path = QLineEdit()
        self.path.setPlaceholderText("checkpoint (empty: the last Train detector run)")
        self.path.setToolTip("the checkpoint that ranks the unlabeled images or planes; read weights-only")
        self.browse = QPushButton("…")
        self.browse.setMaximumWidth(30)
        self.button = QPushButton("Next most useful")
        self.button.setToolTip("rank the unlabeled images (or a stack's planes) by how much labeling them should help (uncertain, "
                               "confused and mirror-inconsistent detections, unlike the labeled images, not "
                               "near-duplicates) and go to the top one; press again for the next")
        self.info = QLabel("")
        self.info.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.path, 1)
        row.addWidget(self.browse)
        row.addWidget(self.button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.info)
        self.browse.clicked.connect(self._browse)
        self.button.clicked.connect(self.next_most_useful)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Checkpoint", self.path.text(), "Checkpoints (*.ckpt)")
        if path:
            self.path.setText(path)

    def checkpoint(self) -> Path | None:
        text = self.path.text().strip()
        return Path(text) if text else last_trained_checkpoint(self.owner.viewer)

    def next_most_useful(self):
        """Go to the next image of the ranking, ranking first when needed; returns the worker if one started."""
        session = self.owner.session
        if session is None or session.closed:
            self.info.setText("open a folder of images first")
            return None
        checkpoint = self.checkpoint()
        if checkpoint is None:
            self.info.setText("choose a checkpoint, or train one with Train detector")
            return None
        if self.walk is not None and self._walk_key == (checkpoint, id(session)):
            target = self.walk.next_index(session)
            if target is not None:
                self._go(target)
                return None
        images = ranking.unlabeled_images(session)
        if not images:
            self.info.setText("every plane is labeled" if session.is_stack else "every image is labeled")
            return None
        kind = "planes" if session.is_stack else "images"
        self.info.setText(f"ranking {len(images)} unlabeled {kind} with {checkpoint.name} ...")
        key = (checkpoint, id(session))
        self.worker = start_worker(ranking.iter_session_ranking, checkpoint, images, 4,
                                   ranking.labeled_images(session), errored=self._failed,
                                   desc="ranking images", button=self.button, yielded=self._progress,
                                   returned=lambda walk: self._ranked(walk, key))
        return self.worker

    def _progress(self, step) -> None:
        set_progress(self.worker, step.done, step.total)

    def _ranked(self, walk, key) -> None:
        self.walk, self._walk_key = walk, key
        session = self.owner.session
        target = walk.next_index(session) if session is not None and not session.closed else None
        if target is None:
            self.info.setText("no unlabeled image left to rank")
            return
        self._go(target)

    def _go(self, index: int) -> None:
        session = self.owner.session
        session.go_to(index)
        tile = self.walk.tiles.get(index)
        if tile is not None:  # a large image: its most useful tile in view
            ranking.show_tile(self.owner.viewer, session.image_layer, tile)
        self.info.setText(f"{session.image_name(index)}: {self.walk.describe(index)}")

    def _failed(self, error) -> None:
        self.info.setText(f"not ranked: {error}")
        show_error(f"Next most useful: {error}")

    def teardown(self) -> None:
        if self.worker is not None:
            self.worker.quit()
