"""Predicting stacks (time-lapse, z stacks): every plane, or a range of them, as images of the run.

A stack is predicted plane by plane: :func:`stack_items` gives one :class:`StackPlane` per plane
chosen, which :func:`~napari_faster_rcnn.core.prediction.run.iter_predictions` reads (only that
plane is decoded) and predicts as any 2-D image; its record carries the plane, and its
annotation's boxes carry it as ``planes``. :func:`join_planes` makes the stack's ONE annotation
of its planes' detections (``boxes``, ``labels``, ``scores``, ``planes``); predictions are not
labels, so their file has no ``labeled_planes``.

Choosing planes (the ``predict`` command's ``--planes``, the Predict widget's range)
    A text of comma-separated items along the FIRST leading dimension (time in a time-lapse,
    z in a z stack; all of any further leading dimension): ``5`` is plane 5; ``3:7`` planes 3,
    4, 5 and 6 (the end excluded, as Python's slices); ``3:`` from 3 to the last; ``:4`` the
    first four; ``0,10:12`` plane 0, 10 and 11. Planes are counted from 0, as napari's slider
    counts them. Planes past the end of a stack are left out, as a Python slice leaves them.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_faster_rcnn.core.data.annotations import Annotation

__all__ = ["StackPlane", "join_planes", "parse_planes", "select_planes", "stack_items"]


@dataclass(frozen=True, eq=False)
class StackPlane:
    """One plane of a stack to predict.

    Attributes
    ----------
    source
        The stack's file (a Path) or its pixels (an array, numpy or dask, of shape
        ``(*leading, H, W[, C])``).
    plane : tuple of int
        The plane's leading coordinates.
    region : (x0, y0, x1, y1) or None
        Only these pixels of the plane (``[y0:y1, x0:x1]``: a tile, as ``rank`` scores a large plane).
    """

    source: object
    plane: tuple
    region: tuple | None = None

    @property
    def path(self) -> Path | None:
        return self.source if isinstance(self.source, Path) else None

    def read(self, channels=None) -> np.ndarray:
        """The plane's pixels (or its region's) as ``(H, W, 3)`` (only these are read), channels chosen by the
        model's ``channels`` (see :mod:`~napari_faster_rcnn.core.data.channels`)."""
        from napari_faster_rcnn.core.data.channels import as_rgb, select_channels
        from napari_faster_rcnn.core.data.stack_files import read_plane

        if self.path is not None:
            stack, layout = _open_stack(self.path)
            return read_plane(self.path, self.plane, channels, stack=stack, layout=layout, region=self.region)
        key = tuple(self.plane)
        if self.region is not None:
            x0, y0, x1, y1 = self.region
            key += (slice(y0, y1), slice(x0, x1))
        pixels = np.asarray(self.source[key])
        return as_rgb(pixels) if channels is None else select_channels(pixels, channels)


class _LastStack(threading.local):
    key: tuple | None = None
    stack: object = None
    layout: object = None


_LAST = _LastStack()


def _open_stack(path: Path):
    """The stack of ``path`` and its layout (:func:`~napari_faster_rcnn.core.data.stack_files.series_layout`),
    kept per thread for its next plane (a run reads a stack's planes one after the other, in one reader
    thread): opened and parsed again when the file changed or another stack comes."""
    from napari_faster_rcnn.core.data.image_files import ImageReadError
    from napari_faster_rcnn.core.data.stack_files import open_stack, series_layout

    try:
        status = path.stat()
    except OSError as error:
        raise ImageReadError(path, f"cannot be read ({error.strerror or error})") from None
    key = (str(path.resolve()), status.st_mtime_ns, status.st_size)
    if _LAST.key != key:
        _LAST.key, _LAST.stack, _LAST.layout = None, None, None  # the previous stack is let go first
        _LAST.stack, _LAST.layout, _LAST.key = open_stack(path), series_layout(path), key
    return _LAST.stack, _LAST.layout


def parse_planes(text: str) -> list[tuple[int | None, int | None]]:
    """The items of a planes text (see the module docstring) as ``(start, stop)`` pairs
    (``stop`` None: to the end; a single plane ``p`` is ``(p, p + 1)``).

    Raises
    ------
    ValueError
        Naming the item that is not a plane or a range of planes.
    """
    items = []
    for part in str(text).split(","):
        part = part.strip()
        try:
            if ":" in part:
                start, _, stop = part.partition(":")
                pair = (int(start) if start.strip() else None, int(stop) if stop.strip() else None)
            else:
                index = int(part)
                pair = (index, index + 1)
        except ValueError:
            raise ValueError(f"planes {text!r}: {part!r} is not a plane (5) or a range of planes (3:7)") from None
        if any(value is not None and value < 0 for value in pair):
            raise ValueError(f"planes {text!r}: planes are counted from 0, got {part!r}")
        if pair[0] is not None and pair[1] is not None and pair[1] <= pair[0]:
            raise ValueError(f"planes {text!r}: {part!r} holds no plane (the end is excluded, as in 3:7)")
        items.append(pair)
    return items


def select_planes(shape: Sequence[int], planes=None) -> list[tuple[int, ...]]:
    """The planes of a stack whose leading dimensions are ``shape``, in order.

    ``planes``: None for every plane; a text (see :func:`parse_planes`) choosing along the
    first leading dimension; or plane tuples (each of ``len(shape)`` coordinates), of which
    those inside the stack are kept, in the order given.
    """
    shape = tuple(int(side) for side in shape)
    every_other = [range(side) for side in shape[1:]]
    if planes is None:
        return list(itertools.product(range(shape[0]), *every_other))
    if isinstance(planes, str):
        first = []
        for start, stop in parse_planes(planes):
            first.extend(range(shape[0])[slice(start, stop)])
        return list(itertools.product(dict.fromkeys(first), *every_other))
    chosen = [tuple(int(v) for v in np.asarray(p).reshape(-1)) for p in planes]
    wrong = [p for p in chosen if len(p) != len(shape)]
    if wrong:
        raise ValueError(f"a plane of this stack has {len(shape)} leading coordinates, got {list(wrong[0])}")
    return [p for p in dict.fromkeys(chosen) if all(0 <= v < s for v, s in zip(p, shape))]


def stack_items(source, shape: Sequence[int] | None = None, planes=None) -> list[StackPlane]:
    """One :class:`StackPlane` per plane chosen (see :func:`select_planes`) of a stack file or array.

    ``shape``: the stack's leading dimensions (read from the file's header when None).

    Raises
    ------
    ValueError
        (``ImageReadError``) for a file that is not a stack.
    """
    if isinstance(source, (str, Path)):
        from napari_faster_rcnn.core.data.image_files import ImageReadError
        from napari_faster_rcnn.core.data.stack_files import stack_shape

        source = Path(source)
        if shape is None:
            shape = stack_shape(source)
            if shape is None:
                raise ImageReadError(source, "not a stack (one plane)")
    elif shape is None:
        raise ValueError("the leading dimensions of a stack given as an array are needed (shape=...)")
    return [StackPlane(source, plane) for plane in select_planes(shape, planes)]


def join_planes(annotations: Sequence[Annotation], planes: Sequence[Sequence[int]], plane_dims: int | None = None,
                classes: Sequence[str] | None = None) -> Annotation:
    """One stack annotation of each plane's boxes (``annotations[i]`` lies on ``planes[i]``):
    boxes, labels, scores (where every plane has them) and ``planes``; ``labeled_planes``
    are just the planes with boxes (the file of predictions leaves them out)."""
    annotations = list(annotations)
    dims = plane_dims if plane_dims is not None else (len(planes[0]) if len(planes) else 1)
    counts = [len(a) for a in annotations]
    lead = np.repeat(np.asarray(planes, dtype=np.int64).reshape(-1, dims), counts, axis=0)
    scored = all(a.scores is not None for a in annotations)
    if classes is None:
        classes = next((a.classes for a in annotations if a.classes is not None), None)
    return Annotation(
        boxes=np.concatenate([np.zeros((0, 4)), *(a.boxes for a in annotations)]),
        labels=[label for a in annotations for label in a.labels],
        scores=np.concatenate([np.zeros(0), *(a.scores for a in annotations)]) if scored else None,
        classes=None if classes is None else list(classes),
        planes=lead,
    )
