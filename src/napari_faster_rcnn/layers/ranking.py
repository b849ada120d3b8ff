"""The layer side of "Next most useful" in Label boxes: which images (or planes) of a labeling session
to rank, the ranking job for a worker, and walking through the ranking.

The images ranked are the session's unlabeled ones: without an annotation file on disk and without
boxes in the session; on a stack's box layer, the planes not labeled (:func:`unlabeled_images`). The
others (:func:`labeled_images`) go along as the labeled images, for the ranking's ``novelty``,
as ``rank`` passes the labeled images it finds.
:func:`iter_session_ranking` is the worker's job: it reads the checkpoint weights-only and ranks those
images or planes with :func:`~napari_faster_rcnn.core.prediction.rank_targets.iter_target_ranking`
(a plane read only when it is measured; a very large image or plane through its tiles).
:class:`RankingWalk` then hands out the ranked images one by one, skipping any labeled meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from napari_faster_rcnn.core.data.stack_planes import index_plane
from napari_faster_rcnn.core.prediction.rank_targets import RankTarget
from napari_faster_rcnn.layers import conventions

__all__ = ["RankingWalk", "iter_session_ranking", "labeled_images", "unlabeled_images"]


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
    from napari_faster_rcnn.core.prediction.rank_targets import iter_target_ranking, target_parts
    from napari_faster_rcnn.core.prediction.tiles import default_tiling

    checkpoint = load_checkpoint(checkpoint_path)
    tiling = default_tiling(checkpoint.config, checkpoint.training_images)
    index_of, targets = {}, []
    for index, target in images:
        index_of[(target.image, target.plane)] = index
        targets.extend(target_parts(target, tiling))
    known = [part for _, target in labeled for part in target_parts(target, tiling)]
    ranking = yield from iter_target_ranking(checkpoint.model, targets, batch_size=batch_size, labeled=known)
    order = [index_of[(entry.target.image, entry.target.plane)] for entry in ranking]
    return RankingWalk(Path(checkpoint_path), order, {index: entry.score for index, entry in zip(order, ranking)})


@dataclass
class RankingWalk:
    """A ranking of a session's images and how far the person has gone through it."""

    checkpoint: Path
    order: list[int]  # image indices, most useful first
    scores: dict = field(default_factory=dict)  # index -> ImageScore
    position: int = 0  # the next to hand out

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
        return (f"rank {score.rank} of {len(self.order)}: score {score.score:.2f} (uncertainty "
                f"{score.uncertainty:.2f}, confusion {score.confusion:.2f}, disagreement {score.disagreement:.2f}, "
                f"novelty {score.novelty:.2f})")
