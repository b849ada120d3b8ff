"""Loading ``.pt`` files without running code from them.

``torch.load(weights_only=True)`` refuses every global that is not allowlisted.
We widen the allowlist just enough for plain numpy arrays of numbers and
strings, as written by numpy 2.x (``numpy._core.multiarray``) and by numpy 1.x
(``numpy.core.multiarray``). Arbitrary classes and functions stay refused, so
a malicious pickle raises before anything in it runs. Object arrays are
refused too: torch refuses the ones numpy writes (their dtype is built with a
class not allowlisted), and every array a file yields is checked after loading,
as a hand-made pickle can build ``dtype('O')`` and fill an array with Python
objects (nothing runs, but they are no plain data).
"""

from __future__ import annotations

import functools
import re
import threading
from pathlib import Path

import numpy as np

# ``torch.serialization.safe_globals`` swaps one process-wide list in and out: a thread leaving
# it while another loads would take that load's allowlist away (plain .pt files then read as
# refused). Loads therefore take turns; torch.load of an annotation holds the GIL most of the time anyway.
_LOAD_LOCK = threading.Lock()

# dtype codes of plain arrays: booleans, integers, floats, unicode and byte strings.
_PLAIN_DTYPE_CODES = "?bBhHiIlLqQefdgUS"


def _multiarray_function(name: str):
    for module_name in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            module = __import__(module_name, fromlist=[name])
        except ImportError:
            continue
        function = getattr(module, name, None)
        if function is not None:
            return function
    raise ImportError(f"numpy has no multiarray.{name}")


@functools.lru_cache(maxsize=1)
def _numpy_safe_globals() -> tuple:
    return tuple(numpy_safe_globals())


def numpy_safe_globals() -> list:
    """The allowlist entries for plain numpy arrays, under numpy 1.x and 2.x names."""
    # ``bytes`` appears in numpy 1.x pickles of empty arrays (``bytes()``, protocol 2).
    entries: list = [np.ndarray, np.dtype, bytes]
    for name in ("_reconstruct", "scalar"):
        function = _multiarray_function(name)
        entries += [
            (function, f"numpy.core.multiarray.{name}"),
            (function, f"numpy._core.multiarray.{name}"),
        ]
    # BUILD on a dtype instance needs its concrete class (numpy.dtypes.Float64DType, ...).
    entries += sorted({type(np.dtype(code)) for code in _PLAIN_DTYPE_CODES}, key=str)
    return entries


# torch words refusals in several ways, depending on version and on why a global is refused.
_REFUSED = (
    re.compile(r"Unsupported global: GLOBAL ([\w.]+)"),
    re.compile(r"unsupported GLOBAL ([\w.]+)"),
    re.compile(r"Unsupported class ([\w.]+)"),
)


class NotPlainDataError(ValueError):
    """A file that loaded without running anything but holds more than plain data (an object array)."""


def explain_load_error(error: BaseException) -> str:
    """A short, user-facing reason for a failed ``torch.load``."""
    if isinstance(error, NotPlainDataError):
        return str(error)
    if isinstance(error, IsADirectoryError):
        return "is a folder, not a file"
    text = str(error)
    match = next((m for m in (pattern.search(text) for pattern in _REFUSED) if m), None)
    if match:
        return (
            f"refused to load: the file would import {match.group(1)}, which is not "
            "plain data (nothing from the file was run)"
        )
    built = re.search(r"but got <class '([\w.]+)'>", text)
    if built:
        return (
            f"refused to load: the file holds a {built.group(1)}, which is not plain data "
            "(nothing from the file was run)"
        )
    if "Unsupported operand" in text:
        return "not a readable PyTorch file (truncated or corrupt)"
    if "Weights only load failed" in text:
        return "refused to load: the file holds more than plain data (nothing from the file was run)"
    if "failed finding central directory" in text or "not a zip" in text.lower():
        return "not a readable PyTorch file (truncated or corrupt)"
    if "magic number" in text.lower() or isinstance(error, EOFError):
        return "not a readable PyTorch file (truncated or corrupt)"
    first_line = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    return f"could not be read: {first_line[:300]}"


def safe_torch_load(path: str | Path, extra_globals=()):
    """``torch.load`` with ``weights_only=True`` and the numpy allowlist.

    Raises whatever ``torch.load`` raises; use :func:`explain_load_error` for
    a message.
    """
    import torch

    allowed = [*_numpy_safe_globals(), *extra_globals]
    with _LOAD_LOCK, torch.serialization.safe_globals(allowed):
        loaded = torch.load(Path(path), map_location="cpu", weights_only=True)
    check_plain_arrays(loaded)
    return loaded


def load_torch_file(path: str | Path, what: str, error_type: type[Exception]):
    """The contents of the PyTorch file ``path``, a ``what`` ("checkpoint", "weights"), loaded
    weights-only (:func:`safe_torch_load`); ``error_type`` with a message naming the file and the
    reason when it is a folder, missing, unreadable or refused."""
    path = Path(path)
    if path.is_dir():
        raise error_type(f"{path}: is a folder, not a {what} file")
    if not path.is_file():
        raise error_type(f"{path}: no such {what} file")
    try:
        return safe_torch_load(path)
    except Exception as error:  # torch raises many kinds; the message says which
        raise error_type(f"{path}: {explain_load_error(error)}") from None


def check_plain_arrays(loaded) -> None:
    """Raise :class:`NotPlainDataError` when ``loaded`` holds a numpy array that is not
    plain numbers or strings (``dtype('O')``, a structured dtype), naming where it is."""
    pending, seen = [(loaded, "")], set()
    while pending:
        value, where = pending.pop()
        if isinstance(value, np.ndarray):
            if value.dtype.char not in _PLAIN_DTYPE_CODES or value.dtype.fields is not None:
                at = f" at {where}" if where else ""
                raise NotPlainDataError(
                    f"refused to load: the file holds an array of dtype {value.dtype}{at}, which is not plain "
                    "data (only numbers and strings are; nothing from the file was run)"
                )
            continue
        if id(value) in seen:  # a pickle may share or nest a container in itself
            continue
        if isinstance(value, dict):
            seen.add(id(value))
            pending.extend((item, f"{where}[{key!r}]") for key, item in value.items())
        elif isinstance(value, (list, tuple, set, frozenset)):
            seen.add(id(value))
            pending.extend((item, f"{where}[{index}]") for index, item in enumerate(value))
