"""A stack (time-lapse, z stack) opens as one image layer and one box layer, and saves as ONE
annotation file with planes and labeled planes (issue 13), through a real viewer."""

import numpy as np
import pytest
import tifffile

from napari_faster_rcnn.core.data.annotations import load_annotation
from napari_faster_rcnn.core.data.boxes import boxes_to_rectangles
from napari_faster_rcnn.layers import conventions

PLUGIN = "napari-faster-rcnn"


def write_stack(path, shape=(10, 48, 64), axes=None):
    rng = np.random.default_rng(0)
    stack = rng.integers(0, 4096, size=shape, dtype=np.uint16)
    tifffile.imwrite(path, stack, metadata={"axes": axes} if axes else None)
    return stack


def save_layer(viewer, layer, path):
    viewer.layers.selection = {layer}
    return viewer.layers.save(str(path), selected=True, plugin=PLUGIN)


def with_leading(plane, rectangles):
    return [np.concatenate([np.full((len(r), len(plane)), plane, dtype=float), r], axis=1) for r in rectangles]


def test_a_tiff_stack_opens_as_one_lazy_image_layer_and_one_box_layer(make_napari_viewer, tmp_path):
    stack = write_stack(tmp_path / "movie.tif")
    viewer = make_napari_viewer()
    layers = viewer.open(tmp_path / "movie.tif", plugin=PLUGIN)
    assert len(layers) == 2
    image, boxes = layers
    assert image.data.shape == (10, 48, 64) and image.data.dtype == np.uint16
    assert not isinstance(image.data, np.ndarray)  # lazy: a dask array over tifffile's zarr store
    np.testing.assert_array_equal(np.asarray(image.data[6]), stack[6])
    assert boxes.ndim == 3 and len(boxes.data) == 0
    assert viewer.dims.nsteps[0] == 10


@pytest.mark.parametrize("suffix", [".pt", ".json"])
def test_label_planes_3_and_7_save_one_file_and_reopen(make_napari_viewer, tmp_path, suffix):
    # the figure of issue 13: boxes on plane 3, "no objects" on plane 7 of a 10-frame 16-bit stack
    write_stack(tmp_path / "movie.tif")
    viewer = make_napari_viewer()
    _, shapes = viewer.open(tmp_path / "movie.tif", plugin=PLUGIN)
    boxes = np.array([[5.0, 6.0, 20.0, 30.0], [30.0, 10.0, 40.0, 25.0]])
    shapes.feature_defaults = {"label": "nucleus"}
    shapes.add_rectangles(with_leading([3], boxes_to_rectangles(boxes)))
    shapes.metadata[conventions.LABELED_PLANES] = [[7]]
    written = save_layer(viewer, shapes, tmp_path / f"movie{suffix}")
    assert written == [str(tmp_path / f"movie{suffix}")]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["movie.tif", f"movie{suffix}"])
    saved = load_annotation(tmp_path / f"movie{suffix}")
    assert saved.planes.tolist() == [[3], [3]]
    assert saved.labeled_planes.tolist() == [[3], [7]]

    reopened = make_napari_viewer()
    _, again = reopened.open(tmp_path / "movie.tif", plugin=PLUGIN)
    assert again.ndim == 3
    assert again.nshapes == 0  # the layer holds the plane shown (0); the others are paged in
    reopened.dims.set_current_step(0, 3)
    found = np.array(again.data)
    assert (found[:, :, 0] == 3).all()
    np.testing.assert_allclose(np.sort(found[:, :, 1:].reshape(-1, 2), axis=0),
                               np.sort(np.concatenate(boxes_to_rectangles(boxes)), axis=0))
    assert list(again.features["label"]) == ["nucleus", "nucleus"]
    assert again.metadata[conventions.LABELED_PLANES] == [[3], [7]]


def test_a_time_and_z_ome_tiff_keeps_both_leading_coordinates(make_napari_viewer, tmp_path):
    write_stack(tmp_path / "tz.ome.tif", shape=(2, 5, 32, 40), axes="TZYX")
    viewer = make_napari_viewer()
    image, shapes = viewer.open(tmp_path / "tz.ome.tif", plugin=PLUGIN)
    assert image.data.shape == (2, 5, 32, 40)
    assert shapes.ndim == 4
    shapes.add_rectangles(with_leading([1, 4], boxes_to_rectangles(np.array([[1.0, 2.0, 10.0, 12.0]]))))
    save_layer(viewer, shapes, tmp_path / "tz.ome.json")
    saved = load_annotation(tmp_path / "tz.ome.json")
    assert saved.planes.tolist() == [[1, 4]] and saved.labeled_planes.tolist() == [[1, 4]]
    np.testing.assert_allclose(saved.boxes, [[1, 2, 10, 12]])


def test_boxes_without_planes_beside_a_stack_name_the_file(make_napari_viewer, tmp_path):
    from napari_faster_rcnn.core.data.annotations import Annotation, AnnotationError, save_annotation
    from napari_faster_rcnn.layers.stack_reading import read_stack_file

    write_stack(tmp_path / "movie.tif")
    save_annotation(tmp_path / "movie.json", Annotation(boxes=[[0, 0, 4, 4]], labels=["a"]))
    with pytest.raises(AnnotationError, match="movie.json.*without 'planes'"):
        read_stack_file(tmp_path / "movie.tif")


def test_a_multichannel_time_lapse_opens_one_layer_per_channel_and_time_planes(make_napari_viewer, tmp_path):
    movie = np.random.default_rng(3).integers(0, 4096, (5, 2, 24, 32), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "stains.tif", movie, imagej=True, metadata={"axes": "TCYX"})
    viewer = make_napari_viewer()
    layers = viewer.open(tmp_path / "stains.tif", plugin=PLUGIN)
    images, boxes = layers[:-1], layers[-1]
    assert [layer.data.shape for layer in images] == [(5, 24, 32), (5, 24, 32)]  # the channels are not planes
    np.testing.assert_array_equal(np.asarray(images[1].data[3]), movie[3, 1])
    assert boxes.ndim == 3 and boxes.metadata[conventions.PLANE_DIMS] == 1
    assert viewer.dims.nsteps[0] == 5


@pytest.mark.parametrize("channels, dtype", [(4, np.uint16), (3, np.float32)])
def test_a_2d_multichannel_image_opens_one_layer_per_channel(make_napari_viewer, tmp_path, caplog, channels, dtype):
    # A stained section unmixed into its stains (float optical densities) or a 4-colour fluorescence image:
    # one picture whose pages are its channels, shown as napari shows channels, each with its own range,
    # not refused for its 4 channels nor painted as one dark RGB picture, nor called a stack's first page.
    rng = np.random.default_rng(5)
    pixels = (rng.random((channels, 24, 32)) * (10.0 ** np.arange(1, channels + 1))[:, None, None]).astype(dtype)
    tifffile.imwrite(tmp_path / "section.ome.tif", pixels, metadata={"axes": "CYX"})
    viewer = make_napari_viewer()
    with caplog.at_level("INFO"):
        *images, shapes = viewer.open(tmp_path / "section.ome.tif", plugin=PLUGIN)
    assert [layer.name for layer in images] == [f"section.ome [channel {c}]" for c in range(channels)]
    for channel, layer in enumerate(images):
        assert not layer.rgb
        np.testing.assert_array_equal(layer.data, pixels[channel])
        np.testing.assert_allclose(layer.contrast_limits, [pixels[channel].min(), pixels[channel].max()], rtol=1e-6)
    assert "first page" not in caplog.text and "page 1 of" not in caplog.text
    shapes.feature_defaults = {"label": "nucleus"}
    shapes.add_rectangles(boxes_to_rectangles(np.array([[4.0, 5.0, 14.0, 20.0]])))
    save_layer(viewer, shapes, tmp_path / "section.ome.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["section.ome.pt", "section.ome.tif"]
    saved = load_annotation(tmp_path / "section.ome.pt")
    np.testing.assert_allclose(saved.boxes, [[4, 5, 14, 20]])
    assert saved.labels == ["nucleus"] and not saved.is_stack
