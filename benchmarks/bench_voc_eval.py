"""Pascal VOC evaluation of a large set, with faster-coco-eval's COCO evaluation beside it.

Generates N images (5,000 by default) with 0-20 ground-truth boxes and 100
detections each over 10 classes (detections near true boxes, some with the
wrong class, some anywhere), then times in one run

- ours: ``voc_evaluation`` (AP per class, PR curves, per-box flags);
- reference: ``coco_evaluation`` (faster-coco-eval: evaluate, accumulate,
  summarize over 10 IoU thresholds, plus our conversion to its input), and the
  library's own calls alone on prepared input.

Target (issue 6): the VOC evaluation under 2 seconds; the ratio to COCO is
reported for reference.
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
from napari_faster_rcnn.core.evaluation.coco import coco_evaluation
from napari_faster_rcnn.core.evaluation.metrics import voc_evaluation


def make_set(images: int, detections: int, classes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    names = [f"class{k}" for k in range(classes)]
    ground, predicted = [], []
    for _ in range(images):
        n = int(rng.integers(0, 21))
        corner = rng.uniform(0, 900, (n, 2))
        truth = np.concatenate([corner, corner + rng.uniform(10, 120, (n, 2))], axis=1)
        truth_labels = rng.integers(0, classes, n)
        ground.append(Annotation(truth, [names[k] for k in truth_labels]))
        near = rng.random(detections) < 0.7 if n else np.zeros(detections, bool)
        source = rng.integers(0, max(n, 1), detections)
        corner = rng.uniform(0, 900, (detections, 2))
        boxes = np.concatenate([corner, corner + rng.uniform(10, 120, (detections, 2))], axis=1)
        if n:
            boxes[near] = truth[source[near]] + rng.normal(0, 6, (near.sum(), 4))
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
        labels = np.where(near, truth_labels[source] if n else 0, rng.integers(0, classes, detections))
        wrong = rng.random(detections) < 0.1
        labels[wrong] = rng.integers(0, classes, wrong.sum())
        predicted.append(Annotation(boxes, [names[k] for k in labels], rng.random(detections)))
    return ground, predicted


def library_alone(ground, predicted):
    """faster-coco-eval's evaluate + accumulate + summarize on input prepared beforehand."""
    from faster_coco_eval import COCO, COCOeval_faster

    names = sorted({label for a in ground + predicted for label in a.labels})
    ids = {name: i + 1 for i, name in enumerate(names)}
    annotations, rows = [], []
    for image, (g, p) in enumerate(zip(ground, predicted)):
        for box, label in zip(g.boxes.tolist(), g.labels):
            w, h = box[2] - box[0], box[3] - box[1]
            annotations.append({"id": len(annotations) + 1, "image_id": image + 1, "category_id": ids[label],
                                "bbox": [box[0], box[1], w, h], "area": w * h, "iscrowd": 0})
        xywh = np.column_stack([p.boxes[:, :2], p.boxes[:, 2:] - p.boxes[:, :2]])
        rows.append(np.column_stack([np.full(len(p), image + 1), xywh, p.scores, [ids[label] for label in p.labels]]))
    silent = lambda *a, **k: None  # noqa: E731
    dataset = {"images": [{"id": i + 1} for i in range(len(ground))], "annotations": annotations,
               "categories": [{"id": i, "name": n} for n, i in ids.items()]}
    results = np.concatenate(rows)

    def run():
        truth = COCO(dataset, print_function=silent)
        evaluator = COCOeval_faster(truth, truth.loadRes(results), iouType="bbox", print_function=silent)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
        return evaluator.stats

    return run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--detections", type=int, default=100)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--check", action="store_true", help="exit 1 unless the VOC evaluation takes under 2 s")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    ground, predicted = make_set(args.images, args.detections, args.classes)
    made = time.perf_counter() - start
    voc_evaluation(ground[:50], predicted[:50])  # warm-up
    voc_time, voc_peak, voc = measure(lambda: voc_evaluation(ground, predicted), args.repeat)
    coco_time, _, coco = measure(lambda: coco_evaluation(ground, predicted), 1)
    library_time, _, _ = measure(library_alone(ground, predicted), 1)
    ratio = voc_time / coco_time
    report(
        f"VOC evaluation of {args.images} images x {args.detections} detections, {args.classes} classes",
        [
            ("", "seconds", "mAP"),
            ("ours: voc_evaluation", f"{voc_time:.3f}", f"{voc.map:.4f} (AP@0.5)"),
            ("reference: coco_evaluation", f"{coco_time:.3f}",
             f"{coco.map:.4f} (mAP@[.5:.95]), {coco.map50:.4f} (@0.5)"),
            ("  faster-coco-eval alone", f"{library_time:.3f}", ""),
            ("ratio ours / coco_evaluation", f"{ratio:.3f}", ""),
        ],
        {
            "images": args.images,
            "detections": args.images * args.detections,
            "ground_truth": sum(len(a) for a in ground),
            "setup_seconds": round(made, 2),
            "voc_seconds": round(voc_time, 4),
            "voc_peak_mib": round(voc_peak / 2**20, 1),
            "coco_seconds": round(coco_time, 4),
            "coco_library_seconds": round(library_time, 4),
            "ratio_voc_to_coco": round(ratio, 4),
            "voc_map": round(voc.map, 6),
            "coco_map50": round(coco.map50, 6),
        },
    )
    if args.check and voc_time >= 2.0:
        print(f"FAILED: the VOC evaluation took {voc_time:.2f} s, not under 2 s", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
