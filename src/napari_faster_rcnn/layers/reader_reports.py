"""What the reader tells the person opening files: the files left out, multi-page images shown as
their first page, the stacks of a dataset folder (pages of it, or layers of their own), and the
images a lazy stack could not read.

Each message goes to the log and, as a notification, to the viewer. No Qt here.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from napari_faster_rcnn.core.data.image_files import ImageReadError

logger = logging.getLogger(__name__)


def report_skipped(folder: Path, skipped: list) -> None:
    """Warn, in the log and the viewer, which files of ``folder`` were left out: ``skipped`` are
    ``(path, reason)``."""
    report_warning(f"Opened {folder.name} without {len(skipped)} file(s): "
                   + listed([f"{p.name}: {reason}" for p, reason in skipped]))


def report_stacks(images: list) -> None:
    """Say in the viewer which multi-page images (not stacks: pages of different sizes or series) are shown
    as their first page.

    ``images`` are ``(path, pages)``; those of one page are left out. The log also has
    each (from :func:`~napari_faster_rcnn.core.data.images.image_header`).
    """
    stacks = [(Path(p), pages) for p, pages in images if pages > 1]
    if not stacks:
        return
    report_warning(f"{len(stacks)} multi-page image(s) shown as their first page (their pages are not the planes "
                   "of one stack): " + listed([f"{p.name}: page 1 of {pages}" for p, pages in stacks]))


def report_paged_stacks(folder: Path, stacks: list, pages: int) -> None:
    """Say in the viewer which stacks of a dataset folder are pages of it: ``stacks`` are
    ``(path, leading dimensions, first page)``; ``pages`` the folder's pages in all."""
    if not stacks:
        return
    lines = []
    for path, shape, first in stacks:
        count = int(np.prod(shape))
        flat = " (t, z ... in file order, the last fastest)" if len(shape) > 1 else ""
        lines.append(f"{path.name}: pages {first} to {first + count - 1} ({' x '.join(map(str, shape))} planes{flat})")
    report_info(f"{folder.name}: {pages} pages; the planes of {len(stacks)} stack(s) are pages of the folder, "
                "each stack saved to its one file: " + listed(lines))


def report_folder_stacks(folder: Path, stacks: list, images: int = 0, reasons=None) -> None:
    """Say in the viewer that the stacks of a dataset folder opened as their own layers.

    ``stacks`` are ``(path, leading dimensions)``. Each stack is an image layer and a box layer
    of its own, paged plane by plane by the dims slider, saved to its one annotation file; the
    folder's layers hold its 2-D images (``images`` of them). The slider is napari's one: a stack's
    first leading dimension and the folder's image axis are the same slider, so where both have a
    picture the layer above hides the one below.
    """
    if not stacks:
        return
    reasons = list(reasons or [None] * len(stacks))
    lines = [f"{p.name} ({' x '.join(str(side) for side in shape)} planes" + (f"; {why}" if why else "") + ")"
             for (p, shape), why in zip(stacks, reasons)]
    message = (f"{folder.name}: {len(stacks)} stack(s) that cannot be pages of the folder opened as their own "
               "image and box layers, paged plane "
               "by plane by the slider and saved to their own file: " + listed(lines))
    if images or len(stacks) > 1:
        at = "" if not images else ", the folder's image at 0" if images == 1 else f", the folder's images at 0 to {images - 1}"
        message += f" (one slider for all{at}: hide the layers above a stack to see its planes there)"
    report_info(message)


def listed(lines: list[str], most: int = 10) -> str:
    """``lines`` joined by semicolons, the first ``most`` of them and how many more."""
    return "; ".join(lines[:most]) + (f"; and {len(lines) - most} more" if len(lines) > most else "")


def report_info(message: str) -> None:
    """Log ``message`` and show it in the viewer (an information, not a warning)."""
    from napari.utils.notifications import show_info

    logger.info(message)
    show_info(message)


def report_warning(message: str) -> None:
    """Log ``message`` as a warning and show it in the viewer as one."""
    from napari.utils.notifications import show_warning

    logger.warning(message)
    show_warning(message)


def warn_unreadable(error: ImageReadError) -> None:
    """Log an image that a lazy stack could not read (the page shows zeros)."""
    logger.warning(str(error))
