"""Evaluation of large crowded images against the same boxes spread over small images.

Generates, with the same density of objects (one per 5,243 px^2, 8-40 px, 5
classes), ground truth and predictions (85% of the objects found with a jitter
of 1.5 px, a tenth of those with the wrong class, false positives as 15% of the
objects, scores rounded to 0.001 so that some tie) for

- large: 20 images of 5,120 x 5,120 with 5,000 objects each;
- baseline: 2,000 images of 512 x 512 with 50 objects each (the same 100,000);

then times in one run ``evaluate`` (VOC AP at 0.5 and COCO mAP through
faster-coco-eval, with ``max_dets`` at its default, the most detections of any
image, or ``--max-dets``), each half alone, and the Evaluate widget's sorting
of the boxes into true positives, false positives and missed
(``layers.evaluation_layers.mark_annotations``).

Target (issue 12): the large images take at most 2x the time of the baseline.
The code before issue 12 is measured by running this script with PYTHONPATH
set to that version's src/ (its matching compared every pair of boxes of an
image and faster-coco-eval compared every detection with every box of an
image and class).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import measure, report  # noqa: E402

from napari_faster_rcnn.core.data.annotations import Annotation  # noqa: E402
from napari_faster_rcnn.core.evaluation.coco import coco_evaluation  # noqa: E402
from napari_faster_rcnn.core.evaluation.metrics import evaluate, voc_evaluation  # noqa: E402
from napari_faster_rcnn.layers.evaluation_layers import mark_annotations  # noqa: E402

CLASSES = [f"class{k}" for k in range(5)]


def make_set(images: int, objects: int, side: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    ground, predicted = [], []
    for _ in range(images):
        size = rng.uniform(8, 40, (objects, 2))
        corner = rng.uniform(0, side - size)
        truth = np.column_stack([corner, corner + size])
        truth_labels = rng.integers(0, len(CLASSES), objects)
        found = rng.random(objects) < 0.85
        boxes = truth[found] + rng.normal(0, 1.5, (int(found.sum()), 4))
        labels = truth_labels[found].copy()
        wrong = rng.random(len(labels)) < 0.1
        labels[wrong] = rng.integers(0, len(CLASSES), int(wrong.sum()))
        false = int(0.15 * objects)
        size = rng.uniform(8, 40, (false, 2))
        corner = rng.uniform(0, side - size)
        boxes = np.concatenate([boxes, np.column_stack([corner, corner + size])])
        boxes = np.clip(boxes, 0, side)
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
        labels = np.concatenate([labels, rng.integers(0, len(CLASSES), false)])
        scores = np.round(np.where(np.arange(len(boxes)) < found.sum(), rng.uniform(0.3, 1.0, len(boxes)),
                                   rng.uniform(0.0, 0.8, len(boxes))), 3)
        ground.append(Annotation(truth, [CLASSES[k] for k in truth_labels]))
        predicted.append(Annotation(boxes, [CLASSES[k] for k in labels], scores))
    return ground, predicted


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--large-images", type=int, default=20)
    parser.add_argument("--objects", type=int, default=5000, help="objects per large image")
    parser.add_argument("--small-objects", type=int, default=50, help="objects per small image")
    parser.add_argument("--max-dets", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--check", action="store_true", help="exit 1 unless the large images take <= 2x the baseline")
    args = parser.parse_args(argv)

    small_images = args.large_images * args.objects // args.small_objects
    side_small = 512
    side_large = int(round(side_small * (args.objects / args.small_objects) ** 0.5))
    start = time.perf_counter()
    cases = {
        "large": make_set(args.large_images, args.objects, side_large, seed=1),
        "baseline": make_set(small_images, args.small_objects, side_small, seed=2),
    }
    made = time.perf_counter() - start
    evaluate(*make_set(3, 50, 512), max_dets=args.max_dets)  # warm-up
    times, results = {}, {}
    for name, (ground, predicted) in cases.items():
        times[name, "evaluate"], _, results[name] = measure(
            lambda: evaluate(ground, predicted, max_dets=args.max_dets), args.repeat)
        times[name, "voc"], _, _ = measure(lambda: voc_evaluation(ground, predicted), args.repeat)
        cap = results[name].max_dets
        times[name, "coco"], _, _ = measure(lambda: coco_evaluation(ground, predicted, max_dets=cap), 1)
        pairs = [(str(i), i, i) for i in range(len(ground))]
        times[name, "marks"], _, _ = measure(lambda: mark_annotations(
            results[name].voc, pairs, predicted, ground, len(predicted), len(ground)), args.repeat)
    ratio = times["large", "evaluate"] / times["baseline", "evaluate"]
    rows = [("", "evaluate s", "VOC s", "COCO s", "marks s", "VOC AP@0.5", "COCO mAP", "max_dets")]
    for name, label in (("large", f"large: {args.large_images} images x {args.objects} objects"),
                        ("baseline", f"baseline: {small_images} images x {args.small_objects} objects")):
        result = results[name]
        rows.append((label, f"{times[name, 'evaluate']:.3f}", f"{times[name, 'voc']:.3f}",
                     f"{times[name, 'coco']:.3f}", f"{times[name, 'marks']:.3f}", f"{result.voc.map:.4f}", f"{result.coco.map:.4f}",
                     result.max_dets))
    rows.append(("ratio large / baseline", f"{ratio:.3f}", f"{times['large', 'voc'] / times['baseline', 'voc']:.3f}",
                 f"{times['large', 'coco'] / times['baseline', 'coco']:.3f}",
                 f"{times['large', 'marks'] / times['baseline', 'marks']:.3f}", "", "", ""))
    report(
        "Evaluation of large crowded images against small images with the same boxes",
        rows,
        {
            "large_images": args.large_images,
            "objects_per_large_image": args.objects,
            "baseline_images": small_images,
            "ground_truth": sum(len(a) for a in cases["large"][0]),
            "detections": sum(len(a) for a in cases["large"][1]),
            "setup_seconds": round(made, 2),
            **{f"{name}_{part}_seconds": round(value, 4) for (name, part), value in times.items()},
            "ratio_evaluate": round(ratio, 4),
            "large_voc_map": round(results["large"].voc.map, 6),
            "large_coco_map": round(results["large"].coco.map, 6),
            "baseline_voc_map": round(results["baseline"].voc.map, 6),
            "baseline_coco_map": round(results["baseline"].coco.map, 6),
        },
    )
    if args.check and ratio > 2.0:
        print(f"FAILED: the large images took {ratio:.2f}x the baseline, more than 2x", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
