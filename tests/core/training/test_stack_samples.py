"""Training on stacks: one sample per LABELED plane; an unlabeled plane is never a negative (issue 13)."""

import numpy as np
import pytest
import tifffile

from napari_faster_rcnn.core.data.annotations import Annotation, save_annotation
from napari_faster_rcnn.core.training.dataset import DetectionDataset
from napari_faster_rcnn.core.training.samples import TrainingDataError, folder_samples
from tests.conftest import write_image


def make_folder(tmp_path):
    stack = np.random.default_rng(0).integers(0, 4096, (10, 32, 40), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "movie.tif", stack)
    save_annotation(tmp_path / "movie.pt", Annotation(
        boxes=[[2, 3, 12, 14], [20, 5, 30, 15]], labels=["cell", "cell"], planes=[[3], [3]],
        labeled_planes=[[3], [7]]))
    write_image(tmp_path / "flat.png", 32, 40)
    save_annotation(tmp_path / "flat.pt", Annotation(boxes=[[1, 1, 9, 9]], labels=["cell"]))
    write_image(tmp_path / "unlabeled.png", 32, 40)  # no file: unlabeled, left out as today
    return stack


def test_a_folder_mixing_a_stack_and_2d_images_trains_on_labeled_planes_only(tmp_path):
    stack = make_folder(tmp_path)
    samples = folder_samples(tmp_path)
    assert sorted((s.image.name, s.plane) for s in samples) == [
        ("flat.png", None), ("movie.tif", (3,)), ("movie.tif", (7,))]
    dataset = DetectionDataset(samples)
    by_plane = {sample.plane: index for index, sample in enumerate(dataset.samples)}
    image, target = dataset[by_plane[(3,)]]
    # the plane's own pixels (grey repeated to 3 channels), not the first page
    expected = np.repeat(stack[3][None].astype(np.float64), 3, axis=0)
    got = image.numpy().astype(np.float64)
    assert got.shape == expected.shape
    assert np.corrcoef(got.ravel(), expected.ravel())[0, 1] > 0.99
    np.testing.assert_allclose(target["boxes"].numpy(), [[2, 3, 12, 14], [20, 5, 30, 15]])
    _, empty = dataset[by_plane[(7,)]]
    assert len(empty["boxes"]) == 0  # labeled "no objects": a true negative
    assert len(dataset) == 3  # the 8 unlabeled planes are not samples


def test_boxes_without_planes_beside_a_stack_are_refused_naming_the_file(tmp_path):
    tifffile.imwrite(tmp_path / "movie.tif", np.zeros((4, 16, 16), np.uint16), photometric="minisblack")
    save_annotation(tmp_path / "movie.json", Annotation(boxes=[[1, 1, 5, 5]], labels=["a"]))
    with pytest.raises(TrainingDataError, match="movie.json.*without 'planes'"):
        folder_samples(tmp_path)
