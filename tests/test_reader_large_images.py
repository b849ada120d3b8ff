"""Large images in a real viewer: a multiscale layer read by region, and boxes at full-resolution
coordinates that land on the right pixels, on screen and in the saved file."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import tifffile
from PIL import Image

from napari_faster_rcnn.core.data.annotations import Annotation, load_annotation, save_annotation
from napari_faster_rcnn.core.data.boxes import boxes_to_rectangles, rectangles_to_boxes
from napari_faster_rcnn.layers.labeling import labeling_session
from napari_faster_rcnn.layers.reading import LARGE_IMAGE_SIDE

PLUGIN = "napari-faster-rcnn"
TILE = 512


def tile_value(row: int, col: int) -> int:
    """Each tile one gray value, neighbours different: where a pixel is on screen says which tile it is."""
    return (row * 40 + col * 7 + 11) % 251


def write_tiled_tiff(path, side: int):
    tiles = (np.full((TILE, TILE), tile_value(r, c), np.uint8) for r in range(-(-side // TILE))
             for c in range(-(-side // TILE)))
    with tifffile.TiffWriter(path) as writer:
        writer.write(tiles, shape=(side, side), dtype=np.uint8, tile=(TILE, TILE), photometric="minisblack",
                     compression="zlib")
    return path


@pytest.fixture(scope="module")
def large_tiff(tmp_path_factory):
    """20000 x 20000: 1.2 GB as the RGB array the reader gives for small images, 0.5 MB on disk."""
    return write_tiled_tiff(tmp_path_factory.mktemp("large") / "mosaic.tif", 20000)


def test_a_large_tiff_opens_as_a_multiscale_layer_without_decoding_it_whole(make_napari_viewer, large_tiff):
    viewer = make_napari_viewer()
    tracemalloc.start()
    try:
        viewer.open(large_tiff, plugin=PLUGIN)
        viewer.screenshot(canvas_only=True)  # napari draws the level the view needs
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    image, boxes = viewer.layers
    assert image.multiscale and image.rgb
    assert image.data[0].shape == (20000, 20000, 3)
    assert max(image.data[-1].shape[:2]) <= 1024
    assert peak < 20000 * 20000 * 3 / 10, f"opening took {peak / 2**20:.0f} MiB"
    assert boxes.ndim == 2 and len(boxes.data) == 0


def test_boxes_on_a_large_image_land_on_their_pixels(make_napari_viewer, large_tiff, tmp_path):
    image_path = tmp_path / "mosaic.tif"
    image_path.symlink_to(large_tiff)
    # one box inside tile (row 25, col 31), away from the origin, where a wrong scale would show
    box = [31 * TILE + 100, 25 * TILE + 200, 31 * TILE + 300, 25 * TILE + 260]
    save_annotation(tmp_path / "mosaic.pt", Annotation([box], ["cell"]))
    viewer = make_napari_viewer()
    viewer.open(image_path, plugin=PLUGIN)
    image, boxes = viewer.layers
    np.testing.assert_allclose(rectangles_to_boxes(boxes.data)[0], [box], atol=1e-3)

    # the same world point is the same pixel in both layers, and that pixel is the box's tile
    centre = np.array([(box[1] + box[3]) / 2, (box[0] + box[2]) / 2])
    np.testing.assert_allclose(image.world_to_data(centre), boxes.world_to_data(centre))
    row, col = (int(v) for v in image.world_to_data(centre))
    assert int(image.data[0][row, col, 0].compute()) == tile_value(25, 31)

    # on screen: zoomed on the box, the centre of the canvas shows the box's tile
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera  # napari 0.9 moved it
    camera.center = tuple(centre)
    camera.zoom = 4
    boxes.visible = False
    shot = viewer.screenshot(canvas_only=True, flash=False)
    middle = shot[shot.shape[0] // 2, shot.shape[1] // 2, :3]
    np.testing.assert_allclose(middle, [tile_value(25, 31)] * 3, atol=2)

    # a box drawn by Label boxes is saved in full-resolution pixels
    session = labeling_session(viewer, boxes)
    drawn = [12000.5, 15000, 12040, 15032]
    session.layer.add_rectangles(boxes_to_rectangles(np.array([drawn], dtype=float)))
    session.save()
    saved = load_annotation(tmp_path / "mosaic.pt")
    np.testing.assert_allclose(saved.boxes, [box, drawn], atol=1e-3)


def test_small_images_stay_plain_layers(make_napari_viewer, tmp_path):
    Image.fromarray(np.zeros((300, LARGE_IMAGE_SIDE), np.uint8)).save(tmp_path / "wide.png")
    viewer = make_napari_viewer()
    viewer.open(tmp_path / "wide.png", plugin=PLUGIN)
    assert not viewer.layers[0].multiscale
    assert isinstance(viewer.layers[0].data, np.ndarray)


def test_a_zarr_store_opens_with_its_boxes(make_napari_viewer, tmp_path):
    import zarr

    pixels = np.random.default_rng(0).integers(0, 256, (600, 500, 3), dtype=np.uint8)
    zarr.create_array(str(tmp_path / "slide.zarr"), shape=pixels.shape, chunks=(128, 128, 3),
                      dtype=np.uint8)[:] = pixels
    save_annotation(tmp_path / "slide.pt", Annotation([[10, 20, 110, 220]], ["cell"]))
    viewer = make_napari_viewer()
    viewer.open(tmp_path / "slide.zarr", plugin=PLUGIN)
    image, boxes = viewer.layers
    np.testing.assert_array_equal(np.asarray(image.data), pixels)
    np.testing.assert_allclose(rectangles_to_boxes(boxes.data)[0], [[10, 20, 110, 220]], atol=1e-3)


def test_a_folder_with_a_large_image_is_padded_per_chunk(make_napari_viewer, tmp_path):
    folder = tmp_path / "dataset"
    (folder / "input").mkdir(parents=True)
    write_tiled_tiff(folder / "input" / "a_large.tif", 8192)
    Image.fromarray(np.full((300, 200), 77, np.uint8)).save(folder / "input" / "b_small.png")
    (folder / "target").mkdir()
    save_annotation(folder / "target" / "b_small.pt", Annotation([[5, 6, 50, 60]], ["cell"]))
    viewer = make_napari_viewer()
    tracemalloc.start()
    try:
        viewer.open(folder, plugin=PLUGIN)
        viewer.dims.set_current_step(0, 1)
        viewer.screenshot(canvas_only=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    image, boxes = viewer.layers
    assert image.multiscale and image.data[0].shape == (2, 8192, 8192, 3)
    assert peak < 8192 * 8192 * 3 / 4, f"{peak / 2**20:.0f} MiB"
    small = image.data[0][1, :400, :300].compute()
    assert (small[:300, :200] == 77).all() and (small[300:] == 0).all() and (small[:, 200:] == 0).all()
    assert int(image.data[0][0, 5000, 7000, 0].compute()) == tile_value(5000 // TILE, 7000 // TILE)


def test_many_small_boxes_on_a_large_image_leave_their_objects_visible(make_napari_viewer, large_tiff, tmp_path):
    """Edges scaled with a 20000 px image (67 px) would cover 24 px boxes whole."""
    image_path = tmp_path / "mosaic.tif"
    image_path.symlink_to(large_tiff)
    corners = [(row * 1000 + 37, col * 1000 + 53) for row in range(20) for col in range(20)]
    save_annotation(tmp_path / "mosaic.pt", Annotation([[x, y, x + 24, y + 24] for y, x in corners],
                                                       ["cell"] * len(corners)))
    viewer = make_napari_viewer()
    viewer.open(image_path, plugin=PLUGIN)
    image, boxes = viewer.layers
    assert len(boxes.data) == 400
    assert boxes.edge_width[0] <= 3
    y, x = corners[5 * 20 + 7]
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
    camera.center = (y + 12, x + 12)
    camera.zoom = 8
    shot = viewer.screenshot(canvas_only=True, flash=False)
    middle = shot[shot.shape[0] // 2, shot.shape[1] // 2, :3]
    np.testing.assert_allclose(middle, [tile_value((y + 12) // TILE, (x + 12) // TILE)] * 3, atol=2)


def test_an_ome_tiff_pyramid_gives_the_layer_its_levels(make_napari_viewer, tmp_path):
    """The file's own lower resolutions are the layer's levels; below them, levels are made."""
    rows, cols = np.mgrid[0:5000, 0:6000]
    image = ((rows // 500) * 20 + (cols // 500) * 3).astype(np.uint8)  # blocks of 500 px, each its own value
    path = tmp_path / "slide.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as writer:
        writer.write(image, subifds=2, tile=(256, 256), photometric="minisblack", compression="zlib")
        writer.write(image[::2, ::2], subfiletype=1, tile=(256, 256), photometric="minisblack", compression="zlib")
        writer.write(image[::4, ::4], subfiletype=1, tile=(256, 256), photometric="minisblack", compression="zlib")
    viewer = make_napari_viewer(show=True)
    viewer.open(path, plugin=PLUGIN)
    layer = viewer.layers[0]
    assert layer.multiscale
    assert [level.shape[:2] for level in layer.data] == [(5000, 6000), (2500, 3000), (1250, 1500), (625, 750)]
    np.testing.assert_array_equal(np.asarray(layer.data[2][:, :, 0]), image[::4, ::4])
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
    # a hidden viewer's screenshots place zoomed-out images wrongly, numpy ones too: show it
    shown = set()
    for zoom in (0.15, 3, 0.05):  # the file's pyramid, the full resolution, a made level
        camera.center, camera.zoom = (3250, 4250), zoom
        shot = viewer.screenshot(canvas_only=True, flash=False)
        shown.add(layer.data_level)
        np.testing.assert_allclose(shot[shot.shape[0] // 2, shot.shape[1] // 2, :3], [image[3250, 4250]] * 3, atol=2)
    assert len(shown) == 3 and 0 in shown


def test_an_annotation_file_opens_its_large_image_as_multiscale(make_napari_viewer, large_tiff, tmp_path):
    (tmp_path / "mosaic.tif").symlink_to(large_tiff)
    save_annotation(tmp_path / "mosaic.json", Annotation([[100, 200, 140, 260]], ["cell"]))
    viewer = make_napari_viewer()
    viewer.open(tmp_path / "mosaic.json", plugin=PLUGIN)
    image, boxes = viewer.layers
    assert image.multiscale and image.data[0].shape == (20000, 20000, 3)
    np.testing.assert_allclose(rectangles_to_boxes(boxes.data)[0], [[100, 200, 140, 260]], atol=1e-3)


def test_a_large_four_channel_image_opens_a_multiscale_layer_per_channel(make_napari_viewer, tmp_path):
    """A whole-slide fluorescence image (4 stains, axes CYX) above the large-image side: one multiscale
    layer per channel read by region, each with its own range, as a small one opens; its boxes save beside it."""
    side = LARGE_IMAGE_SIDE + 200
    rng = np.random.default_rng(4)
    stains = np.zeros((4, 300, side), np.uint16)
    for channel in range(4):
        stains[channel, :, :] = rng.integers(0, 100 * (channel + 1), (300, side), dtype=np.uint16)
    path = tmp_path / "slide.ome.tif"
    tifffile.imwrite(path, stains, metadata={"axes": "CYX"}, tile=(256, 256), compression="zlib")
    viewer = make_napari_viewer()
    *channels, boxes = viewer.open(path, plugin=PLUGIN)
    assert [layer.name for layer in channels] == [f"slide.ome [channel {c}]" for c in range(4)]
    for channel, layer in enumerate(channels):
        assert layer.multiscale and not layer.rgb
        assert layer.data[0].shape == (300, side)
        np.testing.assert_array_equal(np.asarray(layer.data[0][100:260, 3000:4200]), stains[channel, 100:260, 3000:4200])
        np.testing.assert_array_equal(np.asarray(layer.data[1]), stains[channel, ::2, ::2])
        low, high = layer.contrast_limits
        assert low >= 0 and 0.8 * 100 * (channel + 1) <= high < 100 * (channel + 1)  # its own range
    boxes.add_rectangles(boxes_to_rectangles(np.array([[4000.0, 10.0, 4030.0, 40.0]])))
    viewer.layers.selection = {boxes}
    viewer.layers.save(str(tmp_path / "slide.ome.pt"), selected=True, plugin=PLUGIN)
    np.testing.assert_allclose(load_annotation(tmp_path / "slide.ome.pt").boxes, [[4000, 10, 4030, 40]])
