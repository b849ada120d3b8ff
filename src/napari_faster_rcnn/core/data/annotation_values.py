"""An annotation's per-box values besides boxes: checks and conversions.

Each function takes what a file or a layer holds (tensors, numpy arrays, lists)
and returns one plain form, or raises ``ValueError`` with the reason:
class names (:func:`as_labels`), scores (:func:`as_scores`) and a stack's
plane coordinates (:func:`as_planes`). Box geometry is in :mod:`.boxes`;
:class:`~napari_faster_rcnn.core.data.annotations.Annotation` calls both.
"""

from __future__ import annotations

import math

import numpy as np


def _label_text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"labels must be class names or integers, got {value!r}")
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer():
        return str(int(value))
    raise ValueError(f"labels must be class names or integers, got {value!r}")


def as_labels(values) -> list[str]:
    """Return labels as a list of class names (integers become their decimal text)."""
    if values is None:
        return []
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    if isinstance(values, (str, bytes)):
        raise ValueError(f"labels must be a list, got the single string {values!r}")
    if isinstance(values, np.ndarray):
        if values.ndim > 1:
            raise ValueError(f"labels must be one-dimensional; got shape {values.shape}")
        values = values.reshape(-1).tolist()
    try:
        return [_label_text(value) for value in values]
    except TypeError:
        raise ValueError(f"labels must be a list, got {type(values).__name__}") from None


def as_scores(values) -> np.ndarray:
    """Return scores as a finite float64 ``(N,)`` array."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    if isinstance(values, (list, tuple)):
        values = [v.detach().cpu().numpy() if hasattr(v, "detach") else v for v in values]
    try:
        # a copy: a view of a layer's features is read-only, which torch.save warns about
        scores = np.array(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError("scores must be numbers") from None
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or infinite values")
    return scores


def as_planes(values, name: str = "planes") -> np.ndarray:
    """Return plane coordinates as a non-negative int64 ``(N, k)`` array, ``k >= 1``.

    A flat list of integers is ``k = 1`` (one leading dimension, as a time-lapse).
    """
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    if isinstance(values, (list, tuple)):
        values = [v.detach().cpu().numpy() if hasattr(v, "detach") else v for v in values]
    try:
        array = np.asarray(values)
    except (TypeError, ValueError):
        raise ValueError(f"'{name}' must be an (N, k) array of integers") from None
    if array.size == 0:
        return np.zeros((0, array.shape[1] if array.ndim == 2 and array.shape[1] else 1), dtype=np.int64)
    if array.dtype == bool or not (
        np.issubdtype(array.dtype, np.integer)
        or (np.issubdtype(array.dtype, np.floating) and np.isfinite(array).all() and (array == np.round(array)).all())
    ):
        raise ValueError(f"'{name}' must be integers (plane indices); got {array.dtype}")
    if array.ndim == 1:
        array = array.reshape(-1, 1)
    if array.ndim != 2 or array.shape[1] < 1:
        raise ValueError(f"'{name}' must be an (N, k) array of integers; got shape {array.shape}")
    array = array.astype(np.int64)
    if (array < 0).any():
        raise ValueError(f"'{name}' must not be negative")
    return array
