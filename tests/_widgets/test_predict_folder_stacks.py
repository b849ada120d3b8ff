"""Predict's "folder" mode on a folder mixing 2-D images and a stack (issue 13): every plane of the
stack is predicted, as the command line predicts it, and shown as pages of the folder's predictions layer."""

from __future__ import annotations

import pytest
import tifffile

from napari_faster_rcnn._widgets.predict import FOLDER
from napari_faster_rcnn.core.data.annotations import load_annotation
from napari_faster_rcnn.core.data.stack_files import read_plane
from napari_faster_rcnn.layers import conventions
from napari_faster_rcnn.layers.predictions import prediction_pages
from tests.checkpoint_data import (
    assert_same_detections,
    loaded_predict_widget,
    raw_detections,
    shapes_frames,
    tiny_checkpoint,
)

PLUGIN = "napari-faster-rcnn"


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """A folder of two 64 x 64 PNGs and a (3, 64, 64) TIFF stack, the raw detections of each image
    and plane (made without the widget) and the checkpoint."""
    checkpoint = tiny_checkpoint(tmp_path_factory)
    root = tmp_path_factory.mktemp("mixed")
    pngs, frames = shapes_frames(root, 5)
    folder = root / "mixed"
    folder.mkdir()
    for name, png in zip(("a", "b"), pngs[:2]):
        (folder / f"{name}.png").write_bytes(png.read_bytes())
    tifffile.imwrite(folder / "movie.tif", frames[2:], photometric="minisblack")
    images = [folder / "a.png", folder / "b.png"] + [read_plane(folder / "movie.tif", (t,)) for t in range(3)]
    return checkpoint, folder, raw_detections(checkpoint, images)


def test_the_folder_mode_predicts_every_plane_of_a_stack_in_the_folder(make_napari_viewer, qtbot, mixed, tmp_path):
    checkpoint, folder, raw = mixed
    viewer = make_napari_viewer()
    widget = loaded_predict_widget(viewer, qtbot, checkpoint, score=0.2)
    widget.target.setCurrentText(FOLDER)
    widget.folder.setText(str(folder))
    assert widget.predict() is not None
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    layers = {layer.name: layer for layer in viewer.layers}
    # the stack's planes are pages of the folder: one image layer, one predictions layer
    assert set(layers) == {"mixed", "mixed predictions"}, widget.status.text()
    assert widget.status.text().startswith("5 images: ")
    predictions = layers["mixed predictions"]
    metadata = predictions.metadata
    assert [p.rsplit("/", 1)[-1] for p in metadata[conventions.SOURCE_IMAGES]] == ["a.png", "b.png"] + ["movie.tif"] * 3
    assert [conventions.source_plane(metadata, i) for i in range(5)] == [None, None, (0,), (1,), (2,)]
    for index in range(5):  # every plane, not the first page only
        assert_same_detections(prediction_pages(predictions).raw[index], raw[index])
    # saved into a folder: each 2-D image's file, and the stack's one file with planes (predictions: none labeled)
    out = tmp_path / "out"
    out.mkdir()
    viewer.layers.selection = {predictions}
    written = viewer.layers.save(str(out / "x.pt"), selected=True, plugin=PLUGIN)
    assert sorted(p.rsplit("/", 1)[-1] for p in written if p.endswith(".pt")) == ["a.pt", "b.pt", "movie.pt"], written
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".pt") == ["a.pt", "b.pt", "movie.pt"]
    saved = load_annotation(out / "movie.pt")
    assert saved.is_stack and set(saved.planes[:, 0].tolist()) <= {0, 1, 2}
    widget.predict()  # again: the layers already open are used, not opened twice
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    assert [layer.name for layer in viewer.layers if layer.name == "mixed"] == ["mixed"]


def test_a_folder_of_stacks_alone_predicts_every_plane_of_each_stack(make_napari_viewer, qtbot, mixed, tmp_path):
    checkpoint, folder, raw = mixed
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    for name in ("m1", "m2"):
        (stacks / f"{name}.tif").write_bytes((folder / "movie.tif").read_bytes())
    viewer = make_napari_viewer()
    viewer.open(str(stacks), plugin=PLUGIN)
    assert [layer.name for layer in viewer.layers] == ["stacks", "stacks boxes"]
    viewer.layers.remove("stacks")  # the folder's image layer closed: opened again to predict
    widget = loaded_predict_widget(viewer, qtbot, checkpoint)
    widget.target.setCurrentText(FOLDER)
    widget.folder.setText(str(stacks))
    assert widget.predict() is not None
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    pages = prediction_pages(viewer.layers["stacks predictions"])
    assert len(pages.raw) == 6, widget.status.text()
    for page in range(6):
        assert_same_detections(pages.raw[page], raw[2 + page % 3])
