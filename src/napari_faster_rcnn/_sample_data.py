"""napari sample data: a synthetic shapes dataset and a labeled photo."""

from __future__ import annotations

import numpy as np

from napari_faster_rcnn.core.data.annotations import Annotation
from napari_faster_rcnn.layers import conventions

# Boxes drawn by hand on scikit-image's astronaut photo (512 x 512), xyxy pixels.
ASTRONAUT_BOXES = {
    "head": [(152, 14, 302, 190)],
    "helmet": [(276, 343, 512, 512)],
    "rocket": [(354, 0, 468, 285)],
    "patch": [(133, 347, 210, 425)],
    "flag": [(0, 0, 97, 512)],
}


def synthetic_shapes(n_images: int = 12, seed: int = 0) -> list[tuple]:
    """A stack of synthetic images with circles, squares and triangles, and their boxes."""
    from napari_faster_rcnn.core.data.synthetic import SHAPE_CLASSES, make_synthetic_dataset

    samples = make_synthetic_dataset(n_images, seed=seed, height=256, width=256, objects=(2, 7), sizes=(18, 72))
    images = np.stack([image for image, _ in samples])
    annotations = [annotation for _, annotation in samples]
    sizes = [image.shape[:2] for image, _ in samples]
    shapes = conventions.shapes_layer_data(
        annotations,
        stacked=True,
        name="synthetic boxes",
        classes=SHAPE_CLASSES,
        image_sizes=sizes,
        metadata={conventions.SOURCE_IMAGES: [None] * n_images},
    )
    image_meta = {conventions.IMAGE_SIZES: [list(size) for size in sizes]}
    return [(images, {"name": "synthetic", "rgb": True, "metadata": image_meta}, "image"), shapes]


def astronaut() -> list[tuple]:
    """scikit-image's astronaut photo with boxes around her head, helmet, patch, the flag and the rocket."""
    from skimage import data

    image = data.astronaut()
    labels = [name for name, boxes in ASTRONAUT_BOXES.items() for _ in boxes]
    boxes = np.array([box for boxes in ASTRONAUT_BOXES.values() for box in boxes], dtype=np.float64)
    annotation = Annotation(boxes=boxes, labels=labels)
    shapes = conventions.shapes_layer_data(
        [annotation],
        stacked=False,
        name="astronaut boxes",
        image_sizes=[image.shape[:2]],
        metadata={conventions.SOURCE_IMAGES: [None]},
    )
    image_meta = {conventions.IMAGE_SIZES: [list(image.shape[:2])]}
    return [(image, {"name": "astronaut", "rgb": True, "metadata": image_meta}, "image"), shapes]


def nuclei_timelapse() -> list[tuple]:
    """A synthetic 16-bit time-lapse of nuclei that move and divide; frames 0-4 labeled."""
    from napari_faster_rcnn.core.data.synthetic_timelapse import nuclei_timelapse as make_timelapse

    stack, annotation = make_timelapse()
    size = stack.shape[1:]
    shapes = conventions.stack_shapes_layer_data(annotation, 1, name="nuclei boxes", image_size=size,
                                                 metadata={conventions.SOURCE_IMAGES: [None],
                                                           conventions.IMAGE_SIZES: [list(size)]})
    image_meta = {conventions.IMAGE_SIZES: [list(size)], conventions.PLANE_DIMS: 1}
    limits = [float(stack.min()), float(stack.max())]
    return [(stack, {"name": "nuclei", "rgb": False, "metadata": image_meta, "contrast_limits": limits}, "image"),
            shapes]
