"""The "Tune predictions" widget, driven in a real viewer."""

import numpy as np
import pytest

from napari_faster_rcnn._widgets.tune_predictions import TunePredictionsWidget
from napari_faster_rcnn.core.data.annotations import load_annotation
from napari_faster_rcnn.core.data.boxes import rectangles_to_boxes
from napari_faster_rcnn.core.prediction.thresholds import Thresholds, apply_thresholds, save_thresholds
from napari_faster_rcnn.layers import conventions
from napari_faster_rcnn.layers.box_layers import layer_annotations
from napari_faster_rcnn.layers.predictions import prediction_pages
from tests.predictions_data import write_predictions

PLUGIN = "napari-faster-rcnn"


@pytest.fixture
def tuned(make_napari_viewer, tutorial_dataset):
    viewer = make_napari_viewer()
    raw = write_predictions(tutorial_dataset)
    viewer.open(tutorial_dataset, plugin=PLUGIN)  # the labels
    viewer.open(tutorial_dataset / "predictions", plugin=PLUGIN)
    widget = TunePredictionsWidget(viewer)
    viewer.window.add_dock_widget(widget)
    return viewer, widget, raw, viewer.layers[-1], viewer.layers[1]


def drag(slider, value):
    slider.setSliderDown(True)
    slider.setValue(value)


def release(slider):
    slider.setSliderDown(False)  # emits sliderReleased, as the mouse does


def assert_shows(layer, expected):
    boxes, _ = rectangles_to_boxes(layer.data)
    np.testing.assert_allclose(boxes, expected.boxes, atol=1e-4)
    assert list(layer.features["label"]) == expected.labels
    np.testing.assert_allclose(layer.features["score"], expected.scores)


def test_sliders_update_the_current_image_while_dragging_and_every_image_on_release(tuned):
    viewer, widget, raw, predictions, _ = tuned
    assert widget.predictions.layer() is predictions
    viewer.dims.set_current_step(0, 2)
    assert widget.thresholds() == Thresholds(0.0, 1.0)  # a folder without thresholds.json: all kept
    assert len(predictions.data) == len(raw[2])

    drag(widget.score, 0.4)
    expected = apply_thresholds(raw[2], Thresholds(0.4, 1.0))
    assert_shows(predictions, expected)
    assert widget.counts.text().startswith(f"{len(expected)} of {len(raw[2])} boxes kept in this image")
    drag(widget.nms, 0.3)
    thresholds = Thresholds(0.4, 0.3)
    assert_shows(predictions, apply_thresholds(raw[2], thresholds))
    release(widget.nms)
    pages = prediction_pages(predictions)
    assert pages.thresholds == thresholds and predictions.metadata[conventions.THRESHOLDS] == thresholds.to_dict()
    total = sum(len(apply_thresholds(a, thresholds)) for a in raw)
    assert f"{total:,} of {sum(len(a) for a in raw):,} in all 6 images" in widget.counts.text()
    for index in (0, 5, 3):  # every image was updated on release
        viewer.dims.set_current_step(0, index)
        assert_shows(predictions, apply_thresholds(raw[index], thresholds))
        assert widget.counts.text().startswith(f"{len(apply_thresholds(raw[index], thresholds))} of {len(raw[index])}")


def test_class_filter(tuned):
    viewer, widget, raw, predictions, _ = tuned
    names = [widget.classes.item(i).text() for i in range(widget.classes.count())]
    assert set(names) == {label for a in raw for label in a.labels}
    from qtpy.QtCore import Qt

    widget.classes.item(names.index("square")).setCheckState(Qt.CheckState.Unchecked)
    kept = tuple(n for n in names if n != "square")
    assert widget.thresholds() == Thresholds(0.0, 1.0, kept)
    for index in range(6):
        viewer.dims.set_current_step(0, index)
        assert "square" not in set(predictions.features["label"])
        assert_shows(predictions, apply_thresholds(raw[index], Thresholds(0.0, 1.0, kept)))


def test_saved_thresholds_set_the_sliders(make_napari_viewer, tutorial_dataset):
    viewer = make_napari_viewer()
    raw = write_predictions(tutorial_dataset)
    save_thresholds(tutorial_dataset / "predictions", Thresholds(0.55, 0.35, ("circle", "triangle")))
    viewer.open(tutorial_dataset / "predictions", plugin=PLUGIN)
    widget = TunePredictionsWidget(viewer)
    assert (widget.score.value(), widget.nms.value()) == (pytest.approx(0.55), pytest.approx(0.35))
    checked = {widget.classes.item(i).text() for i in range(widget.classes.count())
               if widget.classes.item(i).checkState().value == 2}
    assert checked == {"circle", "triangle"}
    viewer.dims.set_current_step(0, 1)
    assert_shows(viewer.layers[-1], apply_thresholds(raw[1], Thresholds(0.55, 0.35, ("circle", "triangle"))))


def test_accept_as_labels_button_round_trip(tuned, tutorial_dataset):
    viewer, widget, raw, predictions, labels = tuned
    assert widget.labels.layer() is labels
    before = layer_annotations(labels)
    widget.score.setValue(0.7)  # not dragging: applies to every image at once
    thresholds = widget.thresholds()
    added = widget.accept_as_labels()
    assert added > 0 and f"added {added} boxes" in widget.accept_status.text()
    assert widget.accept_as_labels() == 0 and "nothing added" in widget.accept_status.text()
    viewer.layers.selection = {labels}
    viewer.layers.save(str(tutorial_dataset / "target" / "x.pt"), selected=True, plugin=PLUGIN)
    viewer.layers.clear()
    viewer.open(tutorial_dataset, plugin=PLUGIN)
    reopened = layer_annotations(viewer.layers[-1])
    assert sum(len(a) for a in reopened) == sum(len(a) for a in before) + added
    for index in range(6):
        kept = apply_thresholds(raw[index], thresholds)
        saved = load_annotation(tutorial_dataset / "target" / f"{index:03d}.pt")
        for box in kept.boxes:  # each kept prediction is labeled once at most (none if a label covered it)
            assert np.sum(np.all(np.abs(saved.boxes - box) < 1e-3, axis=1)) <= 1
