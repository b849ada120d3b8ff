"""The "Train detector" widget in a real viewer: a few steps of the cpu preset at 64 px from a box
layer and from a folder (progress bar, plot, checkpoint), stop and continue, errors as
notifications, closing the viewer mid-run, the event loop's latency while training, the
augmentation preview and the exported command."""

from __future__ import annotations

import contextlib
import io
import threading
import time

import numpy as np
import pytest
from qtpy.QtCore import QTimer

from napari_faster_rcnn._widgets import train_detector as module
from napari_faster_rcnn._widgets._train_form import FOLDER, LAYER
from napari_faster_rcnn._widgets.train_detector import TrainDetectorWidget
from napari_faster_rcnn.core.data.annotations import load_annotation
from napari_faster_rcnn.core.data.images import read_image
from napari_faster_rcnn.core.data.synthetic import SHAPE_CLASSES, write_synthetic_dataset
from napari_faster_rcnn.core.model.checkpoints import load_checkpoint
from napari_faster_rcnn.layers.training_data import PREVIEW_NAME

PLUGIN = "napari-faster-rcnn"
RUN_TIMEOUT_MS = 120_000


@pytest.fixture
def shapes(tmp_path):
    """Six synthetic 64 px images: 4 train, 2 validate at the split the tests set."""
    return write_synthetic_dataset(tmp_path / "shapes", 6, seed=3, height=64, width=64)


@pytest.fixture
def errors(monkeypatch):
    """The messages the widget shows with napari's show_error."""
    shown: list[str] = []
    monkeypatch.setattr(module, "show_error", shown.append)
    return shown


@pytest.fixture
def warnings_shown(monkeypatch):
    """The messages the widget shows with napari's show_warning."""
    shown: list[str] = []
    monkeypatch.setattr(module, "show_warning", shown.append)
    return shown


def make_widget(viewer, output, source=FOLDER, folder=None, epochs=1, max_steps=-1,
                auto=False) -> TrainDetectorWidget:
    """The widget set for a tiny run: the cpu preset at 64 px (sizes not fitted to the data unless
    ``auto``), batches of 2, no DataLoader workers."""
    widget = TrainDetectorWidget(viewer)
    viewer.window.add_dock_widget(widget)
    form = widget.form
    form.source.setCurrentText(source)
    if folder is not None:
        form.folder.setText(str(folder))
    form.preset.setCurrentText("cpu")
    form.auto_size.setChecked(auto)
    form.min_size.setValue(64)
    form.max_size.setValue(64)
    form.epochs.setValue(epochs)
    form.batch_size.setValue(2)
    form.optimizer.setCurrentText("adamw")
    form.learning_rate.setText("0.001")
    for spin, ratio in zip(form.ratios, (0.67, 0.33, 0.0)):
        spin.setValue(ratio)
    form.device.setCurrentIndex(form.device.findData("cpu"))
    form.training_fields.set_values({"num_workers": 0, "max_steps": max_steps, "warmup_steps": 2})
    form.output.setText(str(output))
    return widget


def wait_for_run(qtbot, widget) -> None:
    qtbot.waitUntil(lambda: widget.job is not None and widget.job.done and widget.train_button.isEnabled(),
                    timeout=RUN_TIMEOUT_MS)


def test_training_from_a_layer_fills_the_plot_and_the_progress_bar_and_leaves_a_checkpoint(
        make_napari_viewer, qtbot, shapes, tmp_path, errors):
    viewer = make_napari_viewer()
    viewer.open(shapes, plugin=PLUGIN)
    widget = make_widget(viewer, tmp_path / "run", source=LAYER)
    assert widget.form.layer.layer() is viewer.layers["shapes boxes"]
    worker = widget.train()
    bar_values, descriptions = [], []
    worker.pbar.events.value.connect(lambda event: bar_values.append(event.value))
    worker.pbar.events.description.connect(lambda event: descriptions.append(event.value))
    wait_for_run(qtbot, widget)

    assert errors == []
    result = widget.result
    assert (result.steps, result.stopped) == (2, False)  # 4 training images, batches of 2, one epoch
    progress = widget.progress
    assert progress.loss_steps == [1, 2] and len(progress.voc_map) == len(progress.coco_map) == 1
    # the plot got every loss and the mAP of the validation, and was drawn (in its thread) and shown
    assert widget.plot.wait()
    np.testing.assert_array_equal(widget.plot.loss_line.get_xdata(), [1, 2])
    np.testing.assert_allclose(widget.plot.loss_line.get_ydata(), progress.losses)
    np.testing.assert_allclose(widget.plot.voc_line.get_ydata(), [result.metrics["val/voc_map"]])
    np.testing.assert_allclose(widget.plot.coco_line.get_ydata(), [result.metrics["val/coco_map"]])
    assert widget.plot.view.renders >= 2
    qtbot.waitUntil(lambda: widget.plot.shown == widget.plot.view.renders, timeout=5000)
    # the activity panel's bar: the total from the start event, the steps done, epoch and step in its text
    assert worker.pbar.total == 2 and bar_values[-1] == 2 and worker.pbar.n == 2
    assert "epoch 1 of 1, step 2 of 2" in descriptions[-1]
    # the best checkpoint loads, and its path is shown
    path = tmp_path / "run" / "checkpoints" / "best.ckpt"
    assert widget.checkpoint.text() == str(path)
    loaded = load_checkpoint(path)
    assert loaded.classes == list(SHAPE_CLASSES) and loaded.global_step == 2
    assert loaded.config.min_size == 64 and loaded.config.backbone == "resnet18_slim"
    assert widget.status.text().startswith("finished after 2 steps")
    assert widget.form.output.text() != str(tmp_path / "run")  # Train again starts a new folder
    assert widget.continue_button.isEnabled()


def test_training_from_a_folder_keeps_the_event_loop_serving(make_napari_viewer, qtbot, shapes, tmp_path, errors,
                                                           monkeypatch):
    import lightning.pytorch as pl

    from napari_faster_rcnn.core.training import module as training_module
    from napari_faster_rcnn.core.training.data_module import DetectionDataModule

    # every heavy part of a run, from the click on Train to the end: where (which thread) each one ran
    threads: dict[str, set[bool]] = {}
    step_times: list[float] = []

    def watch(owner, name: str, label: str):
        original = getattr(owner, name)

        def watched(*args, **kwargs):
            threads.setdefault(label, set()).add(threading.current_thread() is threading.main_thread())
            if label == "a training step":
                step_times.append(time.perf_counter())
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, watched)

    watch(training_module, "build_model", "building the model")
    watch(DetectionDataModule, "setup", "preparing the data")  # (samples are read in its loaders' processes)
    watch(training_module.DetectorModule, "training_step", "a training step")
    watch(training_module.DetectorModule, "validation_step", "a validation step")
    watch(pl.Trainer, "save_checkpoint", "saving a checkpoint")

    viewer = make_napari_viewer()
    widget = make_widget(viewer, tmp_path / "run", folder=shapes, epochs=6)
    qtbot.waitExposed(widget)  # as a person sees it before clicking Train
    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    worker = widget.train()
    wait_for_run(qtbot, widget)
    timer.stop()

    assert errors == [] and widget.result.steps == 12 and len(widget.progress.voc_map) == 6
    assert load_checkpoint(widget.result.last_checkpoint).global_step == 12
    # the run's work happened, all of it on the worker's thread: the viewer's thread only shows progress (how
    # long the event loop waits at most is measured in benchmarks/bench_train_widget.py)
    assert sorted(threads) == sorted(["building the model", "preparing the data", "a training step",
                                      "a validation step", "saving a checkpoint"])
    on_main = [label for label, where in threads.items() if True in where]
    assert on_main == [], f"ran on the viewer's thread: {on_main}"
    # and the viewer's event loop went on meanwhile: it served the timer (every 10 ms) between the first and
    # the last training step (none would come if the viewer's thread waited for the run)
    assert worker is not None and len(step_times) == 12
    during = [t for t in ticks if step_times[0] < t < step_times[-1]]
    assert len(during) >= 5, f"the event loop served the timer {len(during)} times during the steps"


def test_stop_ends_after_the_step_with_a_checkpoint_and_continue_resumes(make_napari_viewer, qtbot, shapes, tmp_path,
                                                                        errors):
    viewer = make_napari_viewer()
    widget = make_widget(viewer, tmp_path / "run", folder=shapes, epochs=50)
    worker = widget.train()
    asked = []  # the steps done when Stop was pressed

    def press_stop(event):
        if event.kind == "step" and not asked:
            asked.append(widget.progress.step)
            widget.stop()

    worker.yielded.connect(press_stop)
    wait_for_run(qtbot, widget)

    result = widget.result
    # the run ends after the step in progress when the request reaches the training thread, which may be
    # a step ahead of what the viewer has been told (events in flight)
    assert result.stopped and asked[0] <= result.steps <= asked[0] + 2 and result.steps < 100
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert load_checkpoint(last).global_step == result.steps
    assert f"stopped at step {result.steps}" in widget.status.text() and str(last) in widget.status.text()

    widget.form.training_fields.set_values({"max_steps": result.steps + 2})
    widget.continue_last_run()
    assert widget.form.resume.text() == str(last) and widget.form.output.text() == str(tmp_path / "run")
    wait_for_run(qtbot, widget)
    assert errors == []
    assert widget.progress.loss_steps == [result.steps + 1, result.steps + 2]
    assert load_checkpoint(last).global_step == result.steps + 2
    assert widget.form.resume.text() == ""


def test_a_corrupt_image_is_a_notification_naming_it_and_the_widget_trains_again(
        make_napari_viewer, qtbot, shapes, tmp_path, errors):
    (shapes / "input" / "003.png").write_bytes(b"not an image")
    viewer = make_napari_viewer()
    widget = make_widget(viewer, tmp_path / "run", folder=shapes)
    widget.train()
    wait_for_run(qtbot, widget)
    assert len(errors) == 1 and "003.png" in errors[0]
    assert "003.png" in widget.status.text() and widget.result is None
    assert widget.train_button.isEnabled() and widget.form.isEnabled()

    write_synthetic_dataset(shapes.parent / "fixed", 6, seed=3, height=64, width=64)
    (shapes / "input" / "003.png").write_bytes((shapes.parent / "fixed" / "input" / "003.png").read_bytes())
    widget.form.training_fields.set_values({"max_steps": 1, "validation": False})
    widget.train()
    wait_for_run(qtbot, widget)
    assert len(errors) == 1 and widget.result.steps == 1


def test_a_bad_setting_is_refused_before_training_naming_the_field(make_napari_viewer, shapes, tmp_path, errors):
    viewer = make_napari_viewer()
    widget = make_widget(viewer, tmp_path / "run", folder=shapes)
    widget.form.model_fields.editors["rpn_nms_thresh"].widget.setText("2")
    assert widget.train() is None and widget.job is None
    assert len(errors) == 1 and "rpn_nms_thresh" in errors[0]
    widget.form.model_fields.editors["rpn_nms_thresh"].widget.setText("0.7")
    widget.form.model_fields.editors["anchor_sizes"].widget.setText("[[16, 32")
    assert widget.train() is None and "anchor_sizes" in errors[-1]


def test_running_out_of_memory_is_a_notification_with_what_to_change(make_napari_viewer, qtbot, shapes, tmp_path,
                                                                    errors, monkeypatch):
    import torch

    def out_of_memory(settings, stop=None):
        yield from ()
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    # a RuntimeError, which superqt's worker would take for a deleted worker and swallow without "finished"
    monkeypatch.setattr("napari_faster_rcnn.core.training.run.iter_training", out_of_memory)
    viewer = make_napari_viewer()
    widget = make_widget(viewer, tmp_path / "run", folder=shapes)
    widget.train()
    wait_for_run(qtbot, widget)
    assert len(errors) == 1 and "out of memory" in errors[0] and "batch size" in errors[0]
    assert widget.train_button.isEnabled()


def test_closing_the_viewer_during_training_stops_the_run_with_a_checkpoint(make_napari_viewer, qtbot, shapes,
                                                                           tmp_path):
    viewer = make_napari_viewer()
    widget = make_widget(viewer, tmp_path / "run", folder=shapes, epochs=50)
    widget.train()
    qtbot.waitUntil(lambda: widget.progress.step >= 1, timeout=RUN_TIMEOUT_MS)
    job = widget.job
    viewer.close()
    assert job.done  # closing waited for the step in progress and the checkpoint
    names = [thread.name for thread in threading.enumerate()]
    assert "napari-faster-rcnn-training" not in names
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt").global_step < 100


def test_preview_shows_training_images_augmented_as_in_training(make_napari_viewer, qtbot, shapes, tmp_path):
    viewer = make_napari_viewer()
    viewer.open(shapes, plugin=PLUGIN)
    widget = make_widget(viewer, tmp_path / "run", source=LAYER)
    fields = widget.form.augmentation_fields
    fields.set_values({name: 0.0 for name, editor in fields.editors.items() if editor.spec.kind == "float"})
    fields.set_values({"horizontal_flip_probability": 1.0, "scale_range": (1.0, 1.0)})
    worker = widget.preview()
    qtbot.waitUntil(lambda: f"{PREVIEW_NAME} boxes" in viewer.layers, timeout=30_000)
    del worker

    images, boxes = viewer.layers[PREVIEW_NAME], viewer.layers[f"{PREVIEW_NAME} boxes"]
    assert images.data.shape == (4, 64, 64, 3)  # the 4 images of the training part only
    shown = widget.last_preview.names
    assert set(shown) <= {f"{i:03d}.png" for i in range(6)} and len(set(shown)) == 4
    source = viewer.layers["shapes boxes"]
    colors = source.metadata["class_colors"]
    for index, name in enumerate(shown):
        original = read_image(shapes / "input" / name)
        np.testing.assert_array_equal(images.data[index], original[:, ::-1])  # flipped left-right
        truth = load_annotation(shapes / "target" / name.replace(".png", ".pt"))
        mine = [i for i, vertices in enumerate(boxes.data) if vertices[0, 0] == index]
        got = np.array([[v[:, 2].min() + 0.5, v[:, 1].min() + 0.5, v[:, 2].max() + 0.5, v[:, 1].max() + 0.5]
                        for v in (boxes.data[i] for i in mine)])
        flipped = np.column_stack([64 - truth.boxes[:, 2], truth.boxes[:, 1], 64 - truth.boxes[:, 0],
                                   truth.boxes[:, 3]])
        np.testing.assert_allclose(got, flipped, atol=1e-3)
        assert list(boxes.features["label"][mine]) == truth.labels
    assert "napari_faster_rcnn" not in boxes.metadata  # a picture: no widget takes it for a dataset
    assert boxes.metadata["class_colors"] == colors

    widget.preview()  # again: new draws replace the layers
    qtbot.waitUntil(lambda: widget.preview_button.isEnabled(), timeout=30_000)
    assert [layer.name for layer in viewer.layers].count(PREVIEW_NAME) == 1


def test_export_writes_a_config_the_fit_command_accepts(make_napari_viewer, shapes, tmp_path, errors):
    from napari_faster_rcnn._cli import fit

    viewer = make_napari_viewer()
    viewer.open(shapes, plugin=PLUGIN)
    widget = make_widget(viewer, tmp_path / "run", source=LAYER)
    path = widget.export()
    assert path == tmp_path / "run" / "run.yaml" and path.is_file()
    assert widget.command.text() == f"napari-faster-rcnn fit --config {path.resolve()}"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert fit.run(["--config", str(path), "--print_config"]) == 0
    text = printed.getvalue()
    assert f"root: {shapes.resolve()}" in text and "preset: cpu" in text and "min_size: 64" in text

    # unsaved edits in the viewer: the command would train on other boxes, so it is refused
    from napari_faster_rcnn.layers.labeling import labeling_session

    labeling = labeling_session(viewer, viewer.layers["shapes boxes"], autosave=False)
    labeling.layer.data = []  # delete the boxes of the image on screen
    path.unlink()
    assert widget.export() is None and not path.exists()
    assert "unsaved boxes" in errors[-1] and "save them" in errors[-1]


def test_the_form_shows_the_common_fields_and_folds_the_rest(make_napari_viewer, shapes, tmp_path):
    from superqt import QCollapsible

    from napari_faster_rcnn.layers.training_fields import model_specs

    viewer = make_napari_viewer()
    widget = make_widget(viewer, tmp_path / "run", folder=shapes)
    form = widget.form
    folded = form.findChildren(QCollapsible)
    assert len(folded) == 3 and not any(section.isExpanded() for section in folded)
    assert list(form.model_fields.editors) == [spec.name for spec in model_specs(folded=True)]
    assert form.backbone.currentText() == "resnet18_slim" and not form.fpn.isChecked()  # the cpu preset

    form.model_fields.editors["box_score_thresh"].widget.setText("0.3")
    form.augment.setChecked(False)
    settings = form.settings(shapes)
    assert settings.preset == "cpu" and settings.model == {"min_size": 64, "max_size": 64, "box_score_thresh": 0.3}
    assert settings.augmentation.is_identity and settings.accelerator == "cpu"
    assert (settings.epochs, settings.batch_size, settings.optimizer, settings.learning_rate) == (1, 2, "adamw", 0.001)
    assert settings.split_ratios == (0.67, 0.33, 0.0) and settings.num_workers == 0

    form.preset.setCurrentText("default")  # a preset fills every model field
    assert form.backbone.currentText() == "resnet50" and form.fpn.isChecked() and form.min_size.value() == 800
    assert form.weights.currentText() == "coco" and form.model_fields.editors["box_score_thresh"].value() == 0.05
    assert form.settings(shapes).model == {}
    form.validation.setText(str(shapes))  # a separate validation folder: the split is not used
    assert not form.ratios[0].isEnabled()


def test_removing_the_dock_during_training_stops_the_run(make_napari_viewer, qtbot, shapes, tmp_path):
    viewer = make_napari_viewer()
    widget = make_widget(viewer, tmp_path / "run", folder=shapes, epochs=50)
    widget.train()
    qtbot.waitUntil(lambda: widget.progress.step >= 1, timeout=RUN_TIMEOUT_MS)
    job = widget.job
    viewer.window.remove_dock_widget(widget)
    assert job.done and job.stopping
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt").global_step < 100


def test_the_status_ends_on_the_summary_fit_prints_with_the_small_validation_warning(
        make_napari_viewer, qtbot, tmp_path, errors):
    import csv
    import re

    train = write_synthetic_dataset(tmp_path / "train", 4, seed=3, height=64, width=64)
    validation = write_synthetic_dataset(tmp_path / "val", 2, seed=4, height=64, width=64)
    viewer = make_napari_viewer()
    widget = make_widget(viewer, tmp_path / "run", folder=train)
    widget.form.validation.setText(str(validation))
    statuses = []
    worker = widget.train()
    worker.yielded.connect(lambda _: statuses.append(widget.status.text()))
    wait_for_run(qtbot, widget)
    assert errors == []

    boxes = {root: sum(len(load_annotation(path)) for path in (root / "target").glob("*.pt"))
             for root in (train, validation)}
    warning = (f"warning: validation holds only 2 images and {boxes[validation]} boxes: its mAP can swing by "
               "about 0.2 between epochs")
    assert any(warning in status for status in statuses)  # shown while it trains, from the start
    lines = widget.status.text().splitlines()
    checkpoints = tmp_path / "run" / "checkpoints"
    rows = [row for row in csv.DictReader((tmp_path / "run" / "logs" / "version_0" / "metrics.csv").open())
            if row.get("val/voc_map")]
    assert len(rows) == 1
    voc, coco = re.search(r"VOC AP@0.5 ([0-9.]+), COCO mAP ([0-9.]+)$", lines[3]).groups()
    assert lines[0].startswith("finished after 2 steps")
    assert lines[1] == f"best checkpoint: {checkpoints / 'best.ckpt'} (epoch 0, step 2)"
    assert lines[2] == f"last checkpoint: {checkpoints / 'last.ckpt'} (step 2)"
    assert (float(voc), float(coco)) == pytest.approx((float(rows[0]["val/voc_map"]),
                                                       float(rows[0]["val/coco_map"])), abs=5e-4)
    assert [line.split(":")[0] for line in lines[4:7]] == [f"  {name}" for name in SHAPE_CLASSES]
    assert lines[7] == (f"trained on 4 images (0 without boxes), {boxes[train]} boxes; "
                        f"validated on 2 images (0 without boxes), {boxes[validation]} boxes")
    assert lines[8].startswith(warning) and len(lines) == 9


def test_the_form_fits_the_sizes_to_the_data_by_default_and_the_run_says_what_it_chose(
        make_napari_viewer, qtbot, shapes, tmp_path, errors, warnings_shown):
    import yaml

    from napari_faster_rcnn.core.model.auto_size import auto_size
    from napari_faster_rcnn.core.model.config import preset
    from napari_faster_rcnn.core.training.data_module import DetectionDataModule
    from napari_faster_rcnn.core.training.settings import export_command

    viewer = make_napari_viewer()
    fresh = TrainDetectorWidget(viewer)
    assert fresh.form.auto_size.isChecked() and not fresh.form.min_size.isEnabled()
    fresh.form.auto_size.setChecked(False)
    assert fresh.form.min_size.isEnabled()

    widget = make_widget(viewer, tmp_path / "run", folder=shapes, max_steps=1, auto=True)
    settings = widget.form.settings(shapes)
    assert settings.auto_size and yaml.safe_load(export_command(settings)[0])["model"]["auto"] is True
    widget.train()
    wait_for_run(qtbot, widget)
    assert errors == [] and warnings_shown == []
    data = DetectionDataModule(root=str(shapes), ratios=(0.67, 0.33, 0.0), num_workers=0)
    expected = auto_size(preset("cpu", SHAPE_CLASSES), data.training_items).config
    assert load_checkpoint(widget.result.last_checkpoint).config == expected
    assert f"auto sizing: min_size {expected.min_size}, max_size {expected.max_size}" in "\n".join(
        widget.progress.messages)


def test_the_run_warns_when_most_boxes_fall_below_the_smallest_anchor(make_napari_viewer, qtbot, shapes, tmp_path,
                                                                     errors, warnings_shown):
    viewer = make_napari_viewer()
    widget = make_widget(viewer, tmp_path / "run", folder=shapes, max_steps=1)
    widget.form.min_size.setValue(32)  # 64 px shapes of 14-40 px become 7-20 px; the smallest anchor is 16
    widget.form.max_size.setValue(32)
    widget.train()
    wait_for_run(qtbot, widget)
    assert errors == [] and len(warnings_shown) == 1
    assert "smaller than the smallest anchor (16 px)" in warnings_shown[0]


def test_the_tile_controls_reach_the_run_settings(make_napari_viewer, shapes, tmp_path):
    viewer = make_napari_viewer()
    form = make_widget(viewer, tmp_path / "run", folder=shapes).form
    assert form.tiled.isChecked() and form.tile_size.value() == 0  # default: tiles of the model's max size
    assert form.settings(shapes).tile_size is None
    form.tile_size.setValue(256)
    assert form.settings(shapes).tile_size == 256
    form.tiled.setChecked(False)
    assert form.settings(shapes).tile_size == 0  # whole images
    assert "min_visible" in form.training_fields.values()  # the visibility rule among the other settings
