"""A dataset folder whose pages include the planes of its stacks (time-lapses, z stacks).

The reader (:func:`~napari_faster_rcnn.layers.folder_reading.read_dataset_folder`) makes such a folder ONE
image layer and ONE box layer, paged along the slider's axis: every 2-D image and every plane of
every stack is a page (a stack's planes one after the other, in file order). Every page's boxes
and the labeled pages are kept in a :class:`~napari_faster_rcnn.core.data.folder_label_store.FolderLabelStore`;
the box layer holds the page shown only, :class:`FolderPages` swaps the boxes in as the slider
moves (a labeling session takes the store over when Label boxes labels the layer), and saving
writes each 2-D image's own file and each stack's ONE file (``planes``, ``labeled_planes``).

Which file and plane a page is: the layers' metadata, :data:`~.conventions.SOURCE_IMAGES` (the
file) and :data:`~.conventions.SOURCE_PLANES` (None, or the plane), read with
:func:`~.conventions.source_plane`. No Qt here.
"""

from __future__ import annotations

from pathlib import Path

from napari_faster_rcnn.core.data.folder_label_store import FolderLabelStore
from napari_faster_rcnn.layers.paging_registry import paging_model
from napari_faster_rcnn.layers.stack_labeling import HeldStore, StorePages, write_store


class FolderPages(StorePages):
    """Show the page's boxes of a folder with stacks' planes as the dims slider moves (without a
    labeling session); the edits go into ``store``. Pressing
    :data:`~napari_faster_rcnn.layers.stack_labeling.NO_OBJECTS_KEY` marks the page shown as labeled."""

    def __init__(self, viewer, layer, store: FolderLabelStore):
        super().__init__(viewer, layer, store)

    def write_files(self, destinations) -> list[Path]:
        """napari's writer saves the layer: each 2-D image's file, each stack's one file."""
        self.commit()
        return write_store(self.store, destinations)


class HeldFolder(HeldStore):
    """A folder's store between the reader and the viewer, saveable meanwhile."""

    store: FolderLabelStore

    def write_files(self, destinations) -> list[Path]:
        return write_store(self.store, destinations)

    def pager(self, viewer, layer) -> FolderPages:
        return FolderPages(viewer, layer, self.store)


def folder_store(layer) -> FolderLabelStore | None:
    """The store of every page of a folder's box layer with stacks' planes, or None."""
    store = getattr(paging_model(layer), "store", None)
    return store if isinstance(store, FolderLabelStore) else None


def unlabeled_planes(layer, annotations=None) -> set[int]:
    """The pages of a folder's layer that are stacks' planes nobody labeled (no box, not marked): left out
    of statistics and anchors, as training leaves them out. Empty for a layer without such pages."""
    from napari_faster_rcnn.layers import conventions

    planes = layer.metadata.get(conventions.SOURCE_PLANES) or []
    store = folder_store(layer)
    if store is not None:
        current = getattr(paging_model(layer), "current", None)
        return {i for i in store.empty if store.is_plane(i) and not (i == current and layer.nshapes)}
    if annotations is None:
        return set()
    return {i for i, plane in enumerate(planes) if plane is not None and i < len(annotations) and not len(annotations[i])}


def page_names(metadata: dict, count: int) -> list[str]:
    """Each page's name: its file's stem, ``movie[3]`` (``[t,z]``) for a stack's plane, else its position."""
    from napari_faster_rcnn.layers import conventions

    sources = metadata.get(conventions.SOURCE_IMAGES) or []
    names = []
    for index in range(count):
        source = sources[index] if index < len(sources) else None
        plane = conventions.source_plane(metadata, index)
        stem = str(source).rsplit("/", 1)[-1].rsplit(".", 1)[0] if source else str(index)
        names.append(stem if plane is None else f"{stem}[{','.join(map(str, plane))}]")
    return names
