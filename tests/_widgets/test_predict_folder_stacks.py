"""Predict's "folder" mode on a folder mixing 2-D images and a stack (issue 13): every plane of the
stack is predicted, as the command line predicts it, and shown in the stack's predictions layer."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_faster_rcnn._widgets.predict import FOLDER, PredictWidget
from napari_faster_rcnn.core.data.annotations import load_annotation
from napari_faster_rcnn.core.data.images import read_image, read_plane
from napari_faster_rcnn.core.data.synthetic import write_synthetic_dataset
from napari_faster_rcnn.core.model.checkpoints import load_checkpoint
from napari_faster_rcnn.core.prediction.run import predict_images
from napari_faster_rcnn.layers import conventions
from napari_faster_rcnn.layers.predictions import prediction_pages
from tests.checkpoint_data import assert_same_detections, tiny_checkpoint

PLUGIN = "napari-faster-rcnn"


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """A folder of two 64 x 64 PNGs and a (3, 64, 64) TIFF stack, the raw detections of each image
    and plane (made without the widget) and the checkpoint."""
    checkpoint = tiny_checkpoint(tmp_path_factory)
    root = tmp_path_factory.mktemp("mixed")
    shapes = write_synthetic_dataset(root / "shapes", 5, seed=3, height=64, width=64)
    pngs = sorted((shapes / "input").glob("*.png"))
    folder = root / "mixed"
    folder.mkdir()
    for name, png in zip(("a", "b"), pngs[:2]):
        (folder / f"{name}.png").write_bytes(png.read_bytes())
    frames = np.stack([read_image(p)[:, :, 0] for p in pngs[2:]])
    tifffile.imwrite(folder / "movie.tif", frames, photometric="minisblack")
    loaded = load_checkpoint(checkpoint)
    images = [folder / "a.png", folder / "b.png"] + [read_plane(folder / "movie.tif", (t,)) for t in range(3)]
    records, _ = predict_images(loaded.model, images, loaded.classes)
    return checkpoint, folder, [record.annotation for record in records]


def test_the_folder_mode_predicts_every_plane_of_a_stack_in_the_folder(make_napari_viewer, qtbot, mixed, tmp_path):
    checkpoint, folder, raw = mixed
    viewer = make_napari_viewer()
    widget = PredictWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.path.setText(str(checkpoint))
    assert widget.load() is not None
    qtbot.waitUntil(widget.load_button.isEnabled, timeout=60_000)
    widget.tile.setValue(0)
    widget.score.setValue(0.2)
    widget.target.setCurrentText(FOLDER)
    widget.folder.setText(str(folder))
    assert widget.predict() is not None
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    layers = {layer.name: layer for layer in viewer.layers}
    assert set(layers) == {"mixed", "movie", "mixed predictions", "movie predictions"}, widget.status.text()
    assert widget.status.text().startswith("5 images (1 stack: a predictions layer each): ")
    folder_layer, stack_layer = layers["mixed predictions"], layers["movie predictions"]
    assert [p.rsplit("/", 1)[-1] for p in folder_layer.metadata[conventions.SOURCE_IMAGES]] == ["a.png", "b.png"]
    for index in range(2):
        assert_same_detections(prediction_pages(folder_layer).raw[index], raw[index])
    pages = prediction_pages(stack_layer)
    assert stack_layer.metadata[conventions.PLANE_DIMS] == 1 and pages.planes == [(0,), (1,), (2,)]
    for t in range(3):  # every plane, not the first page only
        assert_same_detections(pages.raw[t], raw[2 + t])
    # the stack's predictions save to its one file, with planes
    out = tmp_path / "out"
    out.mkdir()
    viewer.layers.selection = {stack_layer}
    viewer.layers.save(str(out / "movie.pt"), selected=True, plugin=PLUGIN)
    saved = load_annotation(out / "movie.pt")
    assert saved.is_stack and set(saved.planes[:, 0].tolist()) <= {0, 1, 2}
    widget.predict()  # again: the layers already open are used, not opened twice
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    assert sorted(layer.name for layer in viewer.layers if layer.name in ("mixed", "movie")) == ["mixed", "movie"]
    # the stack's layers closed, the folder's open: the stack is opened again and predicted, not left out
    for name in ("movie", "movie predictions", "movie predictions [1]"):
        viewer.layers.remove(name)
    widget.predict()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    assert [layer.name for layer in viewer.layers if layer.name.startswith("movie")] == ["movie", "movie predictions"]
    assert prediction_pages(viewer.layers["movie predictions"]).planes == [(0,), (1,), (2,)]


def test_a_folder_of_stacks_alone_predicts_each_stack_even_one_whose_layers_were_closed(make_napari_viewer, qtbot, mixed,
                                                                                      tmp_path):
    checkpoint, folder, raw = mixed
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    for name in ("m1", "m2"):
        (stacks / f"{name}.tif").write_bytes((folder / "movie.tif").read_bytes())
    viewer = make_napari_viewer()
    viewer.open(str(stacks), plugin=PLUGIN)
    assert [layer.name for layer in viewer.layers] == ["m1", "m1 boxes", "m2", "m2 boxes"]
    viewer.layers.remove("m1")  # one stack's image layer closed
    widget = PredictWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.path.setText(str(checkpoint))
    assert widget.load() is not None
    qtbot.waitUntil(widget.load_button.isEnabled, timeout=60_000)
    widget.tile.setValue(0)
    widget.target.setCurrentText(FOLDER)
    widget.folder.setText(str(stacks))
    assert widget.predict() is not None
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    for name in ("m1", "m2"):
        pages = prediction_pages(viewer.layers[f"{name} predictions"])
        assert pages.planes == [(0,), (1,), (2,)], widget.status.text()
        for t in range(3):
            assert_same_detections(pages.raw[t], raw[2 + t])
