"""napari writer: a Shapes layer to ``.pt`` or ``.json`` annotation files.

- A single image's layer is written to ``path``.
- A stack is written one file per image, named after each source image. With
  ``path`` ending in ``.pt``/``.json`` the files go where the layer's metadata
  says each image's annotation lives (the dataset's annotation folder, as read),
  in that format; a layer without that metadata writes into ``path``'s folder.
  With ``path`` a folder (existing, or without a suffix) they go into it.

Every image of a stack gets a file, an empty one where all boxes were
deleted, so no stale annotation survives a save. A layer that a labeling session
pages is saved by the session (see :meth:`~napari_faster_rcnn.layers.label_saving.SessionSaving.write_files`),
which asks before overwriting files another program changed. Boxes are clipped to the
image, and every write is atomic. A stack read as data is written as ONE file with ``planes``
(and ``labeled_planes`` for labels; a stack's predictions have none). A predictions layer tuned in the viewer
(``metadata["thresholds"]``) also writes ``thresholds.json`` beside its files.
"""

from __future__ import annotations

from pathlib import Path

from napari_faster_rcnn.core.data.annotations import ANNOTATION_SUFFIXES, save_annotation
from napari_faster_rcnn.layers import conventions
from napari_faster_rcnn.layers.paging_registry import metadata_model


def write_boxes(path: str, data, attributes: dict) -> list[str]:
    """npe2 single-layer writer for Shapes layers."""
    metadata = dict(attributes.get("metadata") or {})
    features = attributes.get("features")
    if metadata.get(conventions.PLANE_DIMS):  # a stack read as data: ONE file, with planes
        destination = stack_destination(Path(path), metadata)
        # (a stack's predictions are not labels: their file has no labeled_planes)
        predictions = metadata.get(conventions.LAYER_ROLE) == conventions.PREDICTIONS
        model = metadata_model(metadata)  # a paged layer holds the plane shown; its model every plane
        if model is not None:
            written = [Path(p) for p in model.write_stack(destination)]
        else:
            written = [save_annotation(destination, conventions.stack_annotation_from_shapes(data, features, metadata),
                                       labeled_planes=not predictions)]
        return [str(p) for p in written] + (_save_thresholds(metadata, written[:1]) if predictions and written else [])
    stacked = metadata.get(conventions.STACKED, attributes.get("ndim", 2) >= 3)
    metadata[conventions.STACKED] = stacked
    # A layer paged by a widget shows one image; its model holds them all.
    model = metadata_model(metadata)
    annotations = model.all_annotations() if model is not None else None
    annotations = annotations or conventions.annotations_from_shapes(data, features, metadata)
    target = Path(path)
    if not stacked:
        if target.suffix.lower() not in ANNOTATION_SUFFIXES:
            target = target.with_suffix(".pt")
        destinations = [target]
    else:
        destinations = stack_destinations(target, metadata, len(annotations))
    if hasattr(model, "write_files"):  # a labeling session: it knows what is saved where
        written = [str(p) for p in model.write_files(destinations)]
    elif any(plane is not None for plane in metadata.get(conventions.SOURCE_PLANES) or []):
        written = [str(p) for p in _write_folder_pages(destinations, annotations, metadata)]
    else:
        written = [str(save_annotation(dest, annotation)) for dest, annotation in zip(destinations, annotations)]
    return written + _save_thresholds(metadata, destinations)


def _write_folder_pages(destinations, annotations, metadata) -> list[Path]:
    """A folder's pages where some are stacks' planes (a predictions layer of such a folder): each 2-D
    image's file, and each stack's ONE file with its pages' boxes and ``planes`` (predictions: no
    ``labeled_planes``; labels: the planes with boxes)."""
    from napari_faster_rcnn.core.prediction.stacks import join_planes

    predictions = metadata.get(conventions.LAYER_ROLE) == conventions.PREDICTIONS
    stacks: dict = {}
    written = []
    for index, (destination, annotation) in enumerate(zip(destinations, annotations)):
        plane = conventions.source_plane(metadata, index)
        if plane is None:
            written.append(save_annotation(destination, annotation))
        else:
            stacks.setdefault(Path(destination), []).append((plane, annotation))
    for destination, pages in stacks.items():
        joined = join_planes([a for _, a in pages], [p for p, _ in pages], len(pages[0][0]))
        written.append(save_annotation(destination, joined, labeled_planes=not predictions))
    return written


def _save_thresholds(metadata: dict, destinations: list[Path]) -> list[str]:
    """Predictions tuned in the viewer keep their thresholds beside them (``thresholds.json``)."""
    folders = {path.parent for path in destinations}
    if not metadata.get(conventions.THRESHOLDS) or len(folders) != 1:
        return []
    from napari_faster_rcnn.core.prediction.thresholds import Thresholds, save_thresholds

    return [str(save_thresholds(folders.pop(), Thresholds.from_dict(dict(metadata[conventions.THRESHOLDS]))))]


def stack_destination(path: Path, metadata: dict) -> Path:
    """The one file a stack read as data is written to: ``path`` when it names a ``.pt``/``.json``
    file, else (a folder) the stack's annotation file's name in it (``NAME.pt`` after the stack
    ``NAME.tif`` for a layer without one, as a stack's predictions layer)."""
    if path.suffix.lower() in ANNOTATION_SUFFIXES:
        return path
    known = conventions.annotation_paths(metadata)
    sources = [source for source in metadata.get(conventions.SOURCE_IMAGES) or [] if source]
    # its annotation file's name, else (a stack's predictions) the stack's own name
    name = known[0].name if known and known[0] else f"{Path(sources[0]).stem}.pt" if sources else "annotation.pt"
    return path / name


def stack_destinations(path: Path, metadata: dict, count: int) -> list[Path]:
    """The file each slice of a stack is written to (see the module docstring)."""
    suffix = path.suffix.lower()
    is_folder = path.is_dir() or suffix not in ANNOTATION_SUFFIXES
    known = conventions.annotation_paths(metadata)
    names = _slice_names(metadata, count)
    if is_folder:
        fmt = _common_suffix(known) or ".pt"
        return [path / f"{name}{fmt}" for name in names]
    if len(known) == count and all(known):
        return [p.with_suffix(suffix) for p in known]
    return [path.parent / f"{name}{suffix}" for name in names]


def _slice_names(metadata: dict, count: int) -> list[str]:
    sources = metadata.get(conventions.SOURCE_IMAGES) or []
    known = conventions.annotation_paths(metadata)
    digits = max(3, len(str(count - 1)))
    names = []
    for index in range(count):
        if index < len(sources) and sources[index]:
            names.append(Path(sources[index]).stem)
        elif index < len(known) and known[index]:
            names.append(known[index].stem)
        else:
            names.append(f"{index:0{digits}d}")
    return names


def _common_suffix(paths) -> str | None:
    suffixes = {p.suffix.lower() for p in paths if p}
    return suffixes.pop() if len(suffixes) == 1 else None
