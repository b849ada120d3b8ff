"""The "Dataset statistics" widget in a real viewer: from a box layer (paged or not) and from a
folder, its numbers, table and histograms match the core's statistics of the same files."""

import numpy as np

from napari_faster_rcnn._widgets.dataset_statistics import (
    ALL_TOGETHER,
    FOLDER,
    LAYER,
    DatasetStatisticsWidget,
)
from napari_faster_rcnn.core.data.annotations import Annotation, load_annotation
from napari_faster_rcnn.core.statistics.folders import folder_statistics
from napari_faster_rcnn.core.statistics.measures import BOX_QUANTITIES, QUANTITIES
from napari_faster_rcnn.layers.conventions import CLASS_COLORS
from napari_faster_rcnn.layers.paging_registry import keep_with_layer
from napari_faster_rcnn.layers.slice_view import SliceBoxes
from tests.conftest import write_image

PLUGIN = "napari-faster-rcnn"


def open_with_widget(viewer, folder):
    viewer.open(folder, plugin=PLUGIN)
    widget = DatasetStatisticsWidget(viewer)
    viewer.window.add_dock_widget(widget)
    return widget


def table(widget) -> dict[str, list[str]]:
    return {widget.table.item(r, 0).text(): [widget.table.item(r, c).text() for c in range(1, 4)]
            for r in range(widget.table.rowCount())}


def histograms(widget) -> dict:
    return {axes.get_gid(): axes for axes in widget.figure.axes}


def bar_total(axes) -> float:
    return sum(patch.get_height() for patch in axes.patches)


def assert_same(stats, expected):
    assert stats.names == expected.names and stats.classes == expected.classes
    for quantity in QUANTITIES:
        for transformed in (False, True):
            np.testing.assert_allclose(stats.values(quantity, transformed), expected.values(quantity, transformed),
                                       atol=1e-6)


def test_from_a_layer_numbers_table_and_histograms(make_napari_viewer, tutorial_dataset):
    viewer = make_napari_viewer()
    widget = open_with_widget(viewer, tutorial_dataset)
    layer = viewer.layers[1]
    assert widget.layer.layer() is layer and widget.source.currentText() == LAYER
    assert widget.folder.text() == str(tutorial_dataset)  # ready, should the user switch to the folder
    assert widget.run() is None  # a layer is computed at once

    expected = folder_statistics(tutorial_dataset)
    stats = widget.stats
    assert_same(stats, expected)
    assert widget.summary.text().startswith(f"6 images · {expected.boxes} boxes · ")
    rows = table(widget)
    for name in expected.classes:
        width, height = np.median(expected.values("box_width", False, name)), np.median(
            expected.values("box_height", False, name))
        assert rows[name] == [str(expected.class_counts[name]), str(expected.class_image_counts[name]),
                              f"{width:.0f} × {height:.0f}"]
    assert rows["all"][0] == str(expected.boxes)

    # six histograms counting every image and box, stacked in the layer's class colours
    axes = histograms(widget)
    assert list(axes) == list(QUANTITIES)
    assert bar_total(axes["boxes_per_image"]) == 6
    for quantity in BOX_QUANTITIES:
        assert bar_total(axes[quantity]) == expected.boxes
    colors = layer.metadata[CLASS_COLORS]
    stacks = axes["box_area"].containers
    for name, bars in zip(expected.classes, stacks):
        assert sum(p.get_height() for p in bars) == expected.class_counts[name]
        np.testing.assert_allclose(bars[0].get_facecolor()[:3], _rgb(colors[name]), atol=0.01)

    # after the transform: the bars move to the transformed sizes (64 x 80 -> 800 x 1000)
    widget.transformed.setChecked(True)
    heights = histograms(widget)["image_height"].patches
    assert sum(p.get_height() for p in heights) == 6
    assert heights[0].get_x() < 800 < heights[0].get_x() + heights[0].get_width()
    assert "after the model's transform" in widget.figure._suptitle.get_text()
    median = np.median(expected.values("box_width", True))
    assert table(widget)["all"][2].startswith(f"{median:.0f} × ")

    # one class: the box histograms count its boxes only
    name = expected.classes[1]
    widget.classes.setCurrentText(name)
    assert widget.shown_classes() == [name]
    for quantity in BOX_QUANTITIES:
        assert bar_total(histograms(widget)[quantity]) == expected.class_counts[name]
    widget.classes.setCurrentText(ALL_TOGETHER)
    assert not widget.figure.legends and len(histograms(widget)["box_area"].containers) == 1

    # another min_size re-derives the transformed values, reading nothing again
    widget.min_size.setValue(400)
    assert widget.stats.min_size == 400
    assert_same(widget.stats, folder_statistics(tutorial_dataset, 400, 1333))
    assert "min_size 400" in widget.figure._suptitle.get_text()


def _rgb(color: str):
    return [int(color[i : i + 2], 16) / 255 for i in (1, 3, 5)]


def test_from_a_folder_in_a_worker(make_napari_viewer, qtbot, tutorial_dataset):
    (tutorial_dataset / "target" / "002.pt").write_bytes(b"not a torch file")
    write_image(tutorial_dataset / "input" / "006.png", 30, 50)  # unlabeled: an image without boxes
    viewer = make_napari_viewer()
    widget = DatasetStatisticsWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.source.setCurrentText(FOLDER)
    assert widget.folder_row.isVisibleTo(widget) and not widget.layer.isVisibleTo(widget)
    widget.folder.setText(str(tutorial_dataset))
    worker = widget.run()
    assert not widget.compute.isEnabled()
    qtbot.waitUntil(widget.compute.isEnabled, timeout=60_000)  # the worker finished
    assert (worker.pbar.n, worker.pbar.total) == (7, 7)  # the progress bar followed the images read
    expected = folder_statistics(tutorial_dataset)
    assert_same(widget.stats, expected)
    assert widget.stats.names == ["000", "001", "003", "004", "005", "006"]
    assert widget.stats.images_without_boxes == 1
    text = widget.summary.text()
    assert "6 images" in text and "1 without boxes" in text and "2 files skipped" in text
    assert "002.pt: not a readable PyTorch file" in widget.summary.toolTip()
    assert table(widget)["all"][0] == str(expected.boxes)
    for quantity in BOX_QUANTITIES:
        assert bar_total(histograms(widget)[quantity]) == expected.boxes
    assert bar_total(histograms(widget)["image_width"]) == 6

    # the same images opened as layers give the same numbers (the broken one is skipped there too)
    viewer.open(tutorial_dataset, plugin=PLUGIN)
    widget.source.setCurrentText(LAYER)
    widget.run()
    assert_same(widget.stats, expected)


def test_a_paged_layer_counts_every_image_not_only_the_one_shown(make_napari_viewer, tutorial_dataset):
    viewer = make_napari_viewer()
    widget = open_with_widget(viewer, tutorial_dataset)
    layer = viewer.layers[1]
    files = sorted((tutorial_dataset / "target").iterdir())
    annotations = [load_annotation(path) for path in files]
    annotations[4] = Annotation([[1, 1, 11, 21], [2, 2, 6, 6]], ["circle", "star"])  # edits held by the model
    model = SliceBoxes(viewer, layer, annotations)
    keep_with_layer(layer, model)
    viewer.dims.set_current_step(0, 0)
    assert len(layer.data) == len(annotations[0])  # the layer itself holds one image's boxes

    widget.run()
    stats = widget.stats
    assert stats.boxes == sum(len(a) for a in annotations)
    assert stats.boxes_per_image.tolist() == [len(a) for a in annotations]
    assert "star" in stats.classes and table(widget)["star"][:2] == ["1", "1"]
    star = stats.values("box_width", False, "star")
    assert star.tolist() == [4.0]
    assert bar_total(histograms(widget)["box_height"]) == stats.boxes


def test_what_cannot_be_computed_says_why(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    widget = DatasetStatisticsWidget(viewer)
    assert widget.run() is None and "open a box layer" in widget.summary.text()

    layer = viewer.add_shapes([np.array([[0, 0], [5, 5]])], shape_type="rectangle",
                              metadata={"napari_faster_rcnn": "boxes"})
    widget.layer.set_layer(layer)
    assert widget.run() is None
    assert "does not know the sizes of its 1 images" in widget.summary.text() and widget.stats is None

    widget.source.setCurrentText(FOLDER)
    widget.folder.setText("")
    assert widget.run() is None and "choose a dataset folder" in widget.summary.text()
    widget.folder.setText(str(tmp_path / "missing"))
    assert widget.run() is not None
    qtbot.waitUntil(lambda: "not a folder" in widget.summary.text(), timeout=60_000)
    qtbot.waitUntil(widget.compute.isEnabled, timeout=10_000)
    assert widget.stats is None
