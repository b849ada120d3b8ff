"""The memory available to new allocations, for decisions that must not exhaust it
(decoding a huge image, filling an image cache)."""

from __future__ import annotations

from pathlib import Path

from napari_faster_rcnn.core.data.image_files import ImageReadError


def available_memory() -> int | None:
    """Bytes of memory available to new allocations now, or None when unknown."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        with open("/proc/meminfo", encoding="ascii") as file:
            for line in file:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


# Below this, decoding an image is not worth asking the system about memory (most images).
_MEMORY_CHECK_BYTES = 256 * 2**20


def check_decode_memory(path: Path, height: int, width: int, itemsize: int) -> None:
    """Refuse to decode pixels that would not fit: the decoded image and its RGB copy."""
    needed = 2 * int(height) * int(width) * 3 * int(itemsize)
    if needed < _MEMORY_CHECK_BYTES:
        return
    available = available_memory()
    if available is not None and needed > available:
        raise ImageReadError(
            path, f"{width} x {height} pixels need about {needed / 2**30:.1f} GiB to decode, more than the "
            f"{available / 2**30:.1f} GiB of memory available"
        )


def no_memory_reason(height: int, width: int) -> str:
    """The reason of an :class:`~.image_files.ImageReadError` for pixels whose decoding ran out of memory."""
    return f"{width} x {height} pixels: not enough memory to decode them"
