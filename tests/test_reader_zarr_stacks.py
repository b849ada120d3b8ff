"""The reader opens a Zarr store with leading (time, z) dimensions as one lazy image layer and one
box layer whose boxes carry their plane, as it opens a multi-page TIFF (issue 13)."""

import numpy as np

from napari_faster_rcnn._reader import get_reader
from napari_faster_rcnn.core.data.annotations import Annotation, save_annotation
from napari_faster_rcnn.layers import conventions
from napari_faster_rcnn.layers.paging_registry import metadata_model
from napari_faster_rcnn.layers.reading import read_annotation_file
from tests.core.data.test_zarr_stacks import write_zarr


def test_a_zarr_stack_opens_as_one_lazy_image_layer_and_one_box_layer(tmp_path):
    data = write_zarr(tmp_path / "embryo.zarr", shape=(4, 3, 24, 32))
    save_annotation(tmp_path / "embryo.pt", Annotation(
        boxes=[[1, 2, 9, 12]], labels=["cell"], planes=[[2, 1]], labeled_planes=[[0, 0]]))
    reader = get_reader(str(tmp_path / "embryo.zarr"))
    (image, image_options, image_kind), (shapes, shapes_options, shapes_kind) = reader(str(tmp_path / "embryo.zarr"))
    assert image_kind == "image" and shapes_kind == "shapes"
    assert image.shape == (4, 3, 24, 32) and not isinstance(image, np.ndarray)  # lazy
    np.testing.assert_array_equal(np.asarray(image[2, 1]), data[2, 1])
    assert image_options["metadata"][conventions.PLANE_DIMS] == 2 and not image_options["rgb"]
    assert shapes_options["ndim"] == 4
    held = metadata_model(shapes_options["metadata"])  # the layer shows one plane; the store holds all
    assert held.stack_annotation().planes.tolist() == [[2, 1]]  # the box carries its plane
    assert shapes_options["metadata"][conventions.LABELED_PLANES] == [[0, 0], [2, 1]]
    assert shapes_options["metadata"][conventions.ANNOTATION_FILES] == [str(tmp_path / "embryo.pt")]
    # the annotation file opens its Zarr stack too
    layers = read_annotation_file(tmp_path / "embryo.pt")
    assert layers[0][0].shape == (4, 3, 24, 32)
