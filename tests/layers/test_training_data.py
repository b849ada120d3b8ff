"""The training data of a box layer (labeled images, unsaved edits), the export of a run and the
augmentation preview (_training_data)."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from napari_faster_rcnn.core.data.annotations import Annotation, load_annotation, save_annotation
from napari_faster_rcnn.core.data.boxes import boxes_to_rectangles
from napari_faster_rcnn.core.data.images import read_image
from napari_faster_rcnn.core.data.synthetic import SHAPE_CLASSES, write_synthetic_dataset
from napari_faster_rcnn.core.training.settings import TrainingSettings
from napari_faster_rcnn.core.training.transforms import AugmentationConfig
from napari_faster_rcnn.layers import conventions, training_data

PLUGIN = "napari-faster-rcnn"


def boxes_by_image(data: training_data.LayerTrainingData) -> dict[str, Annotation]:
    return {sample.image.name: sample.annotation for sample in data.samples}


def test_a_layer_trains_its_labeled_images_and_leaves_out_the_unlabeled(make_napari_viewer, tutorial_dataset):
    (tutorial_dataset / "target" / "004.pt").unlink()  # not labeled yet
    save_annotation(tutorial_dataset / "target" / "005.pt", Annotation())  # labeled: no objects
    viewer = make_napari_viewer()
    viewer.open(tutorial_dataset, plugin=PLUGIN)
    data = training_data.layer_training_data(viewer.layers["shapes boxes"])

    assert data.unlabeled == ["004.png"] and data.unsaved == 0
    assert data.dataset_root == tutorial_dataset and data.classes == list(SHAPE_CLASSES)
    found = boxes_by_image(data)
    assert sorted(found) == ["000.png", "001.png", "002.png", "003.png", "005.png"]
    assert len(found["005.png"]) == 0
    for name in ("000.png", "003.png"):
        truth = load_annotation(tutorial_dataset / "target" / name.replace(".png", ".pt"))
        np.testing.assert_allclose(found[name].boxes, truth.boxes, atol=1e-6)
        assert found[name].labels == truth.labels
    assert all(sample.image == tutorial_dataset / "input" / sample.image.name for sample in data.samples)
    assert "5 labeled images" in data.describe() and "1 without boxes or an annotation file" in data.describe()


def test_unsaved_edits_of_the_labeling_session_train_as_shown(make_napari_viewer, tutorial_dataset):
    from napari_faster_rcnn.layers.labeling import labeling_session

    (tutorial_dataset / "target" / "004.pt").unlink()
    viewer = make_napari_viewer()
    viewer.open(tutorial_dataset, plugin=PLUGIN)
    session = labeling_session(viewer, viewer.layers["shapes boxes"], autosave=False)
    session.go_to(0)
    session.layer.data = []  # every box of image 0 deleted: labeled as having no objects, not saved
    session.go_to(4)
    session.layer.add_rectangles(boxes_to_rectangles([[5.0, 6.0, 30.0, 40.0]], image_index=4))

    data = training_data.layer_training_data(session.layer)
    found = boxes_by_image(data)
    assert len(found["000.png"]) == 0 and load_annotation(tutorial_dataset / "target" / "000.pt").boxes.size
    np.testing.assert_allclose(found["004.png"].boxes, [[5.0, 6.0, 30.0, 40.0]], atol=1e-6)
    assert data.unlabeled == [] and data.unsaved == 2
    with pytest.raises(ValueError, match="2 image\\(s\\) of 'shapes boxes' have unsaved boxes"):
        training_data.export_run(TrainingSettings(data=data.samples), session.layer.metadata[conventions.DATASET_ROOT] + "/run.yaml", data)


def test_a_layer_without_image_files_or_labels_cannot_train(make_napari_viewer):
    viewer = make_napari_viewer()
    data, kwargs, _ = conventions.shapes_layer_data([Annotation([[1, 1, 5, 5]], ["cat"]), Annotation()], stacked=True,
                                          name="drawn")
    layer = viewer.add_shapes(data, **kwargs)
    with pytest.raises(ValueError, match="'drawn': 1 labeled image\\(s\\) have no image file"):
        training_data.layer_training_data(layer)
    empty, kwargs, _ = conventions.shapes_layer_data([Annotation()], stacked=False, name="empty")
    with pytest.raises(ValueError, match="'empty' has no labeled images"):
        training_data.layer_training_data(viewer.add_shapes(empty, **kwargs))


def test_export_writes_the_config_of_a_folder_and_refuses_data_only_in_memory(tmp_path, tutorial_dataset):
    settings = TrainingSettings(data=tutorial_dataset, output=tmp_path / "run", preset="cpu", epochs=3)
    path, command = training_data.export_run(settings, tmp_path / "run" / "run.yaml")
    assert command == f"napari-faster-rcnn fit --config {path.resolve()}"
    config = yaml.safe_load(path.read_text())
    assert config["data"]["root"] == str(tutorial_dataset.resolve()) and config["trainer"]["max_epochs"] == 3
    memory = training_data.LayerTrainingData("drawn", [(tutorial_dataset / "input" / "000.png", Annotation())], ["a"])
    with pytest.raises(ValueError, match="'drawn' are not a dataset folder on disk"):
        training_data.export_run(TrainingSettings(data=memory.samples), tmp_path / "other.yaml", memory)
    assert not (tmp_path / "other.yaml").exists()


def test_the_preview_shows_training_images_through_the_training_transform(tmp_path, side_by_side_dataset):
    # no augmentation: the images and boxes as the dataset gives them, padded to one stack
    preview = training_data.augmentation_preview(side_by_side_dataset, AugmentationConfig.none())
    assert preview.names == ["a.png", "b.jpg"] and preview.images.shape == (2, 50, 60, 3)
    assert preview.sizes == [(40, 60), (50, 30)]
    np.testing.assert_array_equal(preview.images[0, :40, :60], read_image(side_by_side_dataset / "a.png"))
    assert not preview.images[0, 40:].any()  # padding
    np.testing.assert_allclose(preview.annotations[1].boxes, [[0, 0, 29.5, 49.5]], atol=1e-4)
    assert preview.annotations[0].labels == ["cat", "dog"] and preview.classes == ["cat", "dog"]

    # a split: only the training part, flipped as training would flip it
    data = write_synthetic_dataset(tmp_path / "shapes", 10, seed=1, height=48, width=48)
    flip = AugmentationConfig(horizontal_flip_probability=1.0, scale_probability=0.0,
                              brightness_contrast_probability=0.0)
    preview = training_data.augmentation_preview(data, flip, ratios=(0.8, 0.2, 0.0), split_seed=0, count=4)
    from napari_faster_rcnn.core.training.samples import folder_samples
    from napari_faster_rcnn.core.training.splits import split_samples

    train = [sample.image.name for sample in split_samples(folder_samples(data), (0.8, 0.2, 0.0), 0)[0]]
    assert len(preview.names) == 4 and set(preview.names) <= set(train)
    np.testing.assert_array_equal(preview.images[0], read_image(data / "input" / preview.names[0])[:, ::-1])


def test_the_preview_shows_16_bit_images_normalized_as_training_sees_them(tmp_path):
    from PIL import Image

    (tmp_path / "input").mkdir()
    (tmp_path / "target").mkdir()
    pixels = np.full((32, 40), 100, np.uint16)
    pixels[8:24, 8:24] = 2100  # a 12-bit signal: 0.03 of 65535
    Image.fromarray(pixels).save(tmp_path / "input" / "cell.png")
    save_annotation(tmp_path / "target" / "cell.pt", Annotation([[8, 8, 24, 24]], ["cell"]))
    shown = training_data.augmentation_preview(tmp_path, AugmentationConfig.none()).images[0]
    assert shown[12:20, 12:20].min() == 255 and shown[:4, :4].max() == 0  # percentiles: black to white
    old = training_data.augmentation_preview(tmp_path, AugmentationConfig.none(), normalization="none").images[0]
    assert old.max() <= 9  # what /65535 showed: nearly black
