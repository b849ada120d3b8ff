"""The layer side of "Next most useful" in Label boxes: which images (or planes) of a labeling session
to rank, the ranking job for a worker, and walking through the ranking.

The images ranked are the session's unlabeled ones: without an annotation file on disk and without
boxes in the session; on a stack's box layer, the planes not labeled (:func:`unlabeled_images`). The
others (:func:`labeled_images`) go along as the labeled images, for the ranking's ``novelty``,
as ``rank`` passes the labeled images it finds.
:func:`iter_session_ranking` is the worker's job: it reads the checkpoint weights-only and ranks those
images or planes with :func:`~napari_faster_rcnn.core.prediction.rank_targets.iter_target_ranking`
(a plane read only when it is measured; a very large image or plane through its tiles).
:class:`RankingWalk` then hands out the ranked images one by one, skipping any labeled meanwhile, and
:func:`show_tile` brings a large image's most useful tile into view.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from napari_faster_rcnn.core.data.stack_planes import index_plane
from napari_faster_rcnn.core.prediction.rank_targets import RankTarget
from napari_faster_rcnn.layers import conventions
from napari_faster_rcnn.layers.box_window import camera

__all__ = ["RankingWalk", "iter_session_ranking", "labeled_images", "show_tile", "unlabeled_images"]


def unlabeled_images(session) -> list[tuple[int, RankTarget]]:
    """``(index, target)`` of each image of ``session`` with no annotation file and no boxes, or, when
    the session labels a stack's planes, of each plane not labeled (the target names the stack's file
    and the plane); a page of a folder that is a stack's plane (:data:`~.conventions.SOURCE_PLANES`)
    is unlabeled when its plane is."""
    metadata = session.layer.metadata
    sources = metadata.get(conventions.SOURCE_IMAGES) or []
    if getattr(session, "is_stack", False):
        source = sources[0] if sources else None
        if not source:
            return []
        return [(index, RankTarget(Path(source), index_plane(index, session.store.shape)))
                for index in session.unlabeled()]
    files = session.store.files
    empty = set(session.unlabeled())
    found = []
    for index in range(len(session)):
        source = sources[index] if index < len(sources) else None
        annotation = files[index] if index < len(files) else None
        plane = conventions.source_plane(metadata, index)
        if source and index in empty and plane is not None:
            found.append((index, RankTarget(Path(source), plane)))
        elif source and index in empty and (annotation is None or not Path(annotation).exists()):
            found.append((index, RankTarget(Path(source))))
    return found


def labeled_images(session) -> list[tuple[int, RankTarget]]:
    """``(index, target)`` of each image (or plane) of ``session`` with a source file that
    :func:`unlabeled_images` leaves out: labeled on disk or in the session."""
    metadata = session.layer.metadata
    sources = metadata.get(conventions.SOURCE_IMAGES) or []
    unlabeled = {index for index, _ in unlabeled_images(session)}
    if getattr(session, "is_stack", False):
        source = sources[0] if sources else None
        if not source:
            return []
        return [(index, RankTarget(Path(source), index_plane(index, session.store.shape)))
                for index in range(len(session)) if index not in unlabeled]
    found = []
    for index in range(len(session)):
        source = sources[index] if index < len(sources) else None
        if source and index not in unlabeled:
            plane = conventions.source_plane(metadata, index)
            found.append((index, RankTarget(Path(source), plane)))
    return found


def iter_session_ranking(checkpoint_path, images: list[tuple[int, RankTarget]], batch_size: int = 4,
                         labeled: list[tuple[int, RankTarget]] = ()):
    """Load ``checkpoint_path`` and rank ``images`` (``(index, target)``, as :func:`unlabeled_images`
    gives them) next to the ``labeled`` ones (as :func:`labeled_images` gives them); yields progress
    (:class:`~napari_faster_rcnn.core.prediction.measuring.RankingProgress`) and returns a :class:`RankingWalk`."""
    from napari_faster_rcnn.core.model.checkpoints import load_checkpoint
    from napari_faster_rcnn.core.prediction import rank_targets
    from napari_faster_rcnn.core.prediction.tiles import default_tiling

    checkpoint = load_checkpoint(checkpoint_path)
    tiling = default_tiling(checkpoint.config, checkpoint.training_images)
    large = rank_targets.LARGE_PIXELS
    index_of, targets = {}, []
    for index, target in images:
        index_of[(target.image, target.plane)] = index
        targets.extend(rank_targets.target_parts(target, tiling, large))
    known = [part for _, target in labeled for part in rank_targets.target_parts(target, tiling, large)]
    ranking = yield from rank_targets.iter_target_ranking(checkpoint.model, targets, batch_size=batch_size,
                                                          labeled=known)
    order = [index_of[(entry.target.image, entry.target.plane)] for entry in ranking]
    return RankingWalk(Path(checkpoint_path), order, {index: entry.score for index, entry in zip(order, ranking)},
                       tiles={index: entry.target.region for index, entry in zip(order, ranking)
                              if entry.target.region is not None})


@dataclass
class RankingWalk:
    """A ranking of a session's images and how far the person has gone through it."""

    checkpoint: Path
    order: list[int]  # image indices, most useful first
    scores: dict = field(default_factory=dict)  # index -> ImageScore
    position: int = 0  # the next to hand out
    tiles: dict = field(default_factory=dict)  # index -> (x0, y0, x1, y1): a large image's most useful tile

    def next_index(self, session) -> int | None:
        """The next ranked image still unlabeled (files and boxes as they are now); None at the end."""
        still = {index for index, _ in unlabeled_images(session)}
        while self.position < len(self.order):
            index = self.order[self.position]
            self.position += 1
            if index in still:
                return index
        return None

    def describe(self, index: int) -> str:
        score = self.scores.get(index)
        if score is None:
            return ""
        text = (f"rank {score.rank} of {len(self.order)}: score {score.score:.2f} (uncertainty "
                f"{score.uncertainty:.2f}, confusion {score.confusion:.2f}, disagreement {score.disagreement:.2f}, "
                f"novelty {score.novelty:.2f})")
        tile = self.tiles.get(index)
        if tile is not None:
            text += f"; its most useful tile: x {tile[0]}-{tile[2]}, y {tile[1]}-{tile[3]}"
        return text


def show_tile(viewer, image_layer, region) -> None:
    """Centre the view on ``region`` (``x0, y0, x1, y1`` in the image's pixels, ends excluded, as the
    ranking gives a large image's most useful tile) and zoom until it about fills the canvas; the
    image layer's scale and translation (of its last two axes) place it in the world."""
    x0, y0, x1, y1 = (float(v) for v in region)
    scale = np.ones(2) if image_layer is None else np.asarray(image_layer.scale[-2:], dtype=np.float64)
    shift = np.zeros(2) if image_layer is None else np.asarray(image_layer.translate[-2:], dtype=np.float64)
    centre = shift + scale * np.array([(y0 + y1 - 1) / 2, (x0 + x1 - 1) / 2])  # pixel i is centred on i
    viewer.reset_view()  # everything fits the canvas: zoom in from there by the extent's ratio to the tile
    extent = np.asarray(viewer.layers.extent.world, dtype=np.float64)[:, -2:]
    ratio = (extent[1] - extent[0]) / (scale * np.array([y1 - y0, x1 - x0]))
    view = camera(viewer)
    view.zoom = view.zoom * 0.9 * float(max(1.0, ratio.min()))
    view.center = tuple(float(v) for v in centre)
