"""Zarr stores with leading (time, z) dimensions are stacks (issue 13): planes for training and
prediction, mixed with TIFF stacks and 2-D images in dataset folders."""

import numpy as np
import pytest
import tifffile
import zarr

from napari_faster_rcnn.core.data.annotations import Annotation, save_annotation
from napari_faster_rcnn.core.data.folders import discover_dataset
from napari_faster_rcnn.core.data.image_files import ImageReadError
from napari_faster_rcnn.core.data.images import image_header, read_image
from napari_faster_rcnn.core.data.stack_files import open_stack, read_plane, stack_shape
from napari_faster_rcnn.core.statistics.folders import folder_statistics
from napari_faster_rcnn.core.training.dataset import DetectionDataset
from napari_faster_rcnn.core.training.samples import folder_samples
from tests.conftest import write_image


def write_zarr(path, shape=(4, 3, 24, 32), chunks=None, seed=0):
    data = np.random.default_rng(seed).integers(0, 4096, shape, dtype=np.uint16)
    zarr.create_array(str(path), shape=data.shape, chunks=chunks or (1,) * (len(shape) - 2) + shape[-2:],
                      dtype=data.dtype)[:] = data
    return data


def write_ngff(path, data, axes):
    group = zarr.open_group(str(path), mode="w")
    group.create_array("0", shape=data.shape, dtype=data.dtype)[:] = data
    group.attrs["multiscales"] = [{"version": "0.4", "axes": [{"name": name} for name in axes],
                                   "datasets": [{"path": "0"}]}]


def test_a_time_z_zarr_store_is_a_stack_of_planes(tmp_path):
    data = write_zarr(tmp_path / "embryo.zarr")
    path = tmp_path / "embryo.zarr"
    assert stack_shape(path) == (4, 3)
    header = image_header(path)
    assert (header.height, header.width, header.dtype, header.pages) == (24, 32, np.uint16, 12)
    lazy = open_stack(path)
    assert lazy.shape == data.shape and not isinstance(lazy, np.ndarray)
    plane = read_plane(path, (2, 1))
    assert plane.dtype == np.uint16  # values kept until normalization
    for channel in range(3):
        np.testing.assert_array_equal(plane[:, :, channel], data[2, 1])
    np.testing.assert_array_equal(read_image(path)[:, :, 0], data[0, 0])  # a 2-D reader: the first plane
    with pytest.raises(ImageReadError, match=r"embryo\.zarr: no plane \[4, 0\]"):
        read_plane(path, (4, 0))


def test_an_ngff_store_names_its_time_and_channel_axes(tmp_path):
    data = np.random.default_rng(1).integers(0, 60000, (5, 2, 16, 20), dtype=np.uint16)
    write_ngff(tmp_path / "movie.zarr", data, "tcyx")
    path = tmp_path / "movie.zarr"
    assert stack_shape(path) == (5,)  # channels are not planes
    np.testing.assert_array_equal(read_plane(path, (3,), (1,))[:, :, 2], data[3, 1])
    assert open_stack(path).shape == (5, 16, 20, 2)  # planes, rows, columns, channels


def make_mixed_folder(folder):
    folder.mkdir()
    zstack = write_zarr(folder / "embryo.zarr", shape=(6, 24, 32))
    save_annotation(folder / "embryo.json", Annotation(
        boxes=[[1, 2, 9, 12]], labels=["cell"], planes=[[4]], labeled_planes=[[1], [4]]))
    movie = np.random.default_rng(2).integers(0, 4096, (5, 24, 32), dtype=np.uint16)
    tifffile.imwrite(folder / "movie.tif", movie)
    save_annotation(folder / "movie.pt", Annotation(
        boxes=[[3, 3, 10, 10], [12, 4, 20, 14]], labels=["cell", "cell"], planes=[[2], [2]], labeled_planes=[[2]]))
    write_zarr(folder / "unlabeled.zarr", shape=(7, 24, 32))  # no file: unlabeled, never negatives
    write_image(folder / "flat.png", 24, 32)
    save_annotation(folder / "flat.pt", Annotation())  # labeled empty: a true negative
    return zstack, movie


def test_a_folder_mixing_zarr_and_tiff_stacks_with_2d_images(tmp_path):
    zstack, movie = make_mixed_folder(tmp_path / "data")
    found = discover_dataset(tmp_path / "data")
    assert [(s.name, s.image.name, s.annotation and s.annotation.name) for s in found.samples] == [
        ("embryo", "embryo.zarr", "embryo.json"), ("flat", "flat.png", "flat.pt"),
        ("movie", "movie.tif", "movie.pt"), ("unlabeled", "unlabeled.zarr", None)]
    samples = folder_samples(tmp_path / "data")
    assert sorted((s.image.name, s.plane) for s in samples) == [
        ("embryo.zarr", (1,)), ("embryo.zarr", (4,)), ("flat.png", None), ("movie.tif", (2,))]
    dataset = DetectionDataset(samples, normalization="range:0,4096")
    assert dataset.box_counts == [len(s.load()) for s in dataset.samples]
    index = next(i for i, s in enumerate(dataset.samples) if s.plane == (4,))
    tensor, target = dataset[index]
    np.testing.assert_allclose(tensor[0].numpy(), zstack[4] / 4096, atol=1e-6)
    np.testing.assert_allclose(target["boxes"].numpy(), [[1, 2, 9, 12]])

    statistics = folder_statistics(tmp_path / "data", 64, 64)
    # labeled planes (2 of the Zarr, 1 of the TIFF) and the labeled empty image; no unlabeled plane
    assert sorted(statistics.names) == ["embryo[1]", "embryo[4]", "flat", "movie[2]"]


def test_a_2d_file_beside_a_stack_labels_no_plane_in_statistics(tmp_path):
    tifffile.imwrite(tmp_path / "movie.tif", np.zeros((4, 16, 16), np.uint16), photometric="minisblack")
    save_annotation(tmp_path / "movie.json", Annotation())
    write_image(tmp_path / "flat.png", 16, 16)
    save_annotation(tmp_path / "flat.json", Annotation(boxes=[[1, 1, 5, 5]], labels=["a"]))
    assert folder_statistics(tmp_path, 64, 64).names == ["flat"]


def test_evaluation_pairs_the_labeled_planes_of_a_zarr_stack_in_a_mixed_folder(tmp_path):
    from napari_faster_rcnn.core.evaluation.pairing import load_evaluation_folders

    make_mixed_folder(tmp_path / "data")
    predicted = tmp_path / "predicted"
    predicted.mkdir()
    save_annotation(predicted / "embryo.pt", Annotation(
        boxes=[[1, 2, 9, 12]] * 3, labels=["cell"] * 3, scores=[0.9] * 3, planes=[[1], [4], [5]]))
    save_annotation(predicted / "flat.pt", Annotation())
    save_annotation(predicted / "movie.pt", Annotation(boxes=[[3, 3, 10, 10]], labels=["cell"], scores=[0.8],
                                                       planes=[[2]]))
    folders = load_evaluation_folders(tmp_path / "data", predicted)
    assert folders.names == ["embryo[1]", "embryo[4]", "flat", "movie[2]"]  # no unlabeled plane or stack
    assert [len(a) for a in folders.predictions] == [1, 1, 0, 1]  # the box on plane 5 is left out
    assert folders.image_sizes == [(24, 32)] * 4  # sizes from the Zarr header, the TIFF and the PNG
