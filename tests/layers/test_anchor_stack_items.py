"""Anchor boxes on a stack's layers read its LABELED planes only (issue 13)."""

import numpy as np
import tifffile
from napari.layers import Image, Shapes

from napari_faster_rcnn.core.data.annotations import Annotation, save_annotation
from napari_faster_rcnn.layers import anchor_sources
from napari_faster_rcnn.layers.reading import read_image_file


def test_a_stack_layer_gives_one_anchor_item_per_labeled_plane(tmp_path):
    stack = np.random.default_rng(0).integers(0, 4096, (10, 32, 40), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "movie.tif", stack, photometric="minisblack")
    save_annotation(tmp_path / "movie.pt", Annotation(
        boxes=[[2, 3, 12, 14], [20, 5, 30, 15]], labels=["cell", "cell"], planes=[[3], [3]],
        labeled_planes=[[3], [7]]))
    (image_data, image_options, _), (shapes_data, shapes_options, _) = read_image_file(tmp_path / "movie.tif")
    image, boxes = Image(image_data, **image_options), Shapes(shapes_data, **shapes_options)
    assert anchor_sources.layer_planes(boxes) == [(3,), (7,)]
    items, names, _ = anchor_sources.layer_items(boxes, image)
    assert names == ["movie[3]", "movie[7]"]  # not ten images, eight of them "no objects"
    assert [size for size, _ in items] == [(32, 40), (32, 40)]
    np.testing.assert_allclose(items[0][1].boxes, [[2, 3, 12, 14], [20, 5, 30, 15]])
    assert len(items[1][1]) == 0  # labeled "no objects": a true negative
    np.testing.assert_array_equal(anchor_sources.layer_image(image, (7,)), stack[7])
