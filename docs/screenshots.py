"""Make the README's screenshots in a real viewer (run under a virtual display).

    xvfb-run -a -s "-screen 0 1400x900x24" python docs/screenshots.py [NAME ...]

NAME is one of ``samples``, ``predictions``, ``dataset_statistics``, ``label_boxes``, ``anchor_boxes``,
``train_detector``, ``predict``; all by default
(rendering noise changes the bytes of pictures that did not change, so make only
the ones you changed).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import napari
import numpy as np

import napari_faster_rcnn.layers  # noqa: F401 - sets up the viewer process before anything here imports torch

HERE = Path(__file__).parent / "images"


def main(names=()) -> None:
    names = set(names or ("samples", "predictions", "dataset_statistics", "label_boxes", "anchor_boxes",
                          "train_detector", "predict"))
    HERE.mkdir(exist_ok=True)
    viewer = napari.Viewer()
    viewer.window._qt_window.resize(1200, 760)
    if "samples" in names:
        viewer.open_sample("napari-faster-rcnn", "astronaut")
        viewer.screenshot(str(HERE / "astronaut.png"), canvas_only=False, flash=False)
        viewer.layers.clear()
        viewer.open_sample("napari-faster-rcnn", "synthetic-shapes")
        viewer.dims.set_current_step(0, 3)
        viewer.screenshot(str(HERE / "synthetic.png"), canvas_only=False, flash=False)
        viewer.layers.clear()
    with tempfile.TemporaryDirectory() as folder:
        for name, take in (("predictions", predictions_screenshots), ("dataset_statistics", statistics_screenshot),
                           ("label_boxes", labeling_screenshot), ("anchor_boxes", anchors_screenshot),
                           ("train_detector", training_screenshot), ("predict", predict_screenshot)):
            if name not in names:
                continue
            if name in ("label_boxes", "predict"):  # the window as they were laid out for
                viewer.window._qt_window.resize(1200, 760)
            take(viewer, Path(folder))
            viewer.window.remove_dock_widget("all")
            viewer.layers.clear()
    viewer.close()


def fake_raw_detections(dataset: Path, seed: int = 0) -> None:
    """Write what a detector with NMS off might say about each image: several scored boxes
    around each object, some with the wrong class, and a few false ones."""
    from napari_faster_rcnn.core.data.annotations import Annotation, load_annotation, save_annotation

    rng = np.random.default_rng(seed)
    for path in sorted((dataset / "target").glob("*.pt")):
        truth = load_annotation(path)
        boxes, labels, scores = [], [], []
        for box, label in zip(truth.boxes, truth.labels):
            size = np.array([box[2] - box[0], box[3] - box[1]] * 2)
            best = rng.uniform(0.4, 1.0)
            for k in range(8):
                boxes.append(box + rng.normal(0, 0.1 if k else 0.03, 4) * size)
                labels.append(label if rng.random() < 0.85 else str(rng.choice(["circle", "square", "triangle"])))
                scores.append(best * rng.uniform(0.3, 1.0) if k else best)
        for _ in range(3):
            x, y = rng.uniform(0, 200, 2)
            boxes.append([x, y, x + rng.uniform(10, 40), y + rng.uniform(10, 40)])
            labels.append("square")
            scores.append(rng.uniform(0.05, 0.6))
        boxes = np.clip(np.array(boxes), 0, 255)
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 2)
        save_annotation(dataset / "predictions" / path.name, Annotation(boxes, labels, np.array(scores)))


def predictions_screenshots(viewer, folder: Path) -> None:
    from qtpy.QtWidgets import QApplication

    from napari_faster_rcnn.core.data.synthetic import write_synthetic_dataset

    dataset = write_synthetic_dataset(folder / "shapes", n_images=8, seed=5, height=256, width=256,
                                      objects=(3, 6), sizes=(30, 70))
    fake_raw_detections(dataset)
    viewer.open(dataset, plugin="napari-faster-rcnn")
    viewer.open(dataset / "predictions", plugin="napari-faster-rcnn")
    viewer.layers[2].visible = False  # the same images again
    viewer.layers[1].visible = False  # the labels, for the first picture
    viewer.dims.set_current_step(0, 2)
    _, tune = viewer.window.add_plugin_dock_widget("napari-faster-rcnn", "Tune predictions")
    tune.score.setValue(0.45)
    tune.nms.setValue(0.4)
    viewer.reset_view()
    QApplication.processEvents()
    viewer.screenshot(str(HERE / "tune_predictions.png"), canvas_only=False, flash=False)

    viewer.window.remove_dock_widget("all")
    viewer.layers[1].visible = True
    viewer.layers[3].visible = False  # the marks tell the story
    _, evaluate = viewer.window.add_plugin_dock_widget("napari-faster-rcnn", "Evaluate")
    evaluate.run()
    deadline = time.time() + 120
    while evaluate.result is None and time.time() < deadline:
        QApplication.processEvents()
        time.sleep(0.05)
    viewer.layers[1].visible = False
    QApplication.processEvents()
    viewer.screenshot(str(HERE / "evaluate.png"), canvas_only=False, flash=False)


def statistics_screenshot(viewer, folder: Path) -> None:
    """Synthetic shapes in three image sizes, as one dataset folder, and their statistics."""
    import shutil

    from qtpy.QtWidgets import QApplication

    from napari_faster_rcnn.core.data.synthetic import write_synthetic_dataset

    dataset = folder / "sizes"
    for part, (height, width, count) in enumerate([(480, 640, 14), (600, 400, 6), (360, 480, 10)]):
        source = write_synthetic_dataset(folder / f"part{part}", n_images=count, seed=7 + part, height=height,
                                         width=width, objects=(2, 9), sizes=(24, 150))
        for kind in ("input", "target"):
            (dataset / kind).mkdir(parents=True, exist_ok=True)
            for path in (source / kind).iterdir():
                shutil.move(path, dataset / kind / f"{part}-{path.name}")
    viewer.open(dataset, plugin="napari-faster-rcnn")
    viewer.dims.set_current_step(0, 4)
    _, widget = viewer.window.add_plugin_dock_widget("napari-faster-rcnn", "Dataset statistics")
    viewer.window._qt_window.resize(1200, 860)
    widget.run()
    for _ in range(2):  # the canvas takes its size from the resized window first
        for _ in range(5):
            QApplication.processEvents()
            time.sleep(0.05)
        viewer.reset_view()
    viewer.screenshot(str(HERE / "dataset_statistics.png"), canvas_only=False, flash=False)


def labeling_screenshot(viewer, folder: Path) -> None:
    """The "Label boxes" widget on a small dataset folder, two of its images not labeled yet."""
    from qtpy.QtWidgets import QApplication

    from napari_faster_rcnn.core.data.boxes import boxes_to_rectangles
    from napari_faster_rcnn.core.data.synthetic import write_synthetic_dataset

    dataset = write_synthetic_dataset(folder / "shapes", n_images=8, seed=5, height=256, width=256,
                                      objects=(3, 6), sizes=(30, 70))
    for index in (5, 6):
        (dataset / "target" / f"{index:03d}.pt").unlink()
    viewer.open(dataset, plugin="napari-faster-rcnn")
    viewer.dims.set_current_step(0, 2)
    _, widget = viewer.window.add_plugin_dock_widget("napari-faster-rcnn", "Label boxes")
    widget.class_name.setText("star")
    widget.add_class()
    session = widget.session
    session.set_current_class("square")
    session.layer.add_rectangles(boxes_to_rectangles([[176.0, 190.0, 226.0, 240.0]], image_index=2))
    session.layer.mode = "add_rectangle"
    QApplication.processEvents()  # the dock takes its room first, then the image fits the canvas
    viewer.reset_view()
    QApplication.processEvents()
    viewer.screenshot(str(HERE / "label_boxes.png"), canvas_only=False, flash=False)
    session.save()


def anchors_screenshot(viewer, folder: Path) -> None:
    """Small shapes in 640 x 480 photos under ResNet-50 FPN's default anchors: the smallest are
    unreached; one of them chosen, and the suggestion beside."""
    from qtpy.QtWidgets import QApplication

    from napari_faster_rcnn.core.data.synthetic import write_synthetic_dataset

    dataset = write_synthetic_dataset(folder / "small", n_images=12, seed=11, height=480, width=640,
                                      objects=(3, 8), sizes=(10, 90))
    viewer.open(dataset, plugin="napari-faster-rcnn")
    viewer.window._qt_window.resize(1320, 860)
    _, widget = viewer.window.add_plugin_dock_widget("napari-faster-rcnn", "Anchor boxes")
    for _ in range(5):
        QApplication.processEvents()
        time.sleep(0.05)
    widget.suggest()
    deadline = time.time() + 120
    while not widget.suggest_button.isEnabled() and time.time() < deadline:
        QApplication.processEvents()
        time.sleep(0.05)
    widget.view.look_again()
    widget.unreached.setCurrentRow(0)  # the worst box: its image, the anchors at its centre, the camera on it
    viewer.scene.camera.zoom *= 2.5
    QApplication.processEvents()
    viewer.screenshot(str(HERE / "anchor_boxes.png"), canvas_only=False, flash=False)


def training_screenshot(viewer, folder: Path) -> None:
    """"Train detector" after a short run of the cpu preset on the synthetic shapes, the augmentation
    preview in the canvas."""
    from qtpy.QtWidgets import QApplication

    from napari_faster_rcnn.core.data.synthetic import write_synthetic_dataset

    dataset = write_synthetic_dataset(folder / "shapes", n_images=40, seed=2, height=128, width=128)
    viewer.window._qt_window.resize(1250, 900)
    viewer.open(dataset, plugin="napari-faster-rcnn")
    _, widget = viewer.window.add_plugin_dock_widget("napari-faster-rcnn", "Train detector")
    form = widget.form
    form.preset.setCurrentText("cpu")
    form.epochs.setValue(10)
    form.batch_size.setValue(8)
    form.optimizer.setCurrentText("adamw")
    form.learning_rate.setText("0.002")
    form.device.setCurrentIndex(form.device.findData("cpu"))
    form.training_fields.set_values({"num_workers": 0, "warmup_steps": 10})
    form.output.setText(str(folder / "run"))

    def wait(condition, seconds=600):
        deadline = time.time() + seconds
        while not condition() and time.time() < deadline:
            QApplication.processEvents()
            time.sleep(0.05)

    widget.export()
    widget.preview()
    wait(lambda: "augmentation preview boxes" in viewer.layers)
    for name in ("shapes", "shapes boxes"):
        viewer.layers[name].visible = False
    widget.train()
    wait(lambda: widget.job.done and widget.train_button.isEnabled())
    widget.plot.wait()
    for _ in range(10):
        QApplication.processEvents()
        time.sleep(0.05)
    boxes = [len(annotation) for annotation in widget.last_preview.annotations]
    viewer.dims.set_current_step(0, int(np.argmax(boxes)))  # the preview image with the most objects
    viewer.reset_view()
    QApplication.processEvents()
    viewer.screenshot(str(HERE / "train_detector.png"), canvas_only=False, flash=False)


def predict_screenshot(viewer, folder: Path) -> None:
    """"Predict" with a cpu-preset checkpoint trained here (200 steps on synthetic shapes, a minute or
    two on a CPU) over a held-out stack of eight images."""
    from qtpy.QtWidgets import QApplication

    from napari_faster_rcnn.core.training.demo import write_images
    from napari_faster_rcnn.core.training.run import run_training
    from napari_faster_rcnn.core.training.settings import TrainingSettings
    from napari_faster_rcnn.core.training.transforms import AugmentationConfig

    train = write_images(folder / "train", 256, 0, 128)
    test = write_images(folder / "test", 8, 5, 128)
    result = run_training(TrainingSettings(
        data=train, validation_data=write_images(folder / "validation", 16, 1, 128),
        output=folder / "predict-run",  # not "run": that is the Train detector screenshot's
        preset="cpu", augmentation=AugmentationConfig(horizontal_flip_probability=0.5, scale_probability=0.0,
                                                      brightness_contrast_probability=0.0),
        epochs=7, max_steps=200, batch_size=8, optimizer="adamw", learning_rate=1e-3, warmup_steps=50,
        accelerator="cpu", num_workers=0,
    ))
    viewer.open(test, plugin="napari-faster-rcnn")
    _, widget = viewer.window.add_plugin_dock_widget("napari-faster-rcnn", "Predict")
    widget.path.setText(str(result.best_checkpoint))
    widget.load()
    _wait(lambda: widget.checkpoint is not None)
    widget.target.setCurrentText("whole stack")
    widget.predict()
    _wait(lambda: widget.worker is None)
    viewer.layers[1].visible = False  # the labels: the predictions tell the story
    viewer.dims.set_current_step(0, 2)
    QApplication.processEvents()
    viewer.reset_view()
    QApplication.processEvents()
    viewer.screenshot(str(HERE / "predict.png"), canvas_only=False, flash=False)


def _wait(done, seconds: float = 120) -> None:
    from qtpy.QtWidgets import QApplication

    deadline = time.time() + seconds
    while not done() and time.time() < deadline:
        QApplication.processEvents()
        time.sleep(0.02)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
