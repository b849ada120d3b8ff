"""What the "Predict" widget predicts, and the predictions layer it makes of the result.

- :func:`layer_target`: the images of an image layer to predict, the current
  one or the whole stack, as :class:`PredictionTarget` (image files where the
  layer's metadata names them, which gives each image at its own size rather
  than padded into the stack, else the layer's pixels);
- :func:`open_folder_images`: a folder's images as the image stack layer the
  reader makes of it (or the one already open);
- :func:`add_predictions`: the records of a run as a predictions layer beside
  its image: the raw detections behind it (:class:`~napari_faster_rcnn.layers.predictions.PredictionPages`,
  so "Tune predictions" filters them without running the model again), the
  chosen thresholds applied, colours by class, the score as text, the image
  index as the stack coordinate, and ``metadata`` naming the source images,
  so that saving writes one file per image and "Evaluate" pairs it with the
  labels by file name. No annotation files are named: saving asks where, so
  no label file is overwritten by predictions.

No Qt here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from napari_faster_rcnn.core.data.annotations import Annotation
from napari_faster_rcnn.core.data.folders import DatasetError
from napari_faster_rcnn.core.prediction.thresholds import Thresholds
from napari_faster_rcnn.layers import conventions
from napari_faster_rcnn.layers.conventions import is_boxes
from napari_faster_rcnn.layers.predictions import add_prediction_layer
from napari_faster_rcnn.layers.reading import read_dataset_folder

#: ``metadata[CHECKPOINT]`` of a predictions layer: the checkpoint that predicted it
CHECKPOINT = "checkpoint"


@dataclass
class PredictionTarget:
    """Images to predict and where their predictions go in the viewer.

    Attributes
    ----------
    image_layer
        The image layer they come from.
    images : list
        Per image, its file (a Path) or its pixels (an array).
    sources : list of str or None
        Per image, its file (None where it has none).
    sizes : list of (height, width)
    first : int
        The index in the image layer's stack of the first image (0 for the whole stack).
    stacked : bool
        The layer has a stack axis (a 3-D layer), even for one image of a stack.
    """

    image_layer: object
    images: list
    sources: list[str | None]
    sizes: list[tuple[int, int]]
    first: int = 0
    stacked: bool = False
    metadata: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.images)


def is_image_layer(layer) -> bool:
    from napari.layers import Image

    return isinstance(layer, Image)


def current_index(viewer, layer) -> int:
    """The index in ``layer``'s stack of the image the viewer shows."""
    position = layer.world_to_data(viewer.dims.point)
    count = layer.data.shape[0]
    return int(np.clip(round(float(position[0])), 0, count - 1))


def layer_target(viewer, layer, whole_stack: bool) -> PredictionTarget:
    """The current image of ``layer``, or every image of its stack.

    Raises
    ------
    ValueError
        For a layer that is not a 2-D image or a stack of them.
    """
    # a multiscale layer predicts on its full resolution: its file, read tile by tile, or level 0
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    spatial = layer.ndim  # napari counts the colour channels of an RGB layer out
    if spatial not in (2, 3):
        raise ValueError(f"{layer.name!r} has {spatial} dimensions; predict works on 2-D images and stacks of them")
    stacked = spatial == 3
    count = data.shape[0] if stacked else 1
    sources = list(layer.metadata.get(conventions.SOURCE_IMAGES) or [])
    sizes = list(layer.metadata.get(conventions.IMAGE_SIZES) or [])
    if len(sources) != count:
        sources = [None] * count
    if len(sizes) != count:
        shape = data.shape[1:3] if stacked else data.shape[:2]
        sizes = [tuple(int(v) for v in shape)] * count
    indices = range(count) if whole_stack or not stacked else [current_index(viewer, layer)]
    images = []
    for index in indices:
        source = sources[index]
        if source and Path(source).is_file():
            images.append(Path(source))
        else:
            sources[index] = None
            images.append(data[index] if stacked else data)
    metadata = {key: layer.metadata[key] for key in (conventions.DATASET_ROOT,) if key in layer.metadata}
    return PredictionTarget(
        image_layer=layer,
        images=images,
        sources=[sources[i] for i in indices],
        sizes=[tuple(int(v) for v in sizes[i]) for i in indices],
        first=indices[0],
        stacked=stacked,
        metadata=metadata,
    )


def open_folder_images(viewer, folder: str | Path):
    """The image stack layer of a dataset folder: the one already open, or a new one as the reader makes it.

    Raises
    ------
    ValueError
        (``DatasetError``) naming the folder when it has no readable images.
    """
    from napari.layers import Layer


    folder = Path(folder)
    for layer in viewer.layers:
        if is_image_layer(layer) and layer.metadata.get(conventions.DATASET_ROOT) == str(folder):
            return layer
    image = [layer for layer in read_dataset_folder(folder) if layer[2] == "image"]
    if not image:
        raise DatasetError(folder, "no images to predict (a folder of annotation files alone)")
    return viewer.add_layer(Layer.create(*image[0]))


def known_colors(viewer) -> dict[str, str]:
    """The class colours the box layers in the viewer use (so predictions match the labels)."""
    colors: dict[str, str] = {}
    for layer in viewer.layers:
        if is_boxes(layer):
            for name, color in (layer.metadata.get(conventions.CLASS_COLORS) or {}).items():
                colors.setdefault(name, color)
    return colors


def raw_annotations(records: Sequence, count: int) -> list[Annotation]:
    """One annotation per image from a run's records (empty where an image failed or was not reached)."""
    raw = [Annotation(np.zeros((0, 4)), [], np.zeros(0)) for _ in range(count)]
    for record in records:
        if record.annotation is not None and record.index < count:
            raw[record.index] = record.annotation
    return raw


def add_predictions(
    viewer,
    target: PredictionTarget,
    records: Sequence,
    classes: Sequence[str],
    thresholds: Thresholds,
    *,
    count: int | None = None,
    checkpoint: str | None = None,
):
    """Add the predictions layer of a run over ``target`` (its first ``count`` images) and return it."""
    count = len(target) if count is None else count
    raw = raw_annotations(records, count)
    sizes = list(target.sizes[:count])
    for record in records:
        if record.image_size is not None and record.index < count:
            sizes[record.index] = record.image_size
    metadata = {**target.metadata, conventions.SOURCE_IMAGES: list(target.sources[:count])}
    if checkpoint:
        metadata[CHECKPOINT] = str(checkpoint)
    image = target.image_layer
    name = f"{image.name} predictions" if target.first == 0 or not target.stacked else \
        f"{image.name} {_image_name(target)} predictions"
    layer = add_prediction_layer(viewer, raw, thresholds, name=name, classes=classes, image_sizes=sizes,
                                 metadata=metadata, stacked=target.stacked, colors=known_colors(viewer))
    scale, translate = np.asarray(image.scale, float), np.asarray(image.translate, float).copy()
    if target.stacked:
        translate[0] += target.first * scale[0]  # one image of a stack sits on its slice
    layer.scale, layer.translate = scale, translate
    return layer


def _image_name(target: PredictionTarget) -> str:
    source = target.sources[0] if target.sources else None
    return Path(source).stem if source else f"#{target.first}"
