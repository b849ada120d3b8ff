"""Which paging model pages which box layer, so that saving the layer saves every image.

A paged box layer shows one image's boxes; its model (a
:class:`~napari_faster_rcnn.layers.slice_view.SliceBoxes` or one of its kin) holds
every image's. Saving the layer through napari's writer must save every image, not
only the one on screen: :func:`register` ties the layer to its model under a key in
the layer's metadata (:data:`SLICE_MODEL`), and the writer asks
:func:`model_annotations` (or :func:`metadata_model`) before falling back to the
layer's own shapes. A model with a ``write_files(destinations)`` method (the labeling
session) writes the files itself, so that it can keep track of what it saved.

The registry refers to models weakly: :func:`keep_with_layer` lets the layer hold its
model. The reader makes layers before any viewer pages them: :func:`hold` keeps their
boxes alive meanwhile, and :func:`release_held` lets go once a viewer pages the layer
(see :func:`~napari_faster_rcnn.layers.slice_view.attach_when_added`).

No Qt here.
"""

from __future__ import annotations

import uuid
import weakref

from napari_faster_rcnn.core.data.annotations import Annotation

#: metadata key holding the id of the model that pages a layer
SLICE_MODEL = "slice_model"

_MODELS: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
_HELD: dict = {}  # models of layers the reader made and no viewer pages yet (see attach_when_added)


def keep_with_layer(layer, model) -> None:
    """Let ``layer`` hold its paging model, which lives as long as the layer then.

    The viewer's events and :func:`paging_model` refer to models
    weakly; a model nobody else holds would vanish and leave its layer showing
    one image, unsaveable.
    """
    layer._napari_faster_rcnn_model = model


def hold(layer_metadata: dict, held) -> str:
    """Tie the box layer to be made with ``layer_metadata`` to ``held`` (kept alive until a viewer pages it)."""
    key = uuid.uuid4().hex
    layer_metadata[SLICE_MODEL] = key
    _MODELS[key] = held
    _HELD[key] = held
    return key


def release_held(key: str) -> None:
    """Stop keeping alive what :func:`hold` tied under ``key`` (a viewer pages its layer now)."""
    _HELD.pop(key, None)


def register(layer, model) -> str:
    """Tie ``layer`` to ``model`` so that saving the layer saves the model."""
    key = layer.metadata.get(SLICE_MODEL) or uuid.uuid4().hex
    layer.metadata[SLICE_MODEL] = key
    _MODELS[key] = model
    return key


def paging_model(layer):
    """The model that pages ``layer`` (a :class:`~napari_faster_rcnn.layers.slice_view.SliceBoxes` or one
    of its kin), or None when the layer holds all its boxes.

    Code that changes boxes of images other than the one on screen (accepting
    predictions as labels, say) edits ``model.annotations[i]`` and calls
    ``model.refresh()``; on an ordinary layer it edits the layer itself.
    """
    key = layer.metadata.get(SLICE_MODEL)
    return _MODELS.get(key) if key else None


def metadata_model(metadata: dict):
    """The model that pages the layer with ``metadata``, or None for an ordinary layer.

    Raises
    ------
    ValueError
        If the layer is paged but its model is gone: the layer then holds one
        image's boxes, and saving it would wipe every other image's file.
    """
    key = metadata.get(SLICE_MODEL)
    if not key:
        return None
    model = _MODELS.get(key)
    if model is None:
        raise ValueError(
            "this box layer shows one image of a stack whose other boxes are no longer "
            "held (the widget that paged it was closed); not saving, so no annotation "
            "file is overwritten. Open the dataset folder again."
        )
    return model


def model_annotations(metadata: dict) -> list[Annotation] | None:
    """The annotations of every image of a paged layer, or None for an ordinary layer.

    Raises ``ValueError`` as :func:`metadata_model` does.
    """
    model = metadata_model(metadata)
    return None if model is None else model.all_annotations()
