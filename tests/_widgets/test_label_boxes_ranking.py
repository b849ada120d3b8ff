"""Label boxes' "Next most useful": ranks the open folder's unlabeled images with a checkpoint, goes to
the top one, and to the next one on each press."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from qtpy.QtWidgets import QWidget

from napari_faster_rcnn.core.model.checkpoints import load_checkpoint
from napari_faster_rcnn.core.prediction.ranking import rank_images
from napari_faster_rcnn.layers.box_window import camera
from tests.checkpoint_data import tiny_checkpoint

PLUGIN = "napari-faster-rcnn"
UNLABELED = ("001", "003", "004")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory)


@pytest.fixture
def docked(make_napari_viewer, tutorial_dataset):
    for name in UNLABELED:
        (tutorial_dataset / "target" / f"{name}.pt").unlink()
    viewer = make_napari_viewer()
    viewer.open(tutorial_dataset, plugin=PLUGIN)
    viewer.dims.set_current_step(0, 0)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Label boxes")
    return viewer, widget, tutorial_dataset


def expected_order(checkpoint, folder) -> list[int]:
    """The ranking of the unlabeled images, by the core function on the files (image index = file order),
    the labeled images passed along as the labeled ones."""
    model = load_checkpoint(checkpoint).model
    ranking = rank_images(model, [folder / "input" / f"{name}.png" for name in UNLABELED],
                          labeled=[folder / "input" / f"{name}.png" for name in ("000", "002", "005")])
    return [int(score.image.rsplit("/", 1)[-1][:3]) for score in ranking]


def press(widget, qtbot):
    row = widget.next_useful
    row.button.click()
    if row.worker is not None:
        qtbot.waitUntil(lambda: row.button.isEnabled(), timeout=60000)


def test_next_most_useful_walks_the_ranking_of_the_unlabeled_images(docked, checkpoint, qtbot):
    viewer, widget, folder = docked
    order = expected_order(checkpoint, folder)
    assert sorted(order) == [1, 3, 4]
    widget.next_useful.path.setText(str(checkpoint))
    press(widget, qtbot)
    assert viewer.dims.current_step[0] == order[0]
    assert widget.next_useful.info.text().startswith(f"{order[0]:03d}.png: rank 1 of 3")
    expected = rank_images(load_checkpoint(checkpoint).model, [folder / "input" / f"{order[0]:03d}.png"] + [
        folder / "input" / f"{name}.png" for name in UNLABELED if int(name) != order[0]],
        labeled=[folder / "input" / f"{name}.png" for name in ("000", "002", "005")])
    top = widget.next_useful.walk.scores[order[0]]
    assert top.novelty > 0 and top.novelty == pytest.approx(next(s.novelty for s in expected if s.image.endswith(
        f"{order[0]:03d}.png")), abs=1e-4)  # measured against the labeled images
    press(widget, qtbot)  # no new ranking: the next of the same one
    assert widget.next_useful.worker is None or not widget.next_useful.worker.is_running
    assert viewer.dims.current_step[0] == order[1]
    press(widget, qtbot)
    assert viewer.dims.current_step[0] == order[2]


def test_the_last_train_detector_run_is_the_default_and_nothing_to_rank_is_said(docked, checkpoint, qtbot):
    viewer, widget, folder = docked
    row = widget.next_useful
    row.button.click()
    assert row.info.text() == "choose a checkpoint, or train one with Train detector"
    trained = QWidget()
    trained.result = SimpleNamespace(best_checkpoint=None, last_checkpoint=checkpoint)  # as Train detector keeps it
    viewer.window.add_dock_widget(trained, name="Train detector (fake)")
    press(widget, qtbot)
    assert viewer.dims.current_step[0] in (1, 3, 4) and "rank 1 of 3" in row.info.text()
    for name in UNLABELED:
        (folder / "target" / f"{name}.pt").write_bytes((folder / "target" / "000.pt").read_bytes())
    row.walk = None
    row.button.click()
    assert row.info.text() == "every image is labeled"


def test_next_most_useful_on_a_stack_moves_the_slider_to_its_unlabeled_planes(make_napari_viewer, checkpoint,
                                                                              qtbot, tmp_path):
    """A (4, 64, 64) uint16 stack with planes 0 and 2 labeled: the presses go to planes 1 and 3, in the order
    the core ranking gives the two planes read independently (tifffile)."""
    import numpy as np
    import tifffile

    from napari_faster_rcnn.core.data.annotations import Annotation, save_annotation

    path = tmp_path / "movie.tif"
    stack = np.random.default_rng(0).integers(0, 4096, (4, 64, 64), dtype=np.uint16)
    tifffile.imwrite(path, stack, photometric="minisblack")
    save_annotation(tmp_path / "movie.json", Annotation([[4, 4, 20, 20]], ["cell"], planes=[[0]],
                                                        labeled_planes=[[0], [2]]))
    ranking = rank_images(load_checkpoint(checkpoint).model, [stack[1], stack[3]], labeled=[stack[0], stack[2]])
    order = [(1, 3)[int(score.image.split()[-1])] for score in ranking]
    viewer = make_napari_viewer()
    viewer.open(path, plugin=PLUGIN)
    viewer.dims.set_current_step(0, 0)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Label boxes")
    assert widget.session.is_stack and widget.session.current == 0
    widget.next_useful.path.setText(str(checkpoint))
    press(widget, qtbot)
    assert viewer.dims.current_step[0] == order[0] and widget.session.current == order[0]
    assert widget.next_useful.info.text().startswith(f"plane {order[0]}: rank 1 of 2")
    press(widget, qtbot)
    assert viewer.dims.current_step[0] == order[1]


def test_next_most_useful_shows_a_large_images_most_useful_tile(make_napari_viewer, tutorial_dataset, checkpoint,
                                                                 qtbot, monkeypatch):
    """An unlabeled image larger than a tile is scored through its tiles: the slider goes to it and the view
    to its most useful tile, centred and filling most of the canvas."""
    import numpy as np
    from PIL import Image

    from napari_faster_rcnn.core.prediction import rank_targets, tiles
    from napari_faster_rcnn.core.prediction.tiles import Tiling

    for name in ("001", "002", "003", "004", "005"):  # one labeled image (000) and the large one, unlabeled
        (tutorial_dataset / "input" / f"{name}.png").unlink()
        (tutorial_dataset / "target" / f"{name}.pt").unlink()
    Image.fromarray(np.random.default_rng(8).integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(
        tutorial_dataset / "input" / "big.png")
    monkeypatch.setattr(rank_targets, "LARGE_PIXELS", 5000)  # 300 x 400 counts as large here
    monkeypatch.setattr(tiles, "default_tiling", lambda *args: Tiling(tile=128, overlap=0.2))
    viewer = make_napari_viewer()
    viewer.open(tutorial_dataset, plugin=PLUGIN)
    viewer.dims.set_current_step(0, 0)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Label boxes")
    widget.next_useful.path.setText(str(checkpoint))
    press(widget, qtbot)
    assert viewer.dims.current_step[0] == 1  # big.png, the one unlabeled image
    x0, y0, x1, y1 = widget.next_useful.walk.tiles[1]
    assert (x1 - x0, y1 - y0) == (128, 128) and (x0, y0, x1 - 1, y1 - 1) != (0, 0, 399, 299)
    assert (x0, y0, x1, y1) in {tuple(r) for r in Tiling(tile=128, overlap=0.2).grid((300, 400)).rects.tolist()}
    assert f"x {x0}-{x1}, y {y0}-{y1}" in widget.next_useful.info.text()
    # the view: centred on the tile's pixels, the tile inside it and at least half of it across
    view = camera(viewer)
    centre = np.asarray(view.center)[-2:]
    np.testing.assert_allclose(centre, [(y0 + y1 - 1) / 2, (x0 + x1 - 1) / 2])
    half = np.asarray(viewer.window._qt_viewer.canvas.size, dtype=float) / view.zoom / 2  # world units, (h, w)
    assert np.all(half >= [64, 64]) and np.min(half) <= 2 * 64  # the whole tile shows, and fills >= half the view
