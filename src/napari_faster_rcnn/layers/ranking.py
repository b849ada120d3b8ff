"""The layer side of "Next most useful" in Label boxes: which images of a labeling session to rank,
the ranking job for a worker, and walking through the ranking.

The images ranked are the session's unlabeled ones: without an annotation file on disk and without
boxes in the session (:func:`unlabeled_images`). :func:`iter_session_ranking` is the worker's job:
it reads the checkpoint weights-only and runs
:func:`~napari_faster_rcnn.core.prediction.ranking.iter_ranking` over those image files.
:class:`RankingWalk` then hands out the ranked images one by one, skipping any labeled meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from napari_faster_rcnn.layers import conventions

__all__ = ["RankingWalk", "iter_session_ranking", "unlabeled_images"]


def unlabeled_images(session) -> list[tuple[int, object]]:
    """``(index, image)`` of each image of ``session`` with no annotation file and no boxes: its file (a Path),
    or for a page of a folder that is a stack's plane (see :data:`~.conventions.SOURCE_PLANES`), one not
    labeled, a :class:`~napari_faster_rcnn.core.prediction.stacks.StackPlane` (that plane is read)."""
    from napari_faster_rcnn.core.prediction.stacks import StackPlane

    metadata = session.layer.metadata
    sources = metadata.get(conventions.SOURCE_IMAGES) or []
    files = session.store.files
    empty = set(session.unlabeled())
    found = []
    for index in range(len(session)):
        source = sources[index] if index < len(sources) else None
        annotation = files[index] if index < len(files) else None
        plane = conventions.source_plane(metadata, index)
        if source and index in empty and plane is not None:
            found.append((index, StackPlane(Path(source), plane)))
        elif source and index in empty and (annotation is None or not Path(annotation).exists()):
            found.append((index, Path(source)))
    return found


def iter_session_ranking(checkpoint_path, images: list[tuple[int, Path]], batch_size: int = 4):
    """Load ``checkpoint_path`` and rank ``images`` (``(index, path)``); yields progress
    (:class:`~napari_faster_rcnn.core.prediction.ranking.RankingProgress`) and returns a
    :class:`RankingWalk`."""
    from napari_faster_rcnn.core.model.checkpoints import load_checkpoint
    from napari_faster_rcnn.core.prediction.ranking import iter_ranking

    checkpoint = load_checkpoint(checkpoint_path)
    ranking = yield from iter_ranking(checkpoint.model, [path for _, path in images], batch_size=batch_size)
    # (the ranking names a file by its path, a stack's plane by its position in the list)
    index_of = {str(item) if isinstance(item, (str, Path)) else f"image {position}": index
                for position, (index, item) in enumerate(images)}
    return RankingWalk(Path(checkpoint_path), [index_of[score.image] for score in ranking],
                       {index_of[score.image]: score for score in ranking})


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
                f"{score.uncertainty:.2f}, confusion {score.confusion:.2f}, disagreement {score.disagreement:.2f})")
