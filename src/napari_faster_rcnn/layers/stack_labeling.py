"""Which planes of a stack read as data (time-lapse, z stack) a person has labeled.

A stack's box layer (see :func:`~napari_faster_rcnn.layers.conventions.stack_shapes_layer_data`)
keeps the labeled planes in ``metadata["labeled_planes"]``; the writer saves them as the
annotation's ``labeled_planes``. A plane becomes labeled

- when a box is drawn on it (any box in the layer marks its plane);
- when the person presses :data:`NO_OBJECTS_KEY` (``0``, "zero objects here") on the plane shown;
- when predictions are accepted on it (:func:`mark_planes`).

A plane never labeled is unlabeled: it is never a negative in training or evaluation.
:func:`next_unlabeled_plane` finds the next one after the plane shown, in the order of the
leading dimensions. No Qt here.
"""

from __future__ import annotations

import itertools
import weakref

import numpy as np

from napari_faster_rcnn.layers import conventions

#: "no objects here": marks the plane shown as labeled without boxes (digits 1..9 pick classes).
NO_OBJECTS_KEY = "0"

_TRACKED: weakref.WeakSet = weakref.WeakSet()  # layers whose drawn boxes mark their planes


def is_stack_layer(layer) -> bool:
    """Whether ``layer`` holds the boxes of a stack read as data."""
    return bool(getattr(layer, "metadata", {}).get(conventions.PLANE_DIMS))


def plane_dims(layer) -> int:
    return int(layer.metadata[conventions.PLANE_DIMS])


def labeled_planes(layer) -> set[tuple[int, ...]]:
    """The labeled planes of a stack's box layer: those marked, and every plane with a box."""
    dims = plane_dims(layer)
    marked = {tuple(int(v) for v in plane) for plane in layer.metadata.get(conventions.LABELED_PLANES) or []}
    with_boxes = {tuple(int(round(v)) for v in np.asarray(shape)[0, :dims]) for shape in layer.data}
    return marked | with_boxes


def mark_planes(layer, planes) -> None:
    """Mark ``planes`` (leading coordinates) of a stack's box layer as labeled."""
    dims = plane_dims(layer)
    known = {tuple(int(v) for v in plane) for plane in layer.metadata.get(conventions.LABELED_PLANES) or []}
    for plane in planes:
        plane = tuple(int(v) for v in np.asarray(plane).reshape(-1))
        if len(plane) != dims:
            raise ValueError(f"a plane of this stack has {dims} leading coordinates, got {plane}")
        known.add(plane)
    layer.metadata[conventions.LABELED_PLANES] = [list(plane) for plane in sorted(known)]


def current_plane(viewer, layer) -> tuple[int, ...]:
    """The plane the viewer shows (the dims slider positions of the leading dimensions)."""
    dims = plane_dims(layer)
    return tuple(int(step) for step in viewer.dims.current_step[-(dims + 2):-2])


def mark_no_objects(viewer, layer) -> tuple[int, ...]:
    """Mark the plane shown as labeled ("no objects here" when it has no boxes)."""
    plane = current_plane(viewer, layer)
    mark_planes(layer, [plane])
    return plane


def stack_planes_shape(viewer, layer) -> tuple[int, ...]:
    """The number of planes along each leading dimension, from the viewer's sliders."""
    dims = plane_dims(layer)
    return tuple(int(steps) for steps in viewer.dims.nsteps[-(dims + 2):-2])


def plane_counts(viewer, layer) -> tuple[int, int]:
    """``(labeled, all)`` planes of the stack."""
    shape = stack_planes_shape(viewer, layer)
    inside = [p for p in labeled_planes(layer) if all(0 <= v < s for v, s in zip(p, shape))]
    return len(inside), int(np.prod(shape))


def next_unlabeled_plane(viewer, layer, go: bool = True) -> tuple[int, ...] | None:
    """The next unlabeled plane after the one shown (wrapping around), shown when ``go``;
    None when every other plane is labeled."""
    shape = stack_planes_shape(viewer, layer)
    labeled = labeled_planes(layer)
    every = list(itertools.product(*(range(s) for s in shape)))
    start = every.index(current_plane(viewer, layer))
    for offset in range(1, len(every)):
        plane = every[(start + offset) % len(every)]
        if plane not in labeled:
            if go:
                step = list(viewer.dims.current_step)
                dims = len(plane)
                step[-(dims + 2):-2] = plane
                viewer.dims.current_step = tuple(step)
            return plane
    return None


def bind_stack_keys(viewer, layer, on_change=None) -> None:
    """Bind :data:`NO_OBJECTS_KEY` on the stack's box layer (the plane shown becomes labeled, then
    ``on_change()`` runs), and keep a plane labeled once a box was drawn on it, even when that
    box is deleted later."""
    def no_objects(target):
        mark_no_objects(viewer, target)
        if on_change is not None:
            on_change()

    layer.bind_key(NO_OBJECTS_KEY, no_objects, overwrite=True)
    if layer not in _TRACKED:
        layer.events.data.connect(lambda event: _mark_drawn(layer))
        _TRACKED.add(layer)


def _mark_drawn(layer) -> None:
    dims = plane_dims(layer)
    mark_planes(layer, {tuple(int(round(v)) for v in np.asarray(shape)[0, :dims]) for shape in layer.data})
