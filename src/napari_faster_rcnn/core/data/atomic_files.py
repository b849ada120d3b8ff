"""Crash-safe file writing: a whole new file or the old one, never half of it.

:func:`atomic_write_bytes` writes a temporary file in the same folder, syncs it
and renames it over the target, keeping the target's mode (or the mode ``open``
would give a new file). The process's umask is read once, at import, because
reading it means setting it for every thread; :func:`new_folder_mode` gives the
mode ``os.mkdir`` would give a new folder under it. :func:`remove_outputs` clears an earlier run's
named outputs from a folder before it is written again.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def atomic_write_bytes(path: str | Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` so that a crash leaves the old or the new file, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, _file_mode(path))
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise


def _read_umask() -> int:
    # os.umask can only be read by setting it, for the whole process: read it once, at import,
    # not at every save, where another thread (the prediction writer, a logger) may be creating a
    # file in the moment the mask is 0 and would make it writable by everyone.
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


_UMASK = _read_umask()


def new_folder_mode() -> int:
    """The mode ``os.mkdir`` gives a new folder under the process's umask (read once, at import).

    For a folder made another way (``tempfile.mkdtemp`` makes it 0700) that
    should look like the folders made beside and inside it.
    """
    return 0o777 & ~_UMASK


def _file_mode(path: Path) -> int:
    """The mode for ``path``: its own when it exists, else what ``open`` would give a new file."""
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        return 0o666 & ~_UMASK


def remove_outputs(folder: Path, names) -> None:
    """Remove the files and folders named ``names`` from ``folder``, those that exist: an earlier
    run's outputs, before a run that overwrites it (nothing else in the folder is touched)."""
    for name in names:
        path = folder / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.is_file():
            path.unlink()
