"""The anchor tools read a folder's LABELED planes of stacks only (issue 13)."""

import numpy as np

from napari_faster_rcnn.core.model.anchor_inputs import iter_folder_items
from napari_faster_rcnn.core.progress import run_to_end
from tests.core.data.test_zarr_stacks import make_mixed_folder


def test_anchor_inputs_are_the_labeled_planes_and_the_labeled_images(tmp_path):
    make_mixed_folder(tmp_path / "data")
    result = run_to_end(iter_folder_items(tmp_path / "data"))
    found = sorted(zip(result.names, result.planes, [len(a) for _, a in result.items],
                       [image.name for image in result.images]))
    # the unlabeled Zarr stack gives nothing; each labeled plane its own boxes
    assert found == [("embryo[1]", (1,), 0, "embryo.zarr"), ("embryo[4]", (4,), 1, "embryo.zarr"),
                     ("flat", None, 0, "flat.png"), ("movie[2]", (2,), 2, "movie.tif")]
    assert all(size == (24, 32) for size, _ in result.items)
    boxes = dict(zip(result.names, (annotation.boxes for _, annotation in result.items)))
    np.testing.assert_array_equal(boxes["embryo[4]"], [[1, 2, 9, 12]])
