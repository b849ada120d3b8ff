"""Held-out AP@0.5 of the ``cpu`` preset as it is (128 px) against automatic sizing (``auto_size``).

Give it a dataset folder of photos whose objects are large for 128 px, such as the tutorial's
heads (``../shared/data/heads``: 20 images with input/ + target/):

    python benchmarks/bench_auto_size.py /path/to/heads
    python benchmarks/bench_auto_size.py /path/to/heads --steps 120 --train 16 --held-out 4 --seed 0

The images are split once, at random from ``--seed``, into ``--train`` training images and
``--held-out`` images that only validate. Both runs train the same steps with the Train
detector's defaults (batches of 4, SGD, augmentation, the preset's learning rate) and differ only
in ``auto_size``. The figure is the last validation's VOC AP@0.5 on the held-out images (the last
epoch's, not the best's: no choice is made on them). The baseline is the preset as it is, in the
same run; ``--check`` fails unless automatic sizing at least doubles it.
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


def split(folder: Path, train: int, held_out: int, seed: int):
    from napari_faster_rcnn.core.training.samples import folder_samples

    samples = sorted(folder_samples(folder), key=lambda sample: str(sample.image))
    if len(samples) < train + held_out:
        raise SystemExit(f"{folder}: {len(samples)} labeled images, fewer than {train} + {held_out}")
    order = np.random.default_rng(seed).permutation(len(samples))
    return [samples[i] for i in order[:train]], [samples[i] for i in order[train:train + held_out]]


def train_once(train, held_out, auto: bool, steps: int, batch_size: int, threads: int, output: Path,
               optimizer: str) -> dict:
    from napari_faster_rcnn.core.training.run import run_training
    from napari_faster_rcnn.core.training.settings import TrainingSettings

    steps_per_epoch = -(-len(train) // batch_size)
    settings = TrainingSettings(
        data=train, validation_data=held_out, output=output, preset="cpu", auto_size=auto,
        epochs=-(-steps // steps_per_epoch), max_steps=steps, batch_size=batch_size, optimizer=optimizer,
        accelerator="cpu", num_workers=0, cpu_threads=threads, validation_every_epochs=1,
    )
    messages = []
    start = time.perf_counter()
    result = run_training(settings, report=lambda event: event.kind in ("log", "warning") and messages.append(
        f"{event.kind}: {event.message}"))
    seconds = time.perf_counter() - start
    from napari_faster_rcnn.core.model.checkpoints import load_checkpoint

    config = load_checkpoint(result.last_checkpoint).config
    return {
        "auto": auto, "steps": result.steps, "seconds": round(seconds, 1),
        "held_out_voc_ap50": round(float(result.metrics.get("val/voc_map", float("nan"))), 4),
        "held_out_coco_map": round(float(result.metrics.get("val/coco_map", float("nan"))), 4),
        "min_size": config.min_size, "max_size": config.max_size,
        "anchor_sizes": [list(level) for level in config.anchors()[0]],
        "messages": [m for m in messages if m.startswith("warning") or "auto sizing" in m],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a dataset folder (the tutorial's heads)")
    parser.add_argument("--steps", type=int, default=120, help="optimizer steps of each run (default 120: the "
                        "Train detector's 30 epochs of 16 images in batches of 4)")
    parser.add_argument("--train", type=int, default=16)
    parser.add_argument("--held-out", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0, help="the split's seed (training is seeded with 0)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--optimizer", default="sgd", choices=("sgd", "adamw"))
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--only", choices=("preset", "auto"), help="one of the two runs")
    parser.add_argument("--check", action="store_true", help="fail unless auto sizing doubles the held-out AP")
    args = parser.parse_args(argv)

    train, held_out = split(args.folder, args.train, args.held_out, args.seed)
    runs = []
    with tempfile.TemporaryDirectory() as scratch:
        for auto in (False, True):
            if args.only and args.only != ("auto" if auto else "preset"):
                continue
            runs.append(train_once(train, held_out, auto, args.steps, args.batch_size, args.threads,
                                   Path(scratch) / ("auto" if auto else "preset"), args.optimizer))
    rows = [("run", "min_size", "max_size", "anchor sizes", "held-out AP@0.5", "COCO mAP", "steps", "seconds")]
    for run in runs:
        rows.append(("auto" if run["auto"] else "cpu preset", run["min_size"], run["max_size"],
                     json.dumps(run["anchor_sizes"]), run["held_out_voc_ap50"], run["held_out_coco_map"],
                     run["steps"], run["seconds"]))
    for run in runs:
        for message in run["messages"]:
            print(("auto: " if run["auto"] else "preset: ") + message)
    summary = {"folder": str(args.folder), "train": len(train), "held_out": len(held_out), "seed": args.seed,
               "optimizer": args.optimizer, "runs": runs}
    if len(runs) == 2 and runs[0]["held_out_voc_ap50"] > 0:
        summary["ratio"] = round(runs[1]["held_out_voc_ap50"] / runs[0]["held_out_voc_ap50"], 2)
    report("auto sizing on held-out images", rows, summary)
    if args.check and len(runs) == 2 and not runs[1]["held_out_voc_ap50"] >= 2 * runs[0]["held_out_voc_ap50"]:
        print("check failed: automatic sizing did not double the preset's held-out AP@0.5", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
