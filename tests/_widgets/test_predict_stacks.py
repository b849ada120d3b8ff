"""Predict, Tune predictions, Accept as labels and Evaluate on a stack read as data (issue 13),
in a real viewer: the layers made and the files written."""

from __future__ import annotations

import time

import numpy as np
import pytest
import tifffile
import torch

from napari_faster_rcnn._widgets.evaluate import EvaluateWidget
from napari_faster_rcnn._widgets.predict import CURRENT, PLANES, STACK
from napari_faster_rcnn._widgets.tune_predictions import TunePredictionsWidget
from napari_faster_rcnn.core.data.annotations import THRESHOLDS_FILE, Annotation, load_annotation
from napari_faster_rcnn.core.data.stack_files import read_plane
from napari_faster_rcnn.core.prediction.thresholds import Thresholds, apply_thresholds
from napari_faster_rcnn.layers import conventions
from napari_faster_rcnn.layers.predictions import prediction_pages
from napari_faster_rcnn.layers.stack_labeling import labeled_planes
from tests.checkpoint_data import (
    assert_same_detections,
    loaded_predict_widget,
    raw_detections,
    shapes_frames,
    tiny_checkpoint,
)

PLUGIN = "napari-faster-rcnn"
SCORE = 0.2  # the untrained model's scores lie near 0.25: some boxes pass this


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory)


@pytest.fixture(scope="module")
def movie(tmp_path_factory, checkpoint):
    """A 6-frame 64 x 64 stack of synthetic shapes, and each plane's raw detections made without the widget."""
    root = tmp_path_factory.mktemp("movie")
    _, frames = shapes_frames(root, 6)
    path = root / "stack" / "movie.tif"
    path.parent.mkdir()
    tifffile.imwrite(path, frames, photometric="minisblack")
    return path, raw_detections(checkpoint, [read_plane(path, (t,)) for t in range(6)])


def loaded_widget(viewer, qtbot, path):
    return loaded_predict_widget(viewer, qtbot, path, score=SCORE)


def run(qtbot, widget):
    worker = widget.predict()
    assert worker is not None, widget.status.text()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    return worker


def stack_of(layer) -> Annotation:
    """Every plane's boxes of a stack layer (a box layer read from a file shows one plane at a time)."""
    from napari_faster_rcnn.layers.predictions import stack_layer_annotation

    return stack_layer_annotation(layer)


def assert_planes_show(layer, raw, planes, thresholds):
    """The layer holds, on each plane, the plane's raw detections that pass ``thresholds``."""
    shown = stack_of(layer)
    assert set(map(tuple, shown.planes.tolist())) <= set(planes)
    for plane in planes:
        kept = apply_thresholds(raw[plane[0]], thresholds)
        on = shown.on_plane(plane)
        assert_same_detections(Annotation(on.boxes, on.labels, np.asarray(layer.features["score"])[
            np.flatnonzero((shown.planes == plane).all(axis=1))]), kept)


@pytest.fixture
def opened(make_napari_viewer, qtbot, checkpoint, movie):
    viewer = make_napari_viewer()
    path, raw = movie
    image, boxes = viewer.open(path, plugin=PLUGIN)  # one stack image layer and its box layer
    widget = loaded_widget(viewer, qtbot, checkpoint)
    widget.image_layer.set_layer(image)
    return viewer, widget, image, boxes, raw


def test_predict_the_plane_shown_a_range_and_every_plane(opened, qtbot, tmp_path):
    viewer, widget, image, boxes, raw = opened
    viewer.dims.set_current_step(0, 2)
    widget.target.setCurrentText(CURRENT)
    run(qtbot, widget)
    layer = viewer.layers[-1]
    assert layer.name == "movie predictions" and layer.ndim == 3
    assert layer.metadata[conventions.PLANE_DIMS] == 1 and conventions.is_predictions(layer)
    assert set(stack_of(layer).planes[:, 0].tolist()) == {2}  # the boxes sit on plane 2
    assert_planes_show(layer, raw, [(2,)], Thresholds(SCORE, 0.5))
    assert widget.status.text().startswith("1 plane: ")

    widget.target.setCurrentText(PLANES)
    widget.planes.setText("7:3")
    assert widget.predict() is None and "holds no plane" in widget.status.text()
    widget.planes.setText("1:4")
    run(qtbot, widget)
    assert prediction_pages(viewer.layers[-1]).planes == [(1,), (2,), (3,)]
    assert_planes_show(viewer.layers[-1], raw, [(1,), (2,), (3,)], Thresholds(SCORE, 0.5))

    widget.target.setCurrentText(STACK)
    run(qtbot, widget)
    layer = viewer.layers[-1]
    assert_planes_show(layer, raw, [(t,) for t in range(6)], Thresholds(SCORE, 0.5))
    pages = prediction_pages(layer)
    for t in range(6):
        assert_same_detections(pages.raw[t], raw[t])  # every plane's raw detections are behind the layer
    # saving writes the stack's ONE file: planes, no labeled planes, and the thresholds beside it
    out = tmp_path / "saved"
    out.mkdir()
    viewer.layers.selection = {layer}
    viewer.layers.save(str(out / "movie.pt"), selected=True, plugin=PLUGIN)
    assert sorted(p.name for p in out.iterdir()) == ["movie.pt", THRESHOLDS_FILE]
    assert "labeled_planes" not in torch.load(out / "movie.pt", weights_only=True)
    assert len(load_annotation(out / "movie.pt")) == len(layer.data)
    folder = tmp_path / "folder"
    folder.mkdir()
    from napari_faster_rcnn._writer import write_boxes

    data, attributes, _ = layer.as_layer_data_tuple()
    write_boxes(str(folder), data, attributes)  # into a folder: named after the stack
    assert sorted(p.name for p in folder.iterdir()) == ["movie.pt", THRESHOLDS_FILE]


def test_tune_accept_and_evaluate_on_a_stack(opened, qtbot):
    viewer, widget, image, boxes, raw = opened
    widget.target.setCurrentText(PLANES)
    widget.planes.setText("2:5")
    run(qtbot, widget)
    layer = viewer.layers[-1]
    planes = [(2,), (3,), (4,)]

    tune = TunePredictionsWidget(viewer)
    viewer.window.add_dock_widget(tune)
    tune.predictions.set_layer(layer)
    assert tune.thresholds() == Thresholds(SCORE, 0.5)
    viewer.dims.set_current_step(0, 3)
    tune.score.setSliderDown(True)
    tune.score.setValue(0.25)
    dragged = tune.thresholds()
    on = stack_of(layer).on_plane((3,))
    assert len(on) == len(apply_thresholds(raw[3], dragged))  # the plane shown, filtered while dragging
    tune.score.setSliderDown(False)
    tune.nms.setValue(0.3)
    chosen = tune.thresholds()
    assert_planes_show(layer, raw, planes, chosen)
    kept = sum(len(apply_thresholds(raw[t], chosen)) for t in (2, 3, 4))
    assert tune.counts.text() == (f"{len(apply_thresholds(raw[3], chosen))} of {len(raw[3])} boxes kept in this "
                                  f"plane; {kept:,} of {sum(len(raw[t]) for t in (2, 3, 4)):,} in all 3 planes")

    # accept as labels: the stack's box layer gets the kept boxes on their planes, and those planes are labeled
    tune.labels.set_layer(boxes)
    tune.score.setValue(1.0)  # nothing passes: accepting says "no objects" on the planes predicted
    assert len(layer.data) == 0 and tune.accept_as_labels() == 0 and len(boxes.data) == 0
    assert labeled_planes(boxes) == {(2,), (3,), (4,)}
    assert tune.accept_status.text().endswith("(3 of 6 planes labeled)")
    tune.score.setValue(chosen.score_threshold)
    assert tune.thresholds() == chosen
    added = tune.accept_as_labels()
    assert added == kept > 0
    labels = stack_of(boxes)
    for t in (2, 3, 4):
        assert_same_detections(Annotation(labels.on_plane((t,)).boxes, labels.on_plane((t,)).labels,
                                          apply_thresholds(raw[t], chosen).scores), apply_thresholds(raw[t], chosen))
    assert labeled_planes(boxes) == {(2,), (3,), (4,)}
    assert tune.accept_as_labels() == 0  # accepting twice adds nothing

    # evaluate: the labels (planes 2-4, now equal to the kept predictions) against the predictions: perfect;
    # plane 5, predicted but unlabeled, is never a false positive
    widget.target.setCurrentText(PLANES)
    widget.planes.setText("2:6")
    run(qtbot, widget)
    predicted = viewer.layers[-1]
    prediction_pages(predicted).apply(chosen)
    evaluate = EvaluateWidget(viewer)
    viewer.window.add_dock_widget(evaluate)
    evaluate.ground_truth.set_layer(boxes)
    evaluate.predictions.set_layer(predicted)
    assert evaluate.run() is not None
    qtbot.waitUntil(evaluate.run_button.isEnabled, timeout=60_000)
    result = evaluate.result
    assert result.images == 3 and result.voc.map == pytest.approx(1.0)
    assert evaluate.summary.text().startswith("3 labeled planes · VOC mAP@0.5 1.000")
    assert "planes nobody labeled were left out" in evaluate.summary.text()
    marks = {kind: evaluate.marks[kind] for kind in ("true positives", "false positives", "missed")}
    assert len(marks["true positives"].data) == kept and len(marks["false positives"].data) == 0
    assert set(stack_of(marks["true positives"]).planes[:, 0].tolist()) <= {2, 3, 4}


def test_cancel_keeps_the_planes_predicted_so_far(make_napari_viewer, qtbot, checkpoint, tmp_path):
    path = tmp_path / "long.tif"
    tifffile.imwrite(path, np.random.default_rng(0).integers(0, 256, (30, 64, 64), dtype=np.uint8))
    viewer = make_napari_viewer()
    image, _ = viewer.open(path, plugin=PLUGIN)
    widget = loaded_widget(viewer, qtbot, checkpoint)
    widget.image_layer.set_layer(image)
    model = widget.checkpoint.model
    forward = model.forward
    model.forward = lambda *args, **kwargs: time.sleep(0.05) or forward(*args, **kwargs)
    widget.target.setCurrentText(STACK)
    widget.batch_size.setValue(2)
    worker = widget.predict()
    cancelled = []

    def cancel(record):
        if getattr(record, "done", 0) >= 2 and not cancelled:
            cancelled.append(record.done)
            widget.cancel()

    worker.yielded.connect(cancel)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    layer = viewer.layers[-1]
    pages = prediction_pages(layer)
    count = len(pages.planes)
    assert 2 <= cancelled[0] <= count < 30 and pages.planes == [(t,) for t in range(count)]
    assert widget.status.text().startswith(f"cancelled after {count} of 30 planes")
    assert set(stack_of(layer).planes[:, 0].tolist()) <= set(range(count))
