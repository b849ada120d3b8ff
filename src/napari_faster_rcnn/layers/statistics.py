"""Dataset statistics of a box layer in the viewer: its boxes and its images' sizes.

A box or predictions layer holds every image's boxes (or a paging model does,
see :func:`.box_layers.layer_annotations`) and ``metadata["image_sizes"]``,
which the reader fills from the image headers. No Qt here.
"""

from __future__ import annotations

from pathlib import Path

from napari_faster_rcnn.core.statistics.measures import (
    DEFAULT_MAX_SIZE,
    DEFAULT_MIN_SIZE,
    DatasetStatistics,
    dataset_statistics,
)
from napari_faster_rcnn.layers import conventions
from napari_faster_rcnn.layers.box_layers import layer_annotations
from napari_faster_rcnn.layers.folder_pages import page_names, unlabeled_planes


def layer_statistics(layer, min_size: int = DEFAULT_MIN_SIZE, max_size: int = DEFAULT_MAX_SIZE) -> DatasetStatistics:
    """The statistics of every image of a box layer, paged or not.

    Raises
    ------
    ValueError
        If the layer does not know its images' sizes, or a paged layer's model is gone.
    """
    annotations = layer_annotations(layer)
    sizes = layer.metadata.get(conventions.IMAGE_SIZES)
    if not sizes or len(sizes) != len(annotations):
        raise ValueError(
            f"layer {layer.name!r} does not know the sizes of its {len(annotations)} images "
            f"(metadata {conventions.IMAGE_SIZES!r}); open the images with the Faster R-CNN reader, or choose a folder"
        )
    sources = layer.metadata.get(conventions.SOURCE_IMAGES) or [None] * len(annotations)
    names = [Path(source).stem if source else str(index) for index, source in enumerate(sources)]
    left_out = unlabeled_planes(layer, annotations)  # a folder's stack planes nobody labeled, as training
    if layer.metadata.get(conventions.SOURCE_PLANES):
        names = page_names(layer.metadata, len(annotations))
    if left_out:
        keep = [i for i in range(len(annotations)) if i not in left_out]
        annotations, sizes, names = [annotations[i] for i in keep], [sizes[i] for i in keep], [names[i] for i in keep]
    return dataset_statistics(
        zip(map(tuple, sizes), annotations),
        min_size,
        max_size,
        names=names,
        classes=layer.metadata.get(conventions.CLASSES) or (),
        unlabeled_images=len(left_out),
    )
