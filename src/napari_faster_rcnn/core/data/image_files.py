"""What an image file is: the suffixes read as images, and the error of one that cannot be read.

Every reader of pixels (:mod:`.images` for 2-D images, :mod:`.stack_files` for stacks,
:mod:`.regions` for large images read by region) raises :class:`ImageReadError`, which
names the file and the reason; commands list and skip such files like any unreadable file.
"""

from __future__ import annotations

from pathlib import Path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
TIFF_SUFFIXES = (".tif", ".tiff")


class ImageReadError(ValueError):
    """An image that cannot be read; ``str()`` names the file and the reason."""

    def __init__(self, path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def is_image_file(path: str | Path) -> bool:
    path = Path(path)
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")
