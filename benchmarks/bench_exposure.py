"""Issue 13's exposure figure: a detector trained on 16-bit nuclei at one exposure, evaluated on
the same scenes at 1/4 and 16 times the intensity, under per-image percentiles (the default for
16-bit data) and, for the record, under the old rule (``none``: divided by 65535).

    nice python benchmarks/bench_exposure.py            # ~ a few minutes on 2 CPU cores
    python benchmarks/bench_exposure.py --steps 300 --train 32

The data is synthetic and made in the run: fluorescent-like nuclei (elliptic Gaussian blobs, 12-bit
signal: peak 1000-3000 counts over a background of 100, Poisson-like noise) in uint16 images of
128 x 128 pixels; each box spans the blob to 2 sigma. The test scenes are rendered once and scaled:
x1/4 (rounded), x1 (the training exposure) and x16 (clipped at 65535, a camera's saturation).
Both runs train the ``cpu`` preset (128 px) for the same steps with the Train detector's defaults
(augmentation included) and differ only in ``normalization``. The figure is AP@0.5 (VOC) per
exposure and its largest difference from the training exposure's; ``--check`` fails unless that
is at most 0.05 under percentiles.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report  # noqa: E402

EXPOSURES = (0.25, 1.0, 16.0)
SIZE = 128


def scene(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Expected photon counts of one field (float64, before noise) and its boxes."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    signal = np.full((SIZE, SIZE), 100.0)
    boxes = []
    for _ in range(rng.integers(3, 9)):
        sy, sx = rng.uniform(3.0, 6.0, 2)
        cy, cx = rng.uniform(2 * sy, SIZE - 2 * sy), rng.uniform(2 * sx, SIZE - 2 * sx)
        if any(abs(cx - (x0 + x1) / 2) < 14 and abs(cy - (y0 + y1) / 2) < 14 for x0, y0, x1, y1 in boxes):
            continue
        signal += rng.uniform(1000, 3000) * np.exp(-((yy - cy) ** 2 / (2 * sy ** 2) + (xx - cx) ** 2 / (2 * sx ** 2)))
        boxes.append((cx - 2 * sx, cy - 2 * sy, cx + 2 * sx, cy + 2 * sy))
    return signal, np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


def exposed(signal: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    """The scene recorded at ``factor`` times the exposure: Poisson-like noise, rounded, clipped at 65535."""
    counts = signal * factor
    noisy = counts + rng.normal(0.0, 1.0, counts.shape) * np.sqrt(counts + 25 * factor ** 2)
    return np.clip(np.round(noisy), 0, 65535).astype(np.uint16)


def write_training(folder: Path, count: int, seed: int) -> None:
    from PIL import Image

    from napari_faster_rcnn.core.data.annotations import Annotation, save_annotation

    rng = np.random.default_rng(seed)
    (folder / "input").mkdir(parents=True)
    (folder / "target").mkdir()
    for index in range(count):
        signal, boxes = scene(rng)
        Image.fromarray(exposed(signal, 1.0, rng)).save(folder / "input" / f"{index:03d}.png")
        save_annotation(folder / "target" / f"{index:03d}.pt", Annotation(boxes, ["nucleus"] * len(boxes)))


def train(folder: Path, normalization: str, steps: int, output: Path) -> Path:
    from napari_faster_rcnn.core.training.run import run_training
    from napari_faster_rcnn.core.training.settings import TrainingSettings

    settings = TrainingSettings(
        data=folder, output=output, preset="cpu", model={"normalization": normalization}, split_ratios=(0.85, 0.15, 0.0),
        epochs=1000, max_steps=steps, batch_size=4, accelerator="cpu", num_workers=0, cpu_threads=2,
        validation_every_epochs=1000,
    )
    return run_training(settings).last_checkpoint


def evaluate(checkpoint: Path, scenes, seed: int) -> dict:
    from napari_faster_rcnn.core.data.annotations import Annotation
    from napari_faster_rcnn.core.evaluation.metrics import voc_evaluation
    from napari_faster_rcnn.core.model.checkpoints import load_checkpoint
    from napari_faster_rcnn.core.prediction.run import predict_images

    loaded = load_checkpoint(checkpoint)
    truths = [Annotation(boxes, ["nucleus"] * len(boxes)) for _, boxes in scenes]
    result = {}
    for factor in EXPOSURES:
        rng = np.random.default_rng(seed)
        images = [exposed(signal, factor, rng) for signal, _ in scenes]
        records, _ = predict_images(loaded.model, images, loaded.classes)
        result[factor] = round(float(voc_evaluation(truths, [r.annotation for r in records], 0.5).map), 4)
    return {"normalization": loaded.config.normalization, "ap50": result,
            "worst_gap": round(max(abs(result[f] - result[1.0]) for f in EXPOSURES), 4)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--train", type=int, default=24, help="training scenes (15%% of them validate)")
    parser.add_argument("--test", type=int, default=12, help="test scenes, each at the three exposures")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--modes", default="percentiles,none")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed + 1)
    scenes = [scene(rng) for _ in range(args.test)]
    rows, summary = [], {"steps": args.steps, "train": args.train, "test": args.test}
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary) / "nuclei"
        write_training(folder, args.train, args.seed)
        for mode in args.modes.split(","):
            start = time.perf_counter()
            checkpoint = train(folder, mode, args.steps, Path(temporary) / f"run-{mode}")
            figures = evaluate(checkpoint, scenes, args.seed + 2)
            figures["train_seconds"] = round(time.perf_counter() - start, 1)
            rows.append((mode, *(figures["ap50"][f] for f in EXPOSURES), figures["worst_gap"],
                         figures["train_seconds"]))
            summary[mode] = figures
            print(json.dumps({mode: figures}), flush=True)
    report("exposure: AP@0.5 at x1/4, x1 (training), x16", rows, summary)
    if args.check and summary.get("percentiles", {}).get("worst_gap", 1.0) > 0.05:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
