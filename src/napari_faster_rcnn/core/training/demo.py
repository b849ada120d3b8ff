"""The demo: the whole job on built-in data, on a CPU, in a minute or two.

:func:`run_demo` writes three synthetic datasets (:mod:`.synthetic`: circles,
squares and triangles; training, validation and a held-out test set, each
from its own seed, so no test image is ever seen in training or validation),
trains the ``cpu`` preset from scratch (no downloads) through
:func:`.training_run.run_training`, the same code the widget drives, then
loads ``best.ckpt`` with :func:`.checkpoints.load_checkpoint` (as prediction
would) and evaluates it on the test set: Pascal VOC AP@0.5 per class and COCO
mAP@[.5:.95]. It leaves in its folder the checkpoints, ``curves.png`` (loss per
step, validation mAP per epoch), a few ``predictions_*.png`` and
``results.json``.

The training recipe: AdamW at 1e-3 with 50 warm-up steps and a cosine decay,
batches of 8, horizontal flips. The model engineer's bare loop reached VOC
AP@0.5 of 0.93 after 150 steps and 0.99 after 200 on such data; the demo's
default of 320 steps (10 epochs) leaves a margin for other seeds (see benchmarks/README.md for the
figures measured).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path

from napari_faster_rcnn.core.data.annotations import save_annotation
from napari_faster_rcnn.core.data.atomic_files import atomic_write_bytes, remove_outputs
from napari_faster_rcnn.core.data.synthetic import SHAPE_CLASSES, make_synthetic_sample
from napari_faster_rcnn.core.training.transforms import AugmentationConfig

__all__ = ["SHAPE_CLASSES", "check_output", "format_results", "run_demo", "write_images"]

#: What the demo writes into its folder (only these are removed by ``overwrite``).
DEMO_OUTPUTS = ("data", "checkpoints", "logs", "tensorboard", "curves.png", "results.json")
PREDICTION_IMAGES = 4


def check_output(folder: Path, overwrite: bool) -> None:
    """Refuse a non-empty folder unless ``overwrite``; then remove what an earlier demo wrote there."""
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{folder}: the demo's output folder is a file")
    if folder.is_dir() and any(folder.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{folder} is not empty; choose another folder or pass --overwrite to replace "
                                  "an earlier demo's files")
        remove_outputs(folder, DEMO_OUTPUTS)
        for path in folder.glob("predictions_*.png"):
            path.unlink()


def write_images(folder: Path, count: int, seed: int, size: int, progress=None) -> Path:
    """``count`` synthetic images of ``seed`` as ``folder/input/*.png`` + ``folder/target/*.pt``."""
    from PIL import Image

    (folder / "input").mkdir(parents=True, exist_ok=True)
    (folder / "target").mkdir(parents=True, exist_ok=True)
    for index in range(count):
        image, annotation = make_synthetic_sample(seed, index, height=size, width=size)
        Image.fromarray(image).save(folder / "input" / f"{index:04d}.png")
        save_annotation(folder / "target" / f"{index:04d}.pt", annotation)
        if progress is not None:
            progress(1)
    return folder


def run_demo(
    output: str | Path = "demo_output",
    train_images: int = 256,
    validation_images: int = 32,
    test_images: int = 100,
    steps: int = 320,
    batch_size: int = 8,
    size: int = 128,
    seed: int = 0,
    accelerator: str = "cpu",
    overwrite: bool = False,
    progress_bar: bool = True,
    say: Callable[[str], None] = print,
) -> dict:
    """Make the data, train, evaluate on the held-out set, draw; returns the results (as ``results.json``).

    ``steps`` is rounded up to whole epochs, so that the last step is validated
    and can be the best checkpoint. ``say`` gets a line at the start and end of
    every long step; with ``progress_bar`` the steps also show tqdm bars (on stderr).
    """
    from tqdm.auto import tqdm

    start = time.perf_counter()
    output = Path(output)
    check_output(output, overwrite)
    for name, value, least in (("train_images", train_images, 2), ("validation_images", validation_images, 1),
                               ("test_images", test_images, 1), ("steps", steps, 1), ("batch_size", batch_size, 1)):
        if value < least:
            raise ValueError(f"{name} must be at least {least}, got {value}")

    # 1. data: three sets of their own seeds
    parts = {"train": (train_images, seed * 3), "validation": (validation_images, seed * 3 + 1),
             "test": (test_images, seed * 3 + 2)}
    total = sum(count for count, _ in parts.values())
    say(f"making {total} synthetic images ({train_images} train, {validation_images} validation, "
        f"{test_images} held-out test) in {output / 'data'}")
    with tqdm(total=total, desc="synthetic images", unit="image", disable=not progress_bar, leave=False) as bar:
        folders = {name: write_images(output / "data" / name, count, part_seed, size, bar.update)
                   for name, (count, part_seed) in parts.items()}

    # 2. training
    from napari_faster_rcnn.core.training.run import run_training
    from napari_faster_rcnn.core.training.settings import TrainingSettings

    steps_per_epoch = math.ceil(train_images / batch_size)
    settings = TrainingSettings(
        data=folders["train"], validation_data=folders["validation"], output=output, preset="cpu",
        augmentation=AugmentationConfig(horizontal_flip_probability=0.5, scale_probability=0.0,
                                        brightness_contrast_probability=0.0),
        epochs=math.ceil(steps / steps_per_epoch), batch_size=batch_size, optimizer="adamw",
        learning_rate=1e-3, weight_decay=1e-4, warmup_steps=min(50, steps // 4), scheduler="cosine",
        accelerator=accelerator, num_workers=0, cache=True, seed=seed, overwrite=True, progress_bar=progress_bar,
    )
    events = []
    say(f"training the cpu preset from scratch: {settings.epochs * steps_per_epoch} steps of {batch_size} images "
        f"({settings.epochs} epochs of {steps_per_epoch} steps, validation after each)")
    training_start = time.perf_counter()
    result = run_training(settings, events.append)
    training_seconds = time.perf_counter() - training_start
    say(f"trained {result.steps} steps in {training_seconds:.0f} s; best validation VOC AP@0.5 "
        f"{_number(result.best_score)}")

    # 3. the best checkpoint, loaded as prediction would, on the held-out test set
    from napari_faster_rcnn.core.evaluation.metrics import evaluate
    from napari_faster_rcnn.core.model.checkpoints import load_checkpoint
    from napari_faster_rcnn.core.training.dataset import DetectionDataset
    from napari_faster_rcnn.core.training.validation import predict_dataset

    checkpoint = result.best_checkpoint or result.last_checkpoint
    loaded = load_checkpoint(checkpoint)
    test = DetectionDataset.from_folder(folders["test"], loaded.classes)
    say(f"evaluating {checkpoint.name} on the {len(test)} held-out test images")
    with tqdm(total=len(test), desc="evaluation", unit="image", disable=not progress_bar, leave=False) as bar:
        collector = predict_dataset(loaded.model, test, progress=lambda done, _: bar.update(done - bar.n))
    ground_truths, predictions = collector.annotations()
    evaluation = evaluate(ground_truths, predictions, 0.5, classes=loaded.classes)

    # 4. pictures and results
    from napari_faster_rcnn.core.training.plots import draw_predictions, plot_training_curves

    plot_training_curves(events, output / "curves.png", title=f"cpu preset on synthetic shapes, seed {seed}")
    from napari_faster_rcnn.core.data.images import read_image

    pictures = []
    for index in range(min(PREDICTION_IMAGES, len(test))):
        path = output / f"predictions_{index}.png"
        draw_predictions(read_image(test.samples[index].image), ground_truths[index], predictions[index],
                         loaded.classes, path, title=f"test image {index}: predicted, true (dashed)")
        pictures.append(str(path))
    summary = evaluation.to_dict()
    results = {
        "voc_map": summary["voc_map"],
        "coco_map": summary["coco_map"],
        "coco_map50": summary["coco_map50"],
        "coco_map75": summary["coco_map75"],
        "per_class": summary["per_class"],
        "seconds": round(time.perf_counter() - start, 1),
        "training_seconds": round(training_seconds, 1),
        "steps": result.steps,
        "epochs": result.epochs,
        "batch_size": batch_size,
        "images": {"train": train_images, "validation": validation_images, "test": test_images},
        "seed": seed,
        "best_validation_voc_map": result.best_score,
        "checkpoint": str(checkpoint),
        "curves": str(output / "curves.png"),
        "predictions": pictures,
        "classes": summary["classes"],
    }
    atomic_write_bytes(output / "results.json", (json.dumps(results, indent=1) + "\n").encode("utf-8"))
    return results


def format_results(results: dict) -> str:
    """The demo's results as a table."""
    classes = results["classes"]
    width = max(len("mean"), *(len(name) for name in classes))
    lines = [f"held-out test set: {results['images']['test']} images, never seen in training or validation",
             f"{'class':<{width}}  {'boxes':>5}  {'VOC AP@0.5':>10}  {'COCO AP':>8}"]
    for name, values in classes.items():
        lines.append(f"{name:<{width}}  {values['ground_truth']:>5}  {_number(values['ap']):>10}  "
                     f"{_number(values['coco_ap']):>8}")
    lines.append(f"{'mean':<{width}}  {'':>5}  {_number(results['voc_map']):>10}  {_number(results['coco_map']):>8}")
    lines.append(f"{results['steps']} training steps in {results['training_seconds']:.0f} s; "
                 f"{results['seconds']:.0f} s in all")
    lines.append(f"checkpoint: {results['checkpoint']}")
    lines.append(f"curves: {results['curves']}; predictions: {', '.join(Path(p).name for p in results['predictions'])}")
    return "\n".join(lines)


def _number(value) -> str:
    return "-" if value is None or value != value else f"{value:.3f}"

