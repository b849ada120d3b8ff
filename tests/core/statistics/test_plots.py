"""The histograms: one axes per quantity, bars that count every image and box, stacked by class."""

import subprocess
import sys

import numpy as np
import pytest

from napari_faster_rcnn.core.data.annotations import Annotation
from napari_faster_rcnn.core.statistics.measures import BOX_QUANTITIES, QUANTITIES, dataset_statistics
from napari_faster_rcnn.core.statistics.plots import histogram_edges, plot_statistics


def stats_of_random_boxes(seed=0, images=12):
    rng = np.random.default_rng(seed)
    items = []
    for index in range(images):
        height, width = int(rng.integers(60, 200)), int(rng.integers(60, 200))
        count = int(rng.integers(0, 6))
        x1, y1 = rng.uniform(0, width / 2, count), rng.uniform(0, height / 2, count)
        boxes = np.stack([x1, y1, x1 + rng.uniform(2, width / 2, count), y1 + rng.uniform(2, height / 2, count)], 1)
        labels = [("cell", "nucleus", "debris")[k] for k in rng.integers(0, 3, count)]
        items.append(((height, width), Annotation(boxes.reshape(-1, 4), labels)))
    return dataset_statistics(items, 400, 600)


def bar_total(axes) -> float:
    return sum(patch.get_height() for patch in axes.patches)


def by_gid(figure):
    return {axes.get_gid(): axes for axes in figure.axes}


@pytest.mark.parametrize("transformed", [False, True])
def test_six_histograms_count_every_image_and_box(transformed):
    stats = stats_of_random_boxes()
    figure = plot_statistics(stats, transformed=transformed, per_class=True)
    axes = by_gid(figure)
    assert list(axes) == list(QUANTITIES)
    for quantity in ("image_height", "image_width", "boxes_per_image"):
        assert bar_total(axes[quantity]) == stats.images
    for quantity in BOX_QUANTITIES:
        assert bar_total(axes[quantity]) == stats.boxes
        # stacked by class: each class's bars hold that class's boxes
        containers = axes[quantity].containers
        assert [sum(p.get_height() for p in c) for c in containers] == list(stats.class_counts.values())
    assert [text.get_text() for text in figure.legends[0].get_texts()] == stats.classes
    # the bins span the values drawn: as stored or after the transform
    widths = stats.values("image_width", transformed)
    bars = axes["image_width"].patches
    assert min(p.get_x() for p in bars) <= widths.min() and max(p.get_x() + p.get_width() for p in bars) >= widths.max()
    assert ("after the model's transform" in figure._suptitle.get_text()) == transformed


def test_both_stages_side_by_side_and_a_class_filter():
    stats = stats_of_random_boxes(1)
    figure = plot_statistics(stats, transformed="both")
    axes = by_gid(figure)
    assert len(figure.axes) == 12 and {f"{q}:after" for q in QUANTITIES} <= set(axes)
    np.testing.assert_allclose(
        [p.get_x() for p in axes["box_area:after"].patches][0], stats.values("box_area", True).min())

    figure = plot_statistics(stats, figure=figure, per_class=False, classes=["nucleus"], theme="dark")
    axes = by_gid(figure)
    assert len(figure.axes) == 6  # the figure was cleared
    nucleus = stats.class_counts["nucleus"]
    for quantity in BOX_QUANTITIES:
        assert bar_total(axes[quantity]) == nucleus
    assert not figure.legends
    assert bar_total(axes["boxes_per_image"]) == stats.images
    heights = np.histogram(stats.values("boxes_per_image", classes="nucleus"),
                           histogram_edges(stats.values("boxes_per_image", classes="nucleus"), True))[0]
    assert [p.get_height() for p in axes["boxes_per_image"].patches] == heights.tolist()
    assert figure.get_facecolor()[:3] == pytest.approx((0x26 / 255, 0x29 / 255, 0x30 / 255))

    with pytest.raises(ValueError, match="unknown class"):
        plot_statistics(stats, classes=["horse"])
    with pytest.raises(ValueError, match="transformed must be"):
        plot_statistics(stats, transformed="after")


def test_empty_dataset_says_so_instead_of_drawing():
    stats = dataset_statistics([((10, 20), Annotation())])
    axes = by_gid(plot_statistics(stats))
    assert bar_total(axes["image_height"]) == 1
    assert not axes["box_area"].patches and axes["box_area"].texts[0].get_text() == "no boxes"


def test_integer_quantities_get_one_bin_per_value():
    np.testing.assert_array_equal(histogram_edges(np.array([0, 2, 5]), integer=True), np.arange(-0.5, 6.5))
    assert len(histogram_edges(np.arange(1000), integer=True)) <= 31
    np.testing.assert_array_equal(histogram_edges(np.array([3.0, 3.0]), integer=False), [2.5, 3.5])


def test_plots_load_no_gui_backend():
    code = (
        "import sys; from napari_faster_rcnn.core.statistics.measures import dataset_statistics;"
        "from napari_faster_rcnn.core.statistics.plots import plot_statistics;"
        "plot_statistics(dataset_statistics([((10, 10), __import__('napari_faster_rcnn.core.data.annotations', "
        "fromlist=['Annotation']).Annotation([[1, 1, 5, 5]], ['a']))]));"
        "print(' '.join(m for m in ('matplotlib.pyplot', 'PyQt6', 'qtpy', 'napari') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == ""
