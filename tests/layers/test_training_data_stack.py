"""The training data of a stack's box layer (issue 13): one sample per labeled plane, the same as
training from the stack's folder; unlabeled planes never negatives; the export names the stack's file."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_faster_rcnn.core.data.annotations import Annotation, save_annotation
from napari_faster_rcnn.core.data.boxes import boxes_to_rectangles
from napari_faster_rcnn.core.training.samples import folder_samples
from napari_faster_rcnn.core.training.settings import TrainingSettings
from napari_faster_rcnn.layers import conventions, training_data
from napari_faster_rcnn.layers.stack_labeling import mark_planes

PLUGIN = "napari-faster-rcnn"


@pytest.fixture
def stack(tmp_path):
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, np.zeros((5, 32, 40), dtype=np.uint16), photometric="minisblack")
    save_annotation(tmp_path / "movie.pt", Annotation(
        np.array([[1.0, 1, 6, 6], [8, 8, 14, 14], [20, 2, 30, 9]]), ["cell", "debris", "cell"],
        classes=["cell", "debris"], planes=np.array([[0], [0], [3]]), labeled_planes=np.array([[0], [2], [3]])))
    return path


def described(samples):
    return [(s.image, s.plane, s.load().boxes.round(6).tolist(), s.load().labels) for s in samples]


def test_the_labeled_planes_train_as_from_the_folder_with_the_edits_on_screen(make_napari_viewer, stack):
    viewer = make_napari_viewer()
    _, shapes = viewer.open(stack, plugin=PLUGIN)
    data = training_data.layer_training_data(shapes)
    # the same samples as training from the folder: planes 0, 2 (no objects) and 3; 1 and 4 never
    assert described(data.samples) == described(folder_samples(stack.parent))
    assert [s.plane for s in data.samples] == [(0,), (2,), (3,)]
    assert data.unlabeled == ["movie.tif[1]", "movie.tif[4]"] and data.classes == ["cell", "debris"]
    assert data.describe() == "3 labeled planes of 5 of the stack movie.tif"

    viewer.dims.set_current_step(0, 4)  # an edit, unsaved: a box drawn on plane 4, and plane 1 marked
    (rectangle,) = boxes_to_rectangles(np.array([[2.0, 3, 12, 13]]))
    shapes.add_rectangles([np.concatenate([np.full((4, 1), 4.0), rectangle], axis=1)])
    mark_planes(shapes, [(1,)])
    data = training_data.layer_training_data(shapes)
    assert [s.plane for s in data.samples] == [(0,), (1,), (2,), (3,), (4,)] and data.unlabeled == []
    np.testing.assert_allclose(data.samples[4].annotation.boxes, [[2.0, 3, 12, 13]])
    assert len(data.samples[1].annotation) == 0 and data.unsaved
    with pytest.raises(ValueError, match="unsaved boxes; save them"):
        training_data.export_run(TrainingSettings(data=stack.parent), stack.parent / "run.yaml", data)


def test_export_from_a_stack_layer_names_the_stack_and_fit_trains_on_its_labeled_planes(make_napari_viewer, stack,
                                                                                          tmp_path):
    import yaml

    from napari_faster_rcnn._cli import fit
    from napari_faster_rcnn.core.training.transforms import AugmentationConfig

    viewer = make_napari_viewer()
    _, shapes = viewer.open(stack, plugin=PLUGIN)
    data = training_data.layer_training_data(shapes)
    settings = TrainingSettings(
        data=data.samples, output=tmp_path / "run", preset="cpu", model={"min_size": 64, "max_size": 64},
        split_ratios=(1.0, 0.0), validation=False, epochs=1, max_steps=2, batch_size=2, num_workers=0,
        accelerator="cpu", augmentation=AugmentationConfig.none(), warmup_steps=1, seed=0)
    path, command = training_data.export_run(settings, tmp_path / "run" / "run.yaml", data)
    config = yaml.safe_load(path.read_text())
    assert config["data"]["root"] == str(stack.resolve())  # the stack's file, not its folder
    assert config["data"]["classes"] == ["cell", "debris"]
    # the exported data are the layer's samples: its labeled planes 0, 2 (no objects) and 3
    assert described(folder_samples(config["data"]["root"])) == described(data.samples)
    assert fit.run(["--config", str(path)]) == 0
    assert list((tmp_path / "run").rglob("*.ckpt"))


def test_an_unpaged_stack_layer_trains_its_marked_planes_and_planes_with_boxes(make_napari_viewer, tmp_path, stack):
    annotation = Annotation(np.array([[1.0, 1, 6, 6]]), ["cell"], planes=np.array([[4]]),
                            labeled_planes=np.array([[2]]))
    data, kwargs, _ = conventions.stack_shapes_layer_data(
        annotation, 1, name="boxes", image_size=(32, 40),
        metadata={conventions.SOURCE_IMAGES: [str(stack)], conventions.PLANES_SHAPE: [5]})
    viewer = make_napari_viewer()
    layer = viewer.add_shapes(data, **kwargs)
    found = training_data.layer_training_data(layer)
    assert [(s.plane, len(s.annotation)) for s in found.samples] == [((2,), 0), ((4,), 1)]
    assert found.unlabeled == ["movie.tif[0]", "movie.tif[1]", "movie.tif[3]"]


def test_a_stack_without_labeled_planes_says_how_to_label_one(make_napari_viewer, tmp_path):
    path = tmp_path / "empty.tif"
    tifffile.imwrite(path, np.zeros((3, 16, 16), dtype=np.uint16), photometric="minisblack")
    viewer = make_napari_viewer()
    _, shapes = viewer.open(path, plugin=PLUGIN)
    with pytest.raises(ValueError, match="no labeled planes: draw boxes on a plane, or press '0'"):
        training_data.layer_training_data(shapes)
