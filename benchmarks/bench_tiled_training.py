"""Training on tiles of large images, then predicting a held-out large image tiled and in one pass.

Issue 12's figure: "Trained on tiles with the ``cpu`` preset, AP@0.5 >= 0.9 on
a held-out large image, against the one-pass prediction of the same
checkpoint (report both)".

Data: synthetic large images (``--size`` px square, default 1024) made of
64 px cells of :func:`~napari_faster_rcnn.core.data.synthetic.make_synthetic_sample`,
each with 1 to 3 shapes of 8-24 px (circles, squares, triangles, all labelled
``object``): about 500 small objects per image. ``--train`` images train, one
more is held out.

Training: the ``cpu`` preset (128 px, stride 8) with anchors of 8-32 px (the
preset's 16-48 px are larger than most of these objects), on random 128 px
tiles (``tile_size=128``: the preset's training scale), AdamW, ``--steps``
steps, no validation during the run (the held-out image is the test).

Evaluation of the last checkpoint on the held-out image, VOC AP at IoU 0.5:

- **tiled**: the package's tiled prediction (``core.prediction.tiles``: 128 px
  tiles overlapping by ``--overlap`` px, cut objects merged into one box);
- **stitched** (a reference): this script's own tiling, the same tiles, boxes
  shifted back, then plain class-wise NMS at IoU 0.5 over the whole image;
- **one pass**: the whole image through the model as ``predict --tile 0``
  does: the model resizes it to its 128 px, so 8-24 px objects become 1-3 px.

Both keep up to 2000 detections of score >= 0.01 (AP needs the low scores).

Run: ``PYTHONPATH=src python benchmarks/bench_tiled_training.py`` (about 3
minutes on 2 cores; ``--steps`` and ``--size`` scale it).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from napari_faster_rcnn.core.data.annotations import Annotation, save_annotation
from napari_faster_rcnn.core.data.synthetic import make_synthetic_sample
from napari_faster_rcnn.core.evaluation.metrics import voc_evaluation
from napari_faster_rcnn.core.model.checkpoints import load_checkpoint
from napari_faster_rcnn.core.training.run import run_training
from napari_faster_rcnn.core.training.settings import TrainingSettings
from napari_faster_rcnn.core.training.tiling import grid_windows
from napari_faster_rcnn.core.training.transforms import AugmentationConfig

CELL = 64


def large_image(seed: int, index: int, size: int) -> tuple[np.ndarray, Annotation]:
    """A ``size`` px image of 64 px cells, each with 1-3 shapes of 8-24 px, all labelled ``object``."""
    image = np.zeros((size, size, 3), dtype=np.uint8)
    boxes = []
    cells = size // CELL
    for row in range(cells):
        for col in range(cells):
            cell, annotation = make_synthetic_sample(seed, index * 100_000 + row * cells + col, height=CELL,
                                                     width=CELL, objects=(1, 3), sizes=(8, 24))
            image[row * CELL:(row + 1) * CELL, col * CELL:(col + 1) * CELL] = cell
            boxes.extend(annotation.boxes + [col * CELL, row * CELL, col * CELL, row * CELL])
    boxes = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    return image, Annotation(boxes, ["object"] * len(boxes), classes=["object"])


def write_folder(folder: Path, seed: int, count: int, size: int) -> Path:
    (folder / "input").mkdir(parents=True)
    (folder / "target").mkdir()
    for index in range(count):
        image, annotation = large_image(seed, index, size)
        Image.fromarray(image).save(folder / "input" / f"{index:03d}.png")
        save_annotation(folder / "target" / f"{index:03d}.pt", annotation)
    return folder


def to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255


@torch.no_grad()
def predict_one_pass(model, image: np.ndarray) -> Annotation:
    output = model([to_tensor(image)])[0]
    return Annotation(output["boxes"].numpy().astype(np.float64), ["object"] * len(output["boxes"]),
                      scores=output["scores"].numpy().astype(np.float64))


@torch.no_grad()
def predict_own_tiles(model, image: np.ndarray, tile: int, overlap: int, batch: int = 16) -> Annotation:
    """This script's stand-in for tiled prediction: overlapping tiles, shifted boxes, plain NMS."""
    from torchvision.ops import batched_nms

    height, width = image.shape[:2]
    stride = tile - overlap
    starts = lambda length: sorted({*range(0, max(1, length - tile + 1), stride), max(0, length - tile)})  # noqa: E731
    windows = [(x, y, min(x + tile, width), min(y + tile, height)) for y in starts(height) for x in starts(width)]
    boxes, scores, labels = [], [], []
    for first in range(0, len(windows), batch):
        part = windows[first:first + batch]
        outputs = model([to_tensor(image[y0:y1, x0:x1]) for x0, y0, x1, y1 in part])
        for (x0, y0, _, _), output in zip(part, outputs):
            boxes.append(output["boxes"] + torch.tensor([x0, y0, x0, y0], dtype=torch.float32))
            scores.append(output["scores"])
            labels.append(output["labels"])
    boxes, scores, labels = torch.cat(boxes), torch.cat(scores), torch.cat(labels)
    keep = batched_nms(boxes, scores, labels, 0.5)[:2000]
    return Annotation(boxes[keep].numpy().astype(np.float64), ["object"] * len(keep),
                      scores=scores[keep].numpy().astype(np.float64))


def predict_package_tiles(model, image: np.ndarray, classes, tile: int, overlap: int):
    """The package's tiled prediction (core.prediction.tiles merging, through iter_predictions)."""
    from napari_faster_rcnn.core.prediction.run import predict_images
    from napari_faster_rcnn.core.prediction.tiles import Tiling

    # raw=False: the model's own post-processing per tile (set up above), as the stand-in stitching has it
    records, _ = predict_images(model, [image], classes, tiling=Tiling(tile, overlap / tile), raw=False)
    return records[0].annotation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1024, help="side of the large images (px)")
    parser.add_argument("--train", type=int, default=4, help="training images")
    parser.add_argument("--steps", type=int, default=600, help="training steps")
    parser.add_argument("--batch", type=int, default=8, help="tiles per step")
    parser.add_argument("--overlap", type=int, default=32, help="overlap of the evaluation tiles (px)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1: on a shared machine two threads wait on each other, 5-20x slower)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        start = time.perf_counter()
        train = write_folder(root / "train", seed=1, count=args.train, size=args.size)
        held_image, held_truth = large_image(seed=2, index=0, size=args.size)
        made = time.perf_counter() - start
        settings = TrainingSettings(
            data=train, output=root / "run", preset="cpu", model={"anchor_sizes": [[8, 12, 16, 24, 32]]},
            tile_size=128, epochs=10_000, max_steps=args.steps, batch_size=args.batch, num_workers=0,
            optimizer="adamw", learning_rate=2e-3, warmup_steps=50, accelerator="cpu", validation=False,
            split_ratios=(1.0, 0.0, 0.0), augmentation=AugmentationConfig(vertical_flip_probability=0.5),
            seed=0,
        )
        start = time.perf_counter()
        result = run_training(settings)
        trained = time.perf_counter() - start
        loaded = load_checkpoint(result.last_checkpoint)
        model = loaded.model.eval()
        model.roi_heads.score_thresh = 0.01
        model.roi_heads.detections_per_img = 2000
        model.rpn._post_nms_top_n["testing"] = 2000
        model.rpn._pre_nms_top_n["testing"] = 4000

        start = time.perf_counter()
        tiled = predict_package_tiles(model, held_image, loaded.classes, 128, args.overlap)
        tiled_seconds = time.perf_counter() - start
        start = time.perf_counter()
        stitched = predict_own_tiles(model, held_image, 128, args.overlap)
        stitched_seconds = time.perf_counter() - start
        start = time.perf_counter()
        whole = predict_one_pass(model, held_image)
        whole_seconds = time.perf_counter() - start

        tiled_ap = voc_evaluation([held_truth], [tiled], 0.5).map
        whole_ap = voc_evaluation([held_truth], [whole], 0.5).map
        stitched_ap = voc_evaluation([held_truth], [stitched], 0.5).map
        tiles_per_image = len(grid_windows(args.size, args.size, 128))
        summary = {
            "benchmark": "tiled_training",
            "image_px": args.size, "train_images": args.train, "objects_per_image": len(held_truth.boxes),
            "tiles_per_epoch": args.train * tiles_per_image, "steps": result.steps, "batch": args.batch,
            "data_seconds": round(made, 1), "train_seconds": round(trained, 1),
            "tiled_ap50": round(tiled_ap, 3), "tiled_boxes": len(tiled.boxes),
            "tiled_seconds": round(tiled_seconds, 2),
            "plain_nms_stitch_ap50": round(stitched_ap, 3), "plain_nms_stitch_seconds": round(stitched_seconds, 2),
            "one_pass_ap50": round(whole_ap, 3), "one_pass_boxes": len(whole.boxes),
            "one_pass_seconds": round(whole_seconds, 2),
            "target_tiled_ap50": 0.9, "met": tiled_ap >= 0.9,
        }
        print(f"held-out {args.size} px image, {len(held_truth.boxes)} objects of 8-24 px")
        print(f"  tiled (core.prediction.tiles): AP@0.5 {tiled_ap:.3f}, {len(tiled.boxes)} boxes, {tiled_seconds:.1f} s")
        print(f"  tiles stitched with plain NMS (reference): AP@0.5 {stitched_ap:.3f}, {stitched_seconds:.1f} s")
        print(f"  one pass:  AP@0.5 {whole_ap:.3f}, {len(whole.boxes)} boxes, {whole_seconds:.1f} s")
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
