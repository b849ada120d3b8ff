"""What ``rank`` and "Next most useful" rank: the unlabeled images, the unlabeled planes of stacks,
and the tiles of very large images, fed to :func:`~napari_faster_rcnn.core.prediction.ranking.iter_ranking`.

Targets (:class:`RankTarget`)
    - a 2-D image without an annotation file (where the folder rules look for one) is one target;
    - a stack (multi-page TIFF, OME-TIFF, Zarr with leading t/z dimensions) gives one target per
      UNLABELED plane: a plane not in its annotation's ``labeled_planes`` (a plane holding a box is
      labeled; a stack without an annotation file has every plane unlabeled). Its name is
      ``movie.tif[3]`` (``[t,z]`` for two leading dimensions), as training names planes;
    - an image (or a stack's plane) of more than :data:`LARGE_PIXELS` pixels that the checkpoint's
      tiling cuts into tiles (:class:`~napari_faster_rcnn.core.prediction.tiles.Tiling`, as ``predict``
      tiles it) is scored through its tiles (at most :data:`MAX_TILES`, rows and columns spread evenly
      over the image): each tile is measured as an image (its intensities scaled by the tile's own),
      and the image (the plane) takes the place and the score of its most useful tile
      (:func:`collapse_tiles`); its other tiles leave the ranking.
      Smaller images are scored whole, as before (the model resizes them to its ``min_size``/``max_size``).

Reading is lazy: a target is a path, a :class:`~napari_faster_rcnn.core.prediction.stacks.StackPlane`
(of a plane, or of a tile of a plane) or a :class:`TileRegion`, and the ranking reads one batch of them
at a time (only that plane, only that tile). Which planes are labeled is read from the stacks' annotation files up front (small).

:func:`find_unlabeled_images` is the plain list of the unlabeled image files (a stack as one file, a
large image whole), for :func:`~napari_faster_rcnn.core.prediction.ranking.rank_images`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from napari_faster_rcnn.core.prediction.measuring import RankingProgress
from napari_faster_rcnn.core.prediction.ranking import iter_ranking
from napari_faster_rcnn.core.prediction.stacks import StackPlane, select_planes
from napari_faster_rcnn.core.prediction.usefulness import ImageScore

__all__ = ["LARGE_PIXELS", "MAX_LABELED", "MAX_TILES", "RankTarget", "RankedTarget", "TileRegion", "collapse_tiles", "find_rank_targets",
           "find_unlabeled_images", "iter_target_ranking", "plane_label", "stack_targets", "target_parts", "tile_targets"]

#: Images of more pixels than this (and larger than a tile) are scored through their tiles.
LARGE_PIXELS = 4096 * 4096
#: At most this many tiles of one large image are measured (rows and columns spread over it).
MAX_TILES = 64
#: At most this many labeled images, planes or tiles are measured for the ranking's ``novelty`` (one
#: backbone pass each), spread evenly over them: a folder of 10,000 labeled images is not read whole.
MAX_LABELED = 1000


def plane_label(name: str, plane: Sequence[int]) -> str:
    """``movie.tif[3]``, ``movie.tif[2,5]``: a plane of a stack named as training names it."""
    return f"{name}[{','.join(str(int(v)) for v in plane)}]"


@dataclass(frozen=True, eq=False)
class TileRegion:
    """The pixels ``[y0:y1, x0:x1]`` (``region`` is ``x0, y0, x1, y1``) of a large image, read only when the ranking asks (``np.asarray``)."""

    path: Path
    region: tuple[int, int, int, int]  # x0, y0, x1, y1 (x1, y1 exclusive), as a box

    def __array__(self, dtype=None, copy=None):
        x0, y0, x1, y1 = self.region
        pixels = _open_regions(self.path).read(y0, y1, x0, x1)
        return pixels if dtype is None else pixels.astype(dtype)


class _LastImage(threading.local):
    path: Path | None = None
    regions: object = None


_LAST = _LastImage()


def _open_regions(path: Path):
    """The large image's regions, kept per thread for its next tile (the ranking reads an image's
    tiles one after the other): a PNG or JPEG is decoded once, not once per tile."""
    from napari_faster_rcnn.core.data.regions import open_regions

    if _LAST.path != path:
        if _LAST.regions is not None:
            _LAST.regions.close()
        _LAST.path, _LAST.regions = None, None
        _LAST.regions, _LAST.path = open_regions(path), path
    return _LAST.regions


@dataclass(frozen=True)
class RankTarget:
    """One thing to rank: an image, a plane of a stack (``plane``), or a tile (``region``) of a large image
    or plane."""

    image: Path
    plane: tuple[int, ...] | None = None
    region: tuple[int, int, int, int] | None = None  # x0, y0, x1, y1 of the tile

    @property
    def name(self) -> str:
        """The image as given, ``movie.tif[3]`` for a plane."""
        return str(self.image) if self.plane is None else plane_label(str(self.image), self.plane)

    def item(self):
        """What the ranking reads: the path, the plane, or the tile."""
        if self.plane is not None:
            return StackPlane(self.image, self.plane, self.region)
        if self.region is not None:
            return TileRegion(self.image, self.region)
        return self.image


@dataclass
class RankedTarget:
    """A target's place in the ranking: the target and its :class:`~napari_faster_rcnn.core.prediction.usefulness.ImageScore`."""

    target: RankTarget
    score: ImageScore

    def to_dict(self) -> dict:
        """The score's fields with ``image`` the file (as given), ``plane`` (its leading indices) for a
        plane of a stack, ``tile`` (``[x0, y0, x1, y1]`` in pixels, its most useful tile) for a large image
        or plane."""
        data = self.score.to_dict()
        data["image"] = str(self.target.image)
        if self.target.plane is not None:
            data["plane"] = [int(v) for v in self.target.plane]
        if self.target.region is not None:
            data["tile"] = [int(v) for v in self.target.region]
        return data


def stack_targets(path: Path, shape: Sequence[int], annotation_file: Path | None, plane_size=None, tiling=None,
                  large_pixels: int = LARGE_PIXELS) -> tuple[list[RankTarget], list[RankTarget]]:
    """The unlabeled planes of the stack ``path`` (leading dimensions ``shape``) as targets, and its
    labeled planes; each through its tiles when a plane (``plane_size``: ``(height, width)``) is large
    (see :func:`tile_targets`). Raises ``AnnotationError`` (a ``ValueError``) naming a bad annotation file."""
    labeled: set[tuple[int, ...]] = set()
    if annotation_file is not None:
        from napari_faster_rcnn.core.data.annotations import load_annotation

        annotation = load_annotation(annotation_file)
        if annotation.labeled_planes is not None:
            labeled = {tuple(int(v) for v in plane)
                       for plane in np.asarray(annotation.labeled_planes).reshape(-1, len(shape)).tolist()}
    planes = select_planes(shape)

    def parts(plane):
        if plane_size is None:
            return [RankTarget(path, plane)]
        return tile_targets(path, plane_size, tiling, large_pixels, plane=plane)

    return ([part for plane in planes if plane not in labeled for part in parts(plane)],
            [part for plane in planes if plane in labeled for part in parts(plane)])


def tile_targets(path: Path, size: tuple[int, int], tiling, large_pixels: int = LARGE_PIXELS,
                 max_tiles: int = MAX_TILES, plane: tuple[int, ...] | None = None) -> list[RankTarget]:
    """The tiles of ``path`` (``(height, width)``; of its ``plane``, for a stack) when it is larger than
    ``large_pixels`` pixels and than a tile of ``tiling``; else the image (the plane) whole (one target).
    Of a grid of more than ``max_tiles`` tiles, rows and columns spread evenly over the image (the first
    and the last among them) are kept, at most ``max_tiles`` tiles in all."""
    height, width = int(size[0]), int(size[1])
    if (tiling is None or not tiling.enabled or height * width <= large_pixels
            or not tiling.tiles_image((height, width))):
        return [RankTarget(path, plane)]
    grid = tiling.grid((height, width))
    rects = grid.rects
    if len(grid) > max_tiles:
        rows_kept = min(grid.rows, max(1, int(np.sqrt(max_tiles * grid.rows / grid.columns))))
        columns_kept = min(grid.columns, max(1, max_tiles // rows_kept))
        rows = np.unique(np.linspace(0, grid.rows - 1, rows_kept).round().astype(int))
        columns = np.unique(np.linspace(0, grid.columns - 1, columns_kept).round().astype(int))
        rects = rects[(rows[:, None] * grid.columns + columns[None, :]).reshape(-1)]
    return [RankTarget(path, plane, tuple(int(v) for v in rect)) for rect in rects]


def find_unlabeled_images(inputs) -> tuple[list[Path], list[tuple[str, str]]]:
    """The unlabeled images among dataset folders and image files: those without an annotation file
    where the folder rules look for one (``target/NAME.pt``/``.json`` beside ``input/``, or
    ``NAME.pt``/``.json`` beside the image). Each file is one image, a stack too, for
    :func:`~napari_faster_rcnn.core.prediction.ranking.rank_images`; :func:`find_rank_targets` gives a
    stack's unlabeled planes and a large image's tiles.

    Returns
    -------
    (paths, skipped)
        The unlabeled images in the order given (a folder's sorted by name), and ``(path, reason)``
        for what was left out (labeled images among them).

    Raises
    ------
    ValueError
        For a folder without images; ``FileNotFoundError`` for a path that does not exist.
    """
    from napari_faster_rcnn.core.data.folders import annotation_for
    from napari_faster_rcnn.core.prediction.folders import find_images

    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    images, skipped = find_images(inputs)
    folders: dict = {}
    unlabeled = []
    for path in images:
        annotation = annotation_for(path, folders)
        if annotation is not None:
            skipped.append((str(path), f"labeled ({annotation.name})"))
        else:
            unlabeled.append(path)
    return unlabeled, skipped


def find_rank_targets(inputs, tiling=None, large_pixels: int = LARGE_PIXELS
                      ) -> tuple[list[RankTarget], list[tuple[str, str]], list[RankTarget]]:
    """The targets among dataset folders and image files (see the module docstring), and the labeled
    images and planes among them.

    Returns
    -------
    (targets, skipped, labeled)
        The targets in the order given (a folder's images sorted by name, a stack's planes in
        order), ``(path, reason)`` for what was left out (labeled images among them), and the
        labeled images and planes as targets (a labeled large image as its tiles, like an unlabeled
        one), for :func:`iter_target_ranking`'s ``labeled``.
    """
    from napari_faster_rcnn.core.data.folders import annotation_for
    from napari_faster_rcnn.core.data.stack_files import series_layout, stack_shape
    from napari_faster_rcnn.core.prediction.folders import find_images

    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    images, skipped = find_images(inputs)
    folders: dict = {}
    targets: list[RankTarget] = []
    labeled: list[RankTarget] = []
    for path in images:
        annotation = annotation_for(path, folders)
        shape = stack_shape(path)
        if shape is not None:
            try:
                size = series_layout(path).size if tiling is not None and tiling.enabled else None
                planes, done = stack_targets(path, shape, annotation, size, tiling, large_pixels)
            except ValueError as error:
                skipped.append((str(path), f"its annotation cannot be read ({error})"))
                continue
            labeled.extend(done)
            if not planes:
                count = len({target.plane for target in done})
                skipped.append((str(path), f"labeled (all {count} planes, {annotation.name})"))
            targets.extend(planes)
        elif annotation is not None:
            labeled.extend(image_targets(path, tiling, large_pixels))
            skipped.append((str(path), f"labeled ({annotation.name})"))
        else:
            targets.extend(image_targets(path, tiling, large_pixels))
    return targets, skipped, labeled


def image_targets(path: Path, tiling=None, large_pixels: int = LARGE_PIXELS) -> list[RankTarget]:
    """A 2-D image as targets: itself, or its tiles when it is large (see :func:`tile_targets`)."""
    if tiling is None or not tiling.enabled:
        return [RankTarget(path)]
    from napari_faster_rcnn.core.data.regions import region_image_info

    try:
        height, width, _ = region_image_info(path)
    except (OSError, ValueError):  # the ranking reads it and reports why it cannot
        return [RankTarget(path)]
    return tile_targets(path, (height, width), tiling, large_pixels)


def target_parts(target: RankTarget, tiling=None, large_pixels: int = LARGE_PIXELS) -> list[RankTarget]:
    """An image or a stack's plane as the targets it is ranked through: itself, or its tiles when it is
    large (see :func:`tile_targets`; a tile given stays as it is)."""
    if target.region is not None or tiling is None or not tiling.enabled:
        return [target]
    if target.plane is None:
        return image_targets(target.image, tiling, large_pixels)
    from napari_faster_rcnn.core.data.stack_files import series_layout

    try:
        layout = series_layout(target.image)
    except (OSError, ValueError):  # the ranking reads it and reports why it cannot
        layout = None
    if layout is None:
        return [target]
    return tile_targets(target.image, layout.size, tiling, large_pixels, plane=target.plane)


def collapse_tiles(ranked: list[RankedTarget]) -> list[RankedTarget]:
    """Each image (each plane) once: a tiled image at the place of its most useful tile (the first in the
    ranking), its other tiles left out; ranks numbered again from 1."""
    seen: set[tuple] = set()
    kept = []
    for entry in ranked:
        if entry.target.region is not None:
            key = (entry.target.image, entry.target.plane)
            if key in seen:
                continue
            seen.add(key)
        kept.append(entry)
    return [RankedTarget(entry.target, replace(entry.score, rank=rank)) for rank, entry in enumerate(kept, 1)]


def iter_target_ranking(model, targets: Sequence[RankTarget], top: int | None = None,
                        labeled: Sequence[RankTarget] = (), **options) -> Iterator[RankingProgress]:
    """Rank ``targets`` with :func:`~napari_faster_rcnn.core.prediction.ranking.iter_ranking` (``options``:
    its ``weights``, ``threshold``, ``batch_size``, ``device``); yields its progress (an unreadable
    target named as :attr:`RankTarget.name`) and returns the list of :class:`RankedTarget`, most
    useful first, a tiled image once (:func:`collapse_tiles`); ``top``: the first so many.

    ``labeled``: the images, planes and tiles labeled already (as :func:`find_rank_targets` gives
    them), for the ranking's ``novelty``; at most :data:`MAX_LABELED` of them, spread evenly."""
    if top is not None and top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    targets = list(targets)
    items = [target.item() for target in targets]
    # iter_ranking names a path by str(path) and anything else "image {position}"
    names = [str(item) if isinstance(item, (str, Path)) else f"image {index}" for index, item in enumerate(items)]
    by_name = dict(zip(names, targets))
    if len(by_name) != len(targets):
        raise ValueError("an image is given twice")
    tiled = any(target.region is not None for target in targets)
    labeled = list(labeled)
    if len(labeled) > MAX_LABELED:
        keep = np.unique(np.linspace(0, len(labeled) - 1, MAX_LABELED).round().astype(int))
        labeled = [labeled[int(index)] for index in keep]
    labeled_by_name = {f"labeled image {index}": target for index, target in enumerate(labeled)}
    ranking = iter_ranking(model, items, top=None if tiled else top, labeled=[t.item() for t in labeled], **options)
    try:
        step = next(ranking)
        while True:
            if step.error is not None:
                name, _, reason = step.error.partition(": ")
                if name in by_name or name in labeled_by_name:
                    target = by_name.get(name) or labeled_by_name[name]
                    step = RankingProgress(step.done, step.total, f"{target.name}: {reason}")
            yield step
            step = next(ranking)
    except StopIteration as stop:
        scores = stop.value or []
    missing = [score.image for score in scores if score.image not in by_name]
    if missing:
        raise RuntimeError(f"the ranking named an image it was not given: {missing[0]}")
    ranked = collapse_tiles([RankedTarget(by_name[score.image], score) for score in scores])
    return ranked if top is None else ranked[:top]
