"""Statistics of a folder with a stack count its labeled planes only (issue 13)."""

import numpy as np
import tifffile

from napari_faster_rcnn.core.data.annotations import Annotation, save_annotation
from napari_faster_rcnn.core.statistics.folders import folder_statistics
from tests.conftest import write_image


def test_labeled_planes_are_the_images_of_a_stack(tmp_path):
    tifffile.imwrite(tmp_path / "movie.tif", np.zeros((10, 32, 40), np.uint16))
    save_annotation(tmp_path / "movie.pt", Annotation(
        boxes=[[1, 1, 9, 9], [2, 2, 12, 22]], labels=["cell"] * 2, planes=[[3], [3]], labeled_planes=[[3], [7]]))
    write_image(tmp_path / "flat.png", 32, 40)
    save_annotation(tmp_path / "flat.pt", Annotation(boxes=[[1, 1, 5, 5]], labels=["cell"]))
    stats = folder_statistics(tmp_path, workers=1)
    assert stats.names == ["flat", "movie[3]", "movie[7]"]
    # boxes per image: 1 on flat, 2 on plane 3, none on the labeled empty plane 7
    assert np.bincount(stats.box_image, minlength=3).tolist() == [1, 2, 0]
    assert stats.image_height.tolist() == [32, 32, 32]
