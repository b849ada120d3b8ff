"""A stack's predictions file opened beside its stack is tuned plane by plane (issue 13)."""

from __future__ import annotations

import numpy as np
import tifffile

from napari_faster_rcnn.core.data.annotations import Annotation, save_annotation
from napari_faster_rcnn.core.prediction.stacks import join_planes
from napari_faster_rcnn.core.prediction.thresholds import Thresholds, apply_thresholds
from napari_faster_rcnn.layers import conventions, prediction_labels, predictions

PLUGIN = "napari-faster-rcnn"


def test_tune_a_stacks_predictions_read_from_its_file(make_napari_viewer, tmp_path):
    tifffile.imwrite(tmp_path / "movie.tif", np.zeros((4, 32, 32), np.uint8), photometric="minisblack")
    rng = np.random.default_rng(1)
    per_plane = []
    for _ in range(3):
        corners = rng.uniform(0, 20, (6, 2))
        per_plane.append(Annotation(np.concatenate([corners, corners + rng.uniform(4, 10, (6, 2))], axis=1),
                                    list(rng.choice(["a", "b"], 6)), rng.uniform(0, 1, 6)))
    planes = [(0,), (1,), (3,)]
    save_annotation(tmp_path / "movie.pt", join_planes(per_plane, planes), labeled_planes=False)
    viewer = make_napari_viewer()
    _, layer = viewer.open(tmp_path / "movie.tif", plugin=PLUGIN)
    assert conventions.is_predictions(layer) and len(layer.data) == 6  # read paged: the plane shown
    assert len(predictions.stack_layer_annotation(layer)) == 18
    pages = predictions.tune(viewer, layer)
    assert pages.planes == planes and predictions.prediction_pages(layer) is pages
    chosen = Thresholds(0.5, 0.3)
    pages.apply(chosen)
    shown = predictions.stack_layer_annotation(layer)
    for plane, raw in zip(planes, per_plane):
        kept = apply_thresholds(raw, chosen)  # NMS within the plane, never across planes
        on = shown.on_plane(plane)
        np.testing.assert_allclose(sorted(on.boxes.tolist()), sorted(kept.boxes.tolist()), atol=1e-4)
    viewer.dims.set_current_step(0, 1)
    assert pages.counts() == {"kept": len(apply_thresholds(per_plane[1], chosen)), "raw": 6,
                              "kept_total": len(shown), "raw_total": 18}


def test_the_planes_to_predict_of_a_time_and_z_stack(make_napari_viewer, tmp_path):
    from napari_faster_rcnn.layers.prediction_targets import layer_target

    path = tmp_path / "tz.tif"
    pixels = np.random.default_rng(0).integers(0, 255, (3, 2, 16, 16), dtype=np.uint8)
    tifffile.imwrite(path, pixels, metadata={"axes": "TZYX"})
    viewer = make_napari_viewer()
    image, _ = viewer.open(path, plugin=PLUGIN)
    viewer.dims.current_step = (2, 1, 0, 0)
    shown = layer_target(viewer, image, whole_stack=False)
    assert shown.planes == [(2, 1)] and shown.plane_dims == 2 and shown.sources == [str(path)]
    assert np.array_equal(shown.images[0].read()[:, :, 0], pixels[2, 1])  # the plane shown, read from its file
    assert layer_target(viewer, image, whole_stack=True).planes == [(t, z) for t in range(3) for z in range(2)]
    assert layer_target(viewer, image, whole_stack=False, planes="1:").planes == [(1, 0), (1, 1), (2, 0), (2, 1)]
    import pytest

    with pytest.raises(ValueError, match="no plane of"):
        layer_target(viewer, image, whole_stack=False, planes="5")


def test_accept_the_selected_predictions_of_a_stack_labels_their_planes_only(make_napari_viewer, tmp_path):
    from napari_faster_rcnn.layers.stack_labeling import labeled_planes

    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, np.zeros((5, 32, 32), np.uint8), photometric="minisblack")
    viewer = make_napari_viewer()
    _, labels = viewer.open(path, plugin=PLUGIN)
    raw = [Annotation([[1, 1, 9, 9], [12, 12, 20, 22]], ["a", "b"], [0.9, 0.8]),
           Annotation([[2, 3, 10, 12]], ["a"], [0.7])]
    layer = predictions.add_stack_prediction_layer(
        viewer, raw, [(1,), (4,)], 1, Thresholds(0.5, 0.5), name="movie predictions", classes=["a", "b"],
        image_size=(32, 32), metadata={conventions.SOURCE_IMAGES: [str(path)]})
    assert conventions.is_predictions(layer) and len(layer.data) == 3
    layer.selected_data = {2}  # the box on plane 4
    assert prediction_labels.accept_as_labels(layer, labels, selected_only=True) == 1
    accepted = predictions.stack_layer_annotation(labels)  # every plane, paged or not
    assert accepted.planes.tolist() == [[4]] and accepted.labels == ["a"]
    np.testing.assert_allclose(accepted.boxes, [[2, 3, 10, 12]], atol=1e-4)
    assert labeled_planes(labels) == {(4,)}  # plane 1 was not accepted on
    assert prediction_labels.accept_as_labels(layer, labels) == 2  # all: plane 1's two boxes; plane 4's is labeled
    assert labeled_planes(labels) == {(1,), (4,)}
    viewer.layers.selection = {labels}
    viewer.layers.save(str(tmp_path / "movie.pt"), selected=True, plugin=PLUGIN)
    from napari_faster_rcnn.core.data.annotations import load_annotation

    saved = load_annotation(tmp_path / "movie.pt")
    assert sorted(saved.planes[:, 0].tolist()) == [1, 1, 4] and saved.labeled_planes.tolist() == [[1], [4]]


def test_a_stacks_raw_predictions_open_as_the_thresholds_beside_them_keep_them(make_napari_viewer, tmp_path):
    import json

    from napari_faster_rcnn.core.data.annotations import THRESHOLDS_FILE

    tifffile.imwrite(tmp_path / "movie.tif", np.zeros((3, 40, 40), np.uint8), photometric="minisblack")
    rng = np.random.default_rng(4)
    per_plane = []
    for _ in range(2):
        corners = rng.uniform(0, 25, (30, 2))
        per_plane.append(Annotation(np.concatenate([corners, corners + rng.uniform(6, 14, (30, 2))], axis=1),
                                    ["cell"] * 30, rng.uniform(0, 1, 30)))
    planes = [(0,), (2,)]
    save_annotation(tmp_path / "movie.pt", join_planes(per_plane, planes), labeled_planes=False)
    chosen = Thresholds(0.6, 0.4)
    (tmp_path / THRESHOLDS_FILE).write_text(json.dumps(chosen.to_dict()))
    viewer = make_napari_viewer()
    _, layer = viewer.open(tmp_path / "movie.tif", plugin=PLUGIN)
    shown = predictions.stack_layer_annotation(layer)
    for plane, raw in zip(planes, per_plane):
        kept = apply_thresholds(raw, chosen)
        assert 0 < len(kept) < len(raw)
        np.testing.assert_allclose(sorted(shown.on_plane(plane).boxes.tolist()), sorted(kept.boxes.tolist()),
                                   atol=1e-4)
    pages = predictions.tune(viewer, layer)
    assert pages.thresholds == chosen and [len(a) for a in pages.raw] == [30, 30]
