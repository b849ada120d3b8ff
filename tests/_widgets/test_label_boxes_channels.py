"""A folder of multichannel microscope images (2-D, axes CYX) labeled with "Label boxes" in a real viewer:
one layer per channel that pages with the boxes, and each image's boxes saved to its own file."""

import numpy as np
import pytest
import tifffile
from qtpy.QtCore import Qt

from napari_faster_rcnn.core.data.annotations import load_annotation
from napari_faster_rcnn.core.data.boxes import boxes_to_rectangles

PLUGIN = "napari-faster-rcnn"


@pytest.fixture
def channel_folder(tmp_path):
    rng = np.random.default_rng(11)
    # four stains of different brightness, as a fluorescence microscope writes them; the second image smaller
    images = {"well_a1.ome.tif": rng.integers(0, 4000, (4, 40, 48), dtype=np.uint16),
              "well_a2.ome.tif": rng.integers(0, 4000, (4, 32, 48), dtype=np.uint16)}
    for index, (name, pixels) in enumerate(images.items()):
        pixels[1] //= 8 + index  # a dim channel
        tifffile.imwrite(tmp_path / name, pixels, metadata={"axes": "CYX"})
    return tmp_path, images


def test_label_a_folder_of_four_channel_images(make_napari_viewer, qtbot, channel_folder):
    folder, images = channel_folder
    viewer = make_napari_viewer()
    *channels, boxes = viewer.open(folder, plugin=PLUGIN)
    assert [layer.name for layer in channels] == [f"{folder.name} [channel {c}]" for c in range(4)]
    first, second = images.values()
    assert [layer.data.shape for layer in channels] == [(2, 40, 48)] * 4  # pages padded to the largest
    for channel, layer in enumerate(channels):
        np.testing.assert_array_equal(np.asarray(layer.data[1])[:32], second[channel])
        assert not np.asarray(layer.data[1])[32:].any()  # the padding, below the smaller image
        assert layer.contrast_limits == [float(first[channel].min()), float(first[channel].max())]

    viewer.layers.selection.active = boxes
    viewer.dims.set_current_step(0, 0)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Label boxes")
    widget.ask_unsaved = lambda count, can_cancel: "save"
    assert widget.boxes.layer() is boxes
    assert widget.position.text() == "image 1 of 2: well_a1.ome.tif"
    widget.class_name.setText("nucleus")
    widget.add_button.click()
    boxes.add_rectangles(boxes_to_rectangles(np.array([[4.0, 5.0, 20.0, 18.0]]), image_index=0))
    qtbot.keyClick(viewer.window._qt_viewer.canvas.native, Qt.Key.Key_N)
    assert widget.position.text() == "image 2 of 2: well_a2.ome.tif"
    assert viewer.dims.current_step[0] == 1
    shown = channels[3]._slice.image.raw  # what the channel layer shows now: the second image's channel 3
    np.testing.assert_array_equal(np.asarray(shown)[:32], second[3])
    saved = load_annotation(folder / "well_a1.ome.pt")
    np.testing.assert_allclose(saved.boxes, [[4, 5, 20, 18]])
    assert saved.labels == ["nucleus"]
    assert sorted(p.name for p in folder.iterdir()) == ["well_a1.ome.pt", "well_a1.ome.tif", "well_a2.ome.tif"]


def test_a_folder_whose_images_have_different_channel_counts_opens_a_layer_per_channel(make_napari_viewer, tmp_path,
                                                                                       caplog):
    """Wells imaged with one stain less: the folder opens as many channel layers as its image with the most,
    and a page shows zeros in the channels its image lacks (no blank page, no error)."""
    rng = np.random.default_rng(5)
    four = rng.integers(1, 4000, (4, 24, 32), dtype=np.uint16)
    two = rng.integers(1, 4000, (2, 24, 32), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "a.ome.tif", four, metadata={"axes": "CYX"})
    tifffile.imwrite(tmp_path / "b.ome.tif", two, metadata={"axes": "CYX"})
    viewer = make_napari_viewer()
    with caplog.at_level("WARNING"):  # (an unreadable page is logged, and shows zeros)
        *channels, boxes = viewer.open(tmp_path, plugin=PLUGIN)
        pages = [np.asarray(layer.data[1]) for layer in channels]
    assert "b.ome.tif" not in caplog.text
    assert [layer.name for layer in channels] == [f"{tmp_path.name} [channel {c}]" for c in range(4)]
    assert boxes.name == f"{tmp_path.name} boxes"
    for channel in range(4):
        np.testing.assert_array_equal(np.asarray(channels[channel].data[0]), four[channel])
        np.testing.assert_array_equal(pages[channel], two[channel] if channel < 2 else np.zeros((24, 32)))
