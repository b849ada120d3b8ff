"""A small synthetic 16-bit time-lapse: fluorescent-like nuclei that move and divide.

Made at run time (nothing downloaded), for File > Open Sample and for tests: a
``(frames, height, width)`` uint16 stack (dark background with camera-like noise,
nuclei as bright blurred ellipses, a 12-bit-camera range) and a stack
:class:`~napari_faster_rcnn.core.data.annotations.Annotation` whose boxes carry
their frame (``planes``). Only the first ``labeled_frames`` frames are labeled, so
the sample shows a partly labeled movie.
"""

from __future__ import annotations

import numpy as np

from napari_faster_rcnn.core.data.annotations import Annotation

NUCLEUS = "nucleus"


def nuclei_timelapse(frames: int = 10, height: int = 160, width: int = 160, nuclei: int = 6,
                     labeled_frames: int = 5, seed: int = 0) -> tuple[np.ndarray, Annotation]:
    """``(stack, annotation)``: uint16 ``(frames, height, width)`` and boxes on the labeled frames."""
    rng = np.random.default_rng(seed)
    # each nucleus: centre y, x, velocity y, x, radius; some divide at a frame
    cells = [[rng.uniform(20, height - 20), rng.uniform(20, width - 20), *rng.normal(0, 1.5, 2),
              rng.uniform(6, 10), int(rng.integers(2, frames)) if rng.random() < 0.5 else None]
             for _ in range(nuclei)]
    if frames > 2:
        cells[0][5] = 2  # at least one division early in the movie
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    stack = np.empty((frames, height, width), dtype=np.uint16)
    boxes, planes = [], []
    for frame in range(frames):
        signal = np.zeros((height, width))
        born = []
        for cell in cells:
            y, x, vy, vx, radius, divides = cell
            if divides == frame:  # two daughters, moving apart
                angle = rng.uniform(0, np.pi)
                dy, dx = np.sin(angle) * radius * 0.8, np.cos(angle) * radius * 0.8
                cell[:] = [y + dy, x + dx, vy + dy / 4, vx + dx / 4, radius * 0.75, None]
                born.append([y - dy, x - dx, vy - dy / 4, vx - dx / 4, radius * 0.75, None])
        cells.extend(born)
        for cell in cells:
            y, x, vy, vx, radius, _ = cell
            signal += 1.0 / (1.0 + np.exp(((yy - y) ** 2 + (xx - x) ** 2) ** 0.5 - radius))
            if frame < labeled_frames:
                box = [x - radius - 1, y - radius - 1, x + radius + 1, y + radius + 1]
                box = [min(max(box[0], 0), width), min(max(box[1], 0), height),
                       min(max(box[2], 0), width), min(max(box[3], 0), height)]
                if box[2] - box[0] > 2 and box[3] - box[1] > 2:
                    boxes.append(box)
                    planes.append([frame])
            cell[0] = float(np.clip(y + vy, 8, height - 8))
            cell[1] = float(np.clip(x + vx, 8, width - 8))
        brightness = 1500 * (1 + 0.2 * rng.standard_normal())  # cells differ a little frame to frame
        image = 100 + brightness * signal
        image = rng.poisson(image).astype(np.float64) + rng.normal(0, 5, image.shape)
        stack[frame] = np.clip(image, 0, 4095).astype(np.uint16)
    annotation = Annotation(
        boxes=np.array(boxes, dtype=np.float64).reshape(-1, 4), labels=[NUCLEUS] * len(boxes), classes=[NUCLEUS],
        planes=np.array(planes, dtype=np.int64).reshape(-1, 1),
        labeled_planes=np.arange(min(labeled_frames, frames)).reshape(-1, 1))
    return stack, annotation
