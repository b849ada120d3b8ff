"""The "Continue training" button of "Train detector": fine-tune the last model on the current labels."""

from __future__ import annotations

import numpy as np

from napari_faster_rcnn.core.data.annotations import Annotation, save_annotation
from napari_faster_rcnn.core.data.synthetic import write_synthetic_dataset
from napari_faster_rcnn.core.model.checkpoints import load_checkpoint
from tests._widgets.test_train_detector import make_widget, wait_for_run


def test_continue_training_fine_tunes_the_last_model_on_the_new_labels(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    first_data = write_synthetic_dataset(tmp_path / "first", 6, seed=3, height=64, width=64)
    widget = make_widget(viewer, tmp_path / "run1", folder=first_data, max_steps=1)
    assert not widget.finetune_button.isEnabled()  # no model yet
    widget.train()
    wait_for_run(qtbot, widget)
    first = widget.result
    shown = widget.checkpoint.text()
    assert shown and widget.finetune_button.isEnabled()
    trained = load_checkpoint(shown)

    # new labels: another folder; the run goes to a new folder, starting from the model shown
    new_data = write_synthetic_dataset(tmp_path / "second", 6, seed=8, height=64, width=64)
    widget.form.folder.setText(str(new_data))
    widget.form.output.setText(str(tmp_path / "run2"))
    widget.form.auto_size.setChecked(True)  # the model's sizes win: not fitted again
    widget.finetune_button.click()
    assert widget.status.text().startswith(f"starting: fine-tuning {shown.split('/')[-1]}")
    wait_for_run(qtbot, widget)
    second = widget.result
    assert second.output != first.output and second.steps == 1  # a fresh run: step 1 of its own
    continued = load_checkpoint(second.last_checkpoint)
    assert continued.config.weights == str(trained.path.resolve())
    assert continued.classes == trained.classes and continued.config.anchors() == trained.config.anchors()
    assert continued.global_step == 1


def test_continue_training_refuses_labels_of_a_new_class(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    from napari_faster_rcnn._widgets import train_detector as module

    shown_errors: list[str] = []
    monkeypatch.setattr(module, "show_error", shown_errors.append)
    viewer = make_napari_viewer()
    data = write_synthetic_dataset(tmp_path / "first", 6, seed=3, height=64, width=64)
    widget = make_widget(viewer, tmp_path / "run1", folder=data, max_steps=1)
    widget.train()
    wait_for_run(qtbot, widget)
    save_annotation(data / "target" / "000.pt", Annotation(np.array([[2, 2, 30, 30]]), ["star"], classes=["star"]))
    assert widget.continue_training() is None
    assert "not continued" in widget.status.text() and "star" in widget.status.text()
    assert shown_errors and "star" in shown_errors[0]
