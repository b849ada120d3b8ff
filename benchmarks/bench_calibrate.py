"""``calibrate`` on a large set: the score threshold per class and the NMS IoU of the best F1.

The set of ``bench_voc_eval.py``: N images (5,000 by default) with 0-20
ground-truth boxes and 100 raw detections each over 10 classes (detections
near true boxes, some with the wrong class, some anywhere). Times in one run:

- ours: ``calibrate`` (13 NMS values x every score threshold of every class),
  for the F1 and the count objectives;
- baseline: one ``voc_evaluation`` pass over the same detections (one AP
  computation, no NMS, no threshold search);
- for reference, the existing per-image NMS of ``DetectionSet.nms_mask`` for
  one NMS value (torchvision's ``nms`` image by image).

Target (issue 14): ``calibrate`` under 2 seconds; the ratio to one evaluation
pass is reported, and the CPU seconds of each beside the wall time (on a shared
machine the wall time counts the other processes' turns too). ``--check`` exits 1
when the wall time misses the target.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import measure, report  # noqa: E402
from bench_voc_eval import make_set  # noqa: E402

from napari_faster_rcnn.core.evaluation.metrics import voc_evaluation  # noqa: E402
from napari_faster_rcnn.core.prediction.calibration import NMS_CANDIDATES, calibrate  # noqa: E402
from napari_faster_rcnn.core.prediction.thresholds import DetectionSet  # noqa: E402

TARGET_SECONDS = 2.0


def cpu_seconds(function) -> float:
    """The CPU time of one call (this process's, whatever else the machine runs)."""
    start = time.process_time()
    function()
    return time.process_time() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--detections", type=int, default=100)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--check", action="store_true", help=f"exit 1 unless calibrate takes under {TARGET_SECONDS} s")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    ground, predicted = make_set(args.images, args.detections, args.classes)
    made = time.perf_counter() - start
    calibrate(ground[:50], predicted[:50])  # warm-up
    f1_time, f1_peak, f1 = measure(lambda: calibrate(ground, predicted, "f1"), args.repeat)
    f1_cpu = cpu_seconds(lambda: calibrate(ground, predicted, "f1"))
    count_time, _, count = measure(lambda: calibrate(ground, predicted, "count"), 1)
    voc_time, _, voc = measure(lambda: voc_evaluation(ground, predicted), args.repeat)
    voc_cpu = cpu_seconds(lambda: voc_evaluation(ground, predicted))
    detections = DetectionSet(predicted)
    nms_time, _, _ = measure(lambda: detections.nms_mask(0.5), 1)
    ratio = f1_time / voc_time
    load = os.getloadavg()[0]
    report(
        f"calibrate on {args.images} images x {args.detections} detections, {args.classes} classes, "
        f"{len(NMS_CANDIDATES)} NMS values",
        [
            ("", "seconds", "result"),
            ("ours: calibrate --objective f1", f"{f1_time:.3f}",
             f"macro F1 {f1.value:.4f}, NMS {f1.thresholds.nms_threshold:g}"),
            ("ours: calibrate --objective count", f"{count_time:.3f}", f"count error {count.value:g}"),
            ("baseline: one voc_evaluation pass", f"{voc_time:.3f}", f"mAP {voc.map:.4f}"),
            ("reference: DetectionSet NMS, one value", f"{nms_time:.3f}", "torchvision nms per image"),
            ("ratio calibrate / voc_evaluation", f"{ratio:.2f}", ""),
            ("CPU seconds (per call): calibrate f1, voc_evaluation", f"{f1_cpu:.3f}", f"{voc_cpu:.3f}"),
            ("load average (1 min) during the run", f"{load:.1f}", f"on {os.cpu_count()} CPUs"),
        ],
        {
            "images": args.images,
            "detections": args.images * args.detections,
            "setup_seconds": round(made, 2),
            "calibrate_f1_seconds": round(f1_time, 4),
            "calibrate_f1_peak_mib": round(f1_peak / 2**20, 1),
            "calibrate_count_seconds": round(count_time, 4),
            "voc_seconds": round(voc_time, 4),
            "detection_set_nms_seconds": round(nms_time, 4),
            "ratio_calibrate_to_voc": round(ratio, 3),
            "calibrate_f1_cpu_seconds": round(f1_cpu, 4),
            "voc_cpu_seconds": round(voc_cpu, 4),
            "load_average": round(load, 1),
            "macro_f1": round(f1.value, 6),
        },
    )
    slowest = max(f1_time, count_time)
    if args.check and slowest >= TARGET_SECONDS:
        print(f"FAILED: calibrate took {slowest:.2f} s, not under {TARGET_SECONDS} s", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
