"""Raw detections behind a predictions layer, thresholds saved with predictions, accepting as labels."""

import json

import numpy as np

from napari_faster_rcnn.core.data.annotations import THRESHOLDS_FILE, Annotation, load_annotation
from napari_faster_rcnn.core.data.boxes import rectangles_to_boxes
from napari_faster_rcnn.core.prediction.thresholds import Thresholds, apply_thresholds, load_thresholds
from napari_faster_rcnn.layers import conventions
from napari_faster_rcnn.layers.box_layers import layer_annotations
from napari_faster_rcnn.layers.evaluation_layers import pair_images
from napari_faster_rcnn.layers.prediction_labels import accept_as_labels
from napari_faster_rcnn.layers.predictions import PredictionPages, add_prediction_layer, prediction_pages, tune
from napari_faster_rcnn.layers.slice_view import SliceBoxes
from tests.predictions_data import write_predictions

PLUGIN = "napari-faster-rcnn"


def open_predictions(viewer, dataset):
    raw = write_predictions(dataset)
    viewer.open(dataset / "predictions", plugin=PLUGIN)
    return raw, viewer.layers[-1]


def shown(layer):
    boxes, _ = rectangles_to_boxes(layer.data)
    return boxes, list(layer.features["label"]), np.asarray(layer.features["score"])


def test_a_predictions_folder_becomes_raw_detections(make_napari_viewer, tutorial_dataset):
    viewer = make_napari_viewer()
    raw, layer = open_predictions(viewer, tutorial_dataset)
    assert layer.metadata[conventions.LAYER_ROLE] == conventions.PREDICTIONS
    pages = tune(viewer, layer)
    assert prediction_pages(layer) is pages and tune(viewer, layer) is pages
    assert pages.thresholds == Thresholds(0.0, 1.0)  # nothing saved: everything kept
    assert [len(a) for a in pages.raw] == [len(a) for a in raw]
    thresholds = Thresholds(0.5, 0.4, ("square", "triangle"))
    pages.apply(thresholds)
    for index in (0, 3, 5):
        viewer.dims.set_current_step(0, index)
        expected = apply_thresholds(raw[index], thresholds)
        boxes, labels, scores = shown(layer)
        np.testing.assert_allclose(boxes, expected.boxes, atol=1e-4)
        assert labels == expected.labels and np.allclose(scores, expected.scores)
    assert layer.metadata[conventions.THRESHOLDS] == thresholds.to_dict()


def test_saving_tuned_predictions_writes_their_thresholds(make_napari_viewer, tutorial_dataset):
    """Saved back over the predictions: the kept boxes, and thresholds.json beside them."""
    viewer = make_napari_viewer()
    raw, layer = open_predictions(viewer, tutorial_dataset)
    thresholds = Thresholds(0.3, 0.5)
    tune(viewer, layer).apply(thresholds)
    out = tutorial_dataset / "predictions"
    viewer.layers.selection = {layer}
    written = viewer.layers.save(str(out / "any.pt"), selected=True, plugin=PLUGIN)
    assert str(out / THRESHOLDS_FILE) in written
    assert json.loads((out / THRESHOLDS_FILE).read_text()) == {"score_threshold": 0.3, "nms_threshold": 0.5,
                                                               "classes": None}
    for index, annotation in enumerate(raw):
        saved, expected = load_annotation(out / f"{index:03d}.pt"), apply_thresholds(annotation, thresholds)
        np.testing.assert_allclose(saved.boxes, expected.boxes, atol=1e-4)
        assert saved.labels == expected.labels and np.allclose(saved.scores, expected.scores)
    # opened again, the thresholds come back with the predictions
    viewer.layers.clear()
    viewer.open(out, plugin=PLUGIN)
    assert tune(viewer, viewer.layers[-1]).thresholds == thresholds
    assert load_thresholds(out) == thresholds


def test_raw_predictions_open_filtered_by_the_thresholds_beside_them(make_napari_viewer, tutorial_dataset):
    """A folder of raw detections (predict --raw) with thresholds.json opens as those thresholds keep them,
    not as every overlapping raw box; Tune predictions finds the raw detections and starts there."""
    raw = write_predictions(tutorial_dataset)
    thresholds = Thresholds(0.4, 0.3)
    (tutorial_dataset / "predictions" / THRESHOLDS_FILE).write_text(json.dumps(thresholds.to_dict()))
    viewer = make_napari_viewer()
    viewer.open(tutorial_dataset / "predictions", plugin=PLUGIN)
    layer = viewer.layers[-1]
    for index in (0, 2):
        viewer.dims.set_current_step(0, index)
        expected = apply_thresholds(raw[index], thresholds)
        assert 0 < len(expected) < len(raw[index])
        boxes, labels, scores = shown(layer)
        np.testing.assert_allclose(boxes, expected.boxes, atol=1e-4)
        assert labels == expected.labels and np.allclose(scores, expected.scores)
    pages = tune(viewer, layer)
    assert pages.thresholds == thresholds and [len(a) for a in pages.raw] == [len(a) for a in raw]
    pages.apply(Thresholds(0.0, 1.0))  # the sliders let every raw box back
    viewer.dims.set_current_step(0, 0)
    assert len(layer.data) == len(raw[0])


def test_add_prediction_layer_for_a_stack_and_one_image(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((3, 40, 50, 3), np.uint8), rgb=True)
    raw = [
        Annotation([[1, 1, 10, 10], [2, 2, 11, 11]], ["1", "1"], [0.9, 0.8]),
        Annotation(np.zeros((0, 4)), [], np.zeros(0)),
        Annotation([[5, 5, 20, 20]], ["2"], [0.3]),
    ]
    layer = add_prediction_layer(viewer, raw, Thresholds(0.5, 0.5), name="predicted",
                                 metadata={conventions.SOURCE_IMAGES: ["a.png", "b.png", "c.png"]})
    pages = prediction_pages(layer)
    assert isinstance(pages, PredictionPages) and layer.ndim == 3
    assert [len(a) for a in pages.annotations] == [1, 0, 0]
    assert layer.metadata[conventions.CLASSES] == ["1", "2"]
    single = add_prediction_layer(viewer, raw[:1], Thresholds(0.0, 1.0), name="one")
    assert single.ndim == 2 and len(single.data) == 2


def test_accept_as_labels_round_trip(make_napari_viewer, tutorial_dataset):
    viewer = make_napari_viewer()
    viewer.open(tutorial_dataset, plugin=PLUGIN)
    labels = viewer.layers[-1]
    before = layer_annotations(labels)
    raw, predictions = open_predictions(viewer, tutorial_dataset)
    thresholds = Thresholds(0.6, 0.3)
    tune(viewer, predictions).apply(thresholds)
    assert [name for name, _, _ in pair_images(predictions, labels)] == [f"{i:03d}" for i in range(6)]

    added = accept_as_labels(predictions, labels)
    again = accept_as_labels(predictions, labels)
    assert added > 0 and again == 0  # accepting twice duplicates nothing
    after = layer_annotations(labels)
    assert sum(len(a) for a in after) == sum(len(a) for a in before) + added

    viewer.layers.selection = {labels}
    viewer.layers.save(str(tutorial_dataset / "target" / "x.pt"), selected=True, plugin=PLUGIN)
    reopened = [load_annotation(tutorial_dataset / "target" / f"{i:03d}.pt") for i in range(6)]
    for index, annotation in enumerate(reopened):
        kept = apply_thresholds(raw[index], thresholds)
        # every kept prediction is in the labels exactly once, unless a label already covered it
        for box, label in zip(kept.boxes, kept.labels):
            same = [np.allclose(box, b, atol=1e-3) and label == other
                    for b, other in zip(annotation.boxes, annotation.labels)]
            assert sum(same) <= 1
        new = len(annotation) - len(before[index])
        assert 0 <= new <= len(kept)
        np.testing.assert_allclose(annotation.boxes[: len(before[index])], before[index].boxes, atol=1e-4)
    assert sum(len(a) for a in reopened) == sum(len(a) for a in after)


def test_accept_selected_boxes_into_a_paged_label_layer(make_napari_viewer, tutorial_dataset):
    viewer = make_napari_viewer()
    viewer.open(tutorial_dataset, plugin=PLUGIN)
    labels = viewer.layers[-1]
    paged = SliceBoxes(viewer, labels, conventions.annotations_from_shapes(labels.data, labels.features, labels.metadata))
    before = [len(a) for a in paged.annotations]
    raw, predictions = open_predictions(viewer, tutorial_dataset)
    tune(viewer, predictions).apply(Thresholds(0.0, 1.0))
    viewer.dims.set_current_step(0, 2)
    # a false box far from every object (the generator adds them last)
    predictions.selected_data = {len(predictions.data) - 1}
    assert accept_as_labels(predictions, labels, selected_only=True) == 1
    assert [len(a) for a in paged.annotations] == [n + (i == 2) for i, n in enumerate(before)]
    np.testing.assert_allclose(paged.annotations[2].boxes[-1], raw[2].boxes[-1])
    assert len(labels.data) == before[2] + 1  # the layer shows the new box on this image


def test_accept_into_the_empty_box_layer_of_unlabeled_images(make_napari_viewer, tutorial_dataset, tmp_path):
    import shutil

    unlabeled = tmp_path / "unlabeled"
    shutil.copytree(tutorial_dataset / "input", unlabeled)  # images only, like a test/ folder
    viewer = make_napari_viewer()
    viewer.open(unlabeled, plugin=PLUGIN)
    labels = viewer.layers[-1]
    assert len(labels.data) == 0 and labels.ndim == 3
    raw = write_predictions(tutorial_dataset)
    viewer.open(tutorial_dataset / "predictions", plugin=PLUGIN)
    thresholds = Thresholds(0.5, 0.5)
    tune(viewer, viewer.layers[-1]).apply(thresholds)
    added = accept_as_labels(viewer.layers[-1], labels)
    assert added == sum(len(apply_thresholds(a, thresholds)) for a in raw)
    viewer.layers.selection = {labels}
    viewer.layers.save(str(unlabeled / "x.pt"), selected=True, plugin=PLUGIN)
    for index, annotation in enumerate(raw):
        saved = load_annotation(unlabeled / f"{index:03d}.pt")
        assert saved.labels == apply_thresholds(annotation, thresholds).labels and saved.scores is None


def test_a_single_image_predictions_layer_can_be_tuned(make_napari_viewer, tutorial_dataset, tmp_path):
    import shutil

    from napari_faster_rcnn.core.data.annotations import save_annotation

    raw = write_predictions(tutorial_dataset)
    shutil.copy(tutorial_dataset / "input" / "001.png", tmp_path / "one.png")
    save_annotation(tmp_path / "one.pt", raw[1])
    viewer = make_napari_viewer()
    viewer.open(tmp_path / "one.png", plugin=PLUGIN)
    layer = viewer.layers[-1]
    assert layer.ndim == 2 and len(layer.data) == len(raw[1])
    thresholds = Thresholds(0.5, 0.3)
    tune(viewer, layer).apply(thresholds)
    expected = apply_thresholds(raw[1], thresholds)
    boxes, labels, scores = shown(layer)
    np.testing.assert_allclose(boxes, expected.boxes, atol=1e-4)
    assert labels == expected.labels and np.allclose(scores, expected.scores)
    # with predict's thresholds.json beside the file, it opens filtered by them, the raw detections behind
    (tmp_path / THRESHOLDS_FILE).write_text(json.dumps(Thresholds(0.6, 0.2).to_dict()))
    viewer.layers.clear()
    viewer.open(tmp_path / "one.png", plugin=PLUGIN)
    layer = viewer.layers[-1]
    expected = apply_thresholds(raw[1], Thresholds(0.6, 0.2))
    assert 0 < len(expected) < len(raw[1])
    boxes, labels, scores = shown(layer)
    np.testing.assert_allclose(boxes, expected.boxes, atol=1e-4)
    assert labels == expected.labels and np.allclose(scores, expected.scores)
    assert list(layer.metadata[conventions.CLASS_COLORS]) == sorted(set(raw[1].labels))
    assert len(tune(viewer, layer).raw[0]) == len(raw[1])


def test_a_crowded_raw_predictions_file_opens_as_its_thresholds_keep_it(make_napari_viewer, tmp_path):
    """Raw detections of a large image (more boxes than a layer edits at once) with thresholds.json beside
    them: the layer holds what passes, with no picture of every raw box over it."""
    from PIL import Image

    from napari_faster_rcnn.core.data.annotations import save_annotation

    rng = np.random.default_rng(2)
    Image.fromarray(np.zeros((600, 600, 3), np.uint8)).save(tmp_path / "slide.png")
    count = conventions.WINDOW_THRESHOLD + 500
    corners = rng.uniform(0, 580, (count, 2))
    raw = Annotation(np.hstack([corners, corners + rng.uniform(4, 12, (count, 2))]), ["cell"] * count,
                     rng.uniform(0.01, 1.0, count))
    save_annotation(tmp_path / "slide.pt", raw)
    thresholds = Thresholds(0.95, 0.5)
    (tmp_path / THRESHOLDS_FILE).write_text(json.dumps(thresholds.to_dict()))
    viewer = make_napari_viewer()
    viewer.open(tmp_path / "slide.png", plugin=PLUGIN)
    assert [layer.name for layer in viewer.layers] == ["slide", "slide predictions"]
    expected = apply_thresholds(raw, thresholds)
    boxes, labels, scores = shown(viewer.layers[-1])
    order = np.argsort(scores)
    np.testing.assert_allclose(boxes[order], expected.boxes[np.argsort(expected.scores)], atol=1e-4)
    assert len(tune(viewer, viewer.layers[-1]).raw[0]) == count
