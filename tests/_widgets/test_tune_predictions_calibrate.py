"""The "Calibrate" button of "Tune predictions": thresholds from the labels, sliders moved, file written."""

import json

from qtpy.QtCore import Qt

from napari_faster_rcnn._widgets.tune_predictions import TunePredictionsWidget
from napari_faster_rcnn.core.data.annotations import load_annotation
from napari_faster_rcnn.core.prediction.calibration import calibrate
from napari_faster_rcnn.core.prediction.thresholds import Thresholds, apply_thresholds, load_thresholds
from napari_faster_rcnn.layers.predictions import prediction_pages
from tests.predictions_data import write_predictions

PLUGIN = "napari-faster-rcnn"


def test_calibrate_moves_the_sliders_filters_every_image_and_writes_thresholds(make_napari_viewer, qtbot,
                                                                             tutorial_dataset):
    viewer = make_napari_viewer()
    raw = write_predictions(tutorial_dataset)
    viewer.open(tutorial_dataset, plugin=PLUGIN)  # the labels
    viewer.open(tutorial_dataset / "predictions", plugin=PLUGIN)
    widget = TunePredictionsWidget(viewer)
    viewer.window.add_dock_widget(widget)
    labels, predicted = viewer.layers[1], viewer.layers[-1]
    widget.labels.set_layer(labels)
    assert widget.labels.layer() is labels and widget.predictions.layer() is predicted
    assert load_thresholds(tutorial_dataset / "predictions") is None

    widget.calibrate_button.click()
    # in a worker: the button disabled and a status until it is done (its result reaches the main
    # thread as an event, so nothing has changed yet)
    assert widget.calibration_worker is not None and not widget.calibrate_button.isEnabled()
    assert widget.calibrate_status.text() == "calibrating on 6 image(s) …"
    assert load_thresholds(tutorial_dataset / "predictions") is None
    qtbot.waitUntil(lambda: widget.calibrate_button.isEnabled() and widget.calibration_worker is None,
                    timeout=30_000)

    truths = [load_annotation(path) for path in sorted((tutorial_dataset / "target").glob("*.pt"))]
    expected = calibrate(truths, raw, "f1").thresholds
    status = widget.calibrate_status.text()
    assert status.startswith("calibrated on 6 image(s): macro F1"), status
    # the sliders show the calibrated values
    assert abs(widget.score.value() - expected.score_threshold) <= 0.005  # two decimals shown
    assert abs(widget.nms.value() - expected.nms_threshold) < 1e-6
    items = [widget.classes.item(i) for i in range(widget.classes.count())]
    assert all(item.checkState() == Qt.CheckState.Checked for item in items)
    # the controls stand for the exact thresholds, every image is filtered with them
    assert widget.thresholds() == expected
    pages = prediction_pages(predicted)
    assert pages.thresholds == expected
    for index in (0, 3):
        assert pages.annotations[index].labels == apply_thresholds(raw[index], expected).labels
    # the file predict --thresholds and Tune predictions read
    written = tutorial_dataset / "predictions" / "thresholds.json"
    assert f"written to {written}" in status
    assert Thresholds.from_dict(json.loads(written.read_text())) == expected
    assert expected.class_score_thresholds  # a threshold per class

    # moving the score slider makes it one threshold for every class again
    widget.score.setValue(0.7)
    assert widget.thresholds() == Thresholds(0.7, expected.nms_threshold)
    assert pages.thresholds == Thresholds(0.7, expected.nms_threshold)


def test_calibrate_says_why_it_cannot(make_napari_viewer, tutorial_dataset):
    viewer = make_napari_viewer()
    write_predictions(tutorial_dataset)
    viewer.open(tutorial_dataset / "predictions", plugin=PLUGIN)
    widget = TunePredictionsWidget(viewer)
    viewer.window.add_dock_widget(widget)
    assert widget.calibrate() is None
    assert "box layer with labels" in widget.calibrate_status.text()
    assert widget.calibrate_button.isEnabled()


def test_calibrating_a_layer_closed_meanwhile_changes_nothing(make_napari_viewer, qtbot, tutorial_dataset):
    viewer = make_napari_viewer()
    write_predictions(tutorial_dataset)
    viewer.open(tutorial_dataset, plugin=PLUGIN)
    viewer.open(tutorial_dataset / "predictions", plugin=PLUGIN)
    widget = TunePredictionsWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.labels.set_layer(viewer.layers[1])
    predicted = viewer.layers[-1]
    before = widget.thresholds()
    worker = widget.calibrate()
    assert worker is not None
    viewer.layers.remove(predicted)  # before the result arrives
    qtbot.waitUntil(lambda: widget.calibrate_button.isEnabled(), timeout=30_000)
    assert "no longer the layer tuned" in widget.calibrate_status.text()
    assert widget.last_calibration is None and widget.thresholds() == before
    assert load_thresholds(tutorial_dataset / "predictions") is None


def test_calibrate_without_shared_labels_says_so_at_once(make_napari_viewer, tutorial_dataset):
    write_predictions(tutorial_dataset)
    for path in (tutorial_dataset / "target").glob("*.pt"):
        path.unlink()  # nothing labeled yet
    viewer = make_napari_viewer()
    viewer.open(tutorial_dataset, plugin=PLUGIN)
    viewer.open(tutorial_dataset / "predictions", plugin=PLUGIN)
    widget = TunePredictionsWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.labels.set_layer(viewer.layers[1])
    assert widget.calibrate() is None and widget.calibration_worker is None
    assert "share no labeled image" in widget.calibrate_status.text()
    assert widget.calibrate_button.isEnabled()


def test_closing_the_dock_during_a_calibration_changes_nothing(make_napari_viewer, qtbot, tutorial_dataset):
    write_predictions(tutorial_dataset)
    viewer = make_napari_viewer()
    viewer.open(tutorial_dataset, plugin=PLUGIN)
    viewer.open(tutorial_dataset / "predictions", plugin=PLUGIN)
    dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Tune predictions")
    widget.labels.set_layer(viewer.layers[1])
    assert widget.calibrate() is not None
    dock.destroyOnClose()  # the dock's x, before the result arrives
    qtbot.waitUntil(lambda: widget.calibration_worker is None, timeout=30_000)  # its "finished" came
    qtbot.wait(50)
    assert load_thresholds(tutorial_dataset / "predictions") is None  # no file written for a closed widget
