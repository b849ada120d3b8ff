"""The "Train detector" widget on a stack's box layer (issue 13): each LABELED plane is a sample
(unlabeled planes never negatives), one stack alone with a validation ratio is refused with what to
change, and the preview shows normalized planes."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_faster_rcnn._widgets import train_detector as module
from napari_faster_rcnn._widgets._train_form import LAYER
from napari_faster_rcnn.core.data.annotations import Annotation, save_annotation
from napari_faster_rcnn.core.model.checkpoints import load_checkpoint
from napari_faster_rcnn.core.training import run as training_run
from napari_faster_rcnn.layers.stack_labeling import mark_planes
from napari_faster_rcnn.layers.training_data import PREVIEW_NAME
from tests._widgets.test_train_detector import make_widget, wait_for_run

PLUGIN = "napari-faster-rcnn"
BOXES = np.array([[8.0, 8, 24, 24], [36, 30, 56, 50]])


@pytest.fixture
def stack(tmp_path):
    """A 16-bit (6, 64, 64) time-lapse of a 12-bit camera: dim background, two bright squares on
    plane 1 (its file says so); plane 4 is marked "no objects" in the viewer (unsaved)."""
    rng = np.random.default_rng(0)
    planes = rng.integers(100, 300, (6, 64, 64)).astype(np.uint16)
    for x0, y0, x1, y1 in BOXES.astype(int):
        planes[1, y0:y1, x0:x1] = 3000
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, planes)
    save_annotation(tmp_path / "movie.pt", Annotation(BOXES, ["cell", "cell"], classes=["cell"],
                                                      planes=np.array([[1], [1]])))
    return path


@pytest.fixture
def errors(monkeypatch):
    shown: list[str] = []
    monkeypatch.setattr(module, "show_error", shown.append)
    return shown


def open_stack(viewer, path):
    _, shapes = viewer.open(path, plugin=PLUGIN)
    viewer.dims.set_current_step(0, 4)
    mark_planes(shapes, [(4,)])  # "no objects here" on plane 4, not saved
    return shapes


def test_training_from_a_stack_layer_trains_on_its_labeled_planes_only(make_napari_viewer, qtbot, stack, tmp_path,
                                                                       errors, monkeypatch):
    seen = {}

    def recording_split(data):
        seen["train"] = [(s.image, s.plane, len(s.load())) for s in data.train_dataset.samples]
        seen["validation"] = list(data.val_dataset.samples) if data.val_dataset is not None else []
        return split(data)

    split = training_run.data_split
    monkeypatch.setattr(training_run, "data_split", recording_split)
    viewer = make_napari_viewer()
    shapes = open_stack(viewer, stack)
    widget = make_widget(viewer, tmp_path / "run", source=LAYER, max_steps=2)
    widget.form.layer.set_layer(shapes)
    assert widget.form.layer.layer() is shapes
    for spin, ratio in zip(widget.form.ratios, (1.0, 0.0, 0.0)):
        spin.setValue(ratio)
    widget.form.training_fields.set_values({"validation": False})  # nothing to validate on: off
    assert widget.form.training_fields.values()["validation"] is False
    worker = widget.train()
    assert worker is not None, widget.status.text()
    assert widget.status.text().startswith("starting: 2 labeled planes of 6 of the stack movie.tif")
    wait_for_run(qtbot, widget)

    assert errors == []
    # exactly the labeled planes: plane 1 with its two boxes, plane 4 with none; 0, 2, 3, 5 never
    assert seen["train"] == [(stack, (1,), 2), (stack, (4,), 0)]
    assert seen["validation"] == []
    checkpoint = widget.result.last_checkpoint
    assert checkpoint is not None and checkpoint.is_file()
    assert load_checkpoint(checkpoint).classes == ["cell"]
    assert widget.checkpoint.text() == str(widget.result.best_checkpoint or checkpoint)


def test_one_stack_with_a_validation_ratio_is_refused_with_what_to_change(make_napari_viewer, stack, tmp_path,
                                                                          errors):
    viewer = make_napari_viewer()
    open_stack(viewer, stack)
    widget = make_widget(viewer, tmp_path / "run", source=LAYER)  # ratios 0.67, 0.33, 0
    assert widget.train() is None
    assert widget.job is None and not (tmp_path / "run").exists()  # no run started, no folder made
    message = widget.status.text()
    assert message.startswith("not trained: cannot split 2 samples from 1 image file")
    assert "set the validation and test ratios to 0" in message and "separate validation folder" in message
    assert "turn off 'validation' in the training options" in message
    assert len(errors) == 1


def test_the_preview_of_a_stack_shows_its_labeled_planes_normalized(make_napari_viewer, qtbot, stack, tmp_path):
    viewer = make_napari_viewer()
    open_stack(viewer, stack)
    widget = make_widget(viewer, tmp_path / "run", source=LAYER)
    for spin, ratio in zip(widget.form.ratios, (1.0, 0.0, 0.0)):
        spin.setValue(ratio)
    fields = widget.form.augmentation_fields
    fields.set_values({name: 0.0 for name, editor in fields.editors.items() if editor.spec.kind == "float"})
    fields.set_values({"scale_range": (1.0, 1.0)})
    widget.preview()
    qtbot.waitUntil(lambda: f"{PREVIEW_NAME} boxes" in viewer.layers, timeout=30_000)

    assert widget.last_preview.names == ["movie.tif[1]", "movie.tif[4]"]
    images = viewer.layers[PREVIEW_NAME].data
    assert images.shape == (2, 64, 64, 3)
    # normalized by the plane's percentiles: the squares bright, not 3000 / 65535 of white
    assert images[0, 10:20, 10:20].min() >= 250
    assert images[0].max() == 255 and images[1].max() >= 200
    boxes = viewer.layers[f"{PREVIEW_NAME} boxes"]
    assert sorted(int(v[0, 0]) for v in boxes.data) == [0, 0]  # both boxes on plane 1's picture
