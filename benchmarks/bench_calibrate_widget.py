"""The "Calibrate" button of Tune predictions in a real viewer: how long the viewer freezes.

2,000 synthetic images (64 x 64) with 100 raw detections each (their true boxes jittered, some with
another class, and random boxes with lower scores) in a predictions layer, the images' labels in the
box layer the reader opens from their folder (paged; paired by file name). A timer asks the event loop to tick every 5 ms;
the longest gap between ticks from the click until the sliders show the result is how long the
viewer froze. Baseline, in the same run: the calibration on the main thread, as the button ran it
before (``calibrate_predictions``), i.e. a freeze of its whole time.

Target (issue 14, "thousands of images do not freeze the viewer"): the longest gap under a quarter
of the baseline (what is left on the main thread: reading the layers' boxes, napari's worker start,
showing the result). Its milliseconds are reported; on a shared 2-core machine they vary with the
load. Run under a display (``xvfb-run -a``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--detections", type=int, default=100)
    parser.add_argument("--verbose", action="store_true", help="print the five longest gaps")
    parser.add_argument("--check", action="store_true", help="exit 1 unless the longest freeze is under a quarter "
                        "of the baseline")
    args = parser.parse_args(argv)

    import napari
    import torch
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    from napari_faster_rcnn._widgets.tune_predictions import TunePredictionsWidget
    from napari_faster_rcnn.core.data.annotations import Annotation, load_annotation
    from napari_faster_rcnn.core.data.synthetic import write_synthetic_dataset
    from napari_faster_rcnn.core.prediction.thresholds import Thresholds
    from napari_faster_rcnn.core.training.samples import dataset_classes
    from napari_faster_rcnn.layers import conventions, prediction_labels, predictions

    torch.set_num_threads(1)
    folder = Path(tempfile.mkdtemp(prefix="bench-calibrate-"))
    write_synthetic_dataset(folder / "data", args.images, seed=0, height=64, width=64)
    # the model's raw detections: each true box jittered (its class, or another one time in five)
    # with a high score, the rest random boxes with low scores, ``detections`` per image
    rng = np.random.default_rng(1)
    truths = [load_annotation(path) for path in sorted((folder / "data" / "target").glob("*.pt"))]
    classes = list(dataset_classes(truths))
    raw = []
    for truth in truths:
        extra = args.detections - len(truth)
        corner = rng.uniform(0, 56, (extra, 2))
        boxes = np.concatenate([truth.boxes + rng.normal(0, 1.5, truth.boxes.shape),
                                np.concatenate([corner, corner + rng.uniform(4, 20, (extra, 2))], axis=1)])
        labels = [label if rng.random() > 0.2 else classes[rng.integers(len(classes))] for label in truth.labels]
        labels += [classes[k] for k in rng.integers(0, len(classes), extra)]
        scores = np.concatenate([rng.uniform(0.3, 1.0, len(truth)), rng.uniform(0.0, 0.6, extra)])
        raw.append(Annotation(np.clip(boxes, 0, 64), labels, scores, classes=classes))
    names = [str(path) for path in sorted((folder / "data" / "input").glob("*.png"))]
    app = QApplication.instance() or QApplication([])
    viewer = napari.Viewer()
    viewer.open(folder / "data", plugin="napari-faster-rcnn")  # the labels, paged as the reader opens them
    labels = next(layer for layer in viewer.layers if conventions.is_boxes(layer))
    predicted = predictions.add_prediction_layer(viewer, raw, Thresholds(0.05, 0.7), name="predictions",
                                                 classes=classes, metadata={conventions.SOURCE_IMAGES: names})
    widget = TunePredictionsWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.labels.set_layer(labels)
    widget.predictions.setCurrentIndex(widget.predictions.findData(predicted))
    app.processEvents()

    start = time.perf_counter()
    expected = prediction_labels.calibrate_predictions(predicted, labels, "f1")  # the old button: all on the main thread
    baseline = time.perf_counter() - start

    ticks = []
    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    for _ in range(20):  # the timer running
        app.processEvents()
        time.sleep(0.005)
    clicked = time.perf_counter()
    ticks.append(clicked)
    widget.calibrate_button.click()
    main_part = time.perf_counter() - clicked
    while widget.last_calibration is None or not widget.calibrate_button.isEnabled():
        app.processEvents()
        time.sleep(0.001)
    done = time.perf_counter()
    ticks.append(done)
    timer.stop()
    during = [t for t in ticks if t >= clicked]
    gaps = np.diff(during)
    longest = float(np.max(gaps))
    if args.verbose:
        for at in np.argsort(gaps)[::-1][:5]:
            print(f"gap of {gaps[at] * 1e3:.0f} ms at {(during[at] - clicked) * 1e3:.0f} ms after the click")
    result = widget.last_calibration
    assert result.thresholds == expected.thresholds, "the worker's calibration differs from the main thread's"
    assert widget.thresholds() == expected.thresholds
    viewer.close()
    shutil.rmtree(folder, ignore_errors=True)

    report(
        f"Calibrate button: {args.images} images x {args.detections} raw detections, {len(classes)} classes",
        [
            ("", "ms", "baseline ms", "ratio"),
            ("longest freeze of the event loop (click to result)", f"{longest * 1e3:.1f}", f"{baseline * 1e3:.1f}",
             f"{longest / baseline:.3f}"),
            ("  the click's handler (layers read, worker started)", f"{main_part * 1e3:.1f}", "", ""),
            ("  click to result shown", f"{(done - clicked) * 1e3:.1f}", "", ""),
        ],
        {"images": args.images, "detections": args.detections, "longest_freeze_ms": round(longest * 1e3, 1),
         "baseline_ms": round(baseline * 1e3, 1), "ratio": round(longest / baseline, 4),
         "handler_ms": round(main_part * 1e3, 1), "click_to_result_ms": round((done - clicked) * 1e3, 1)},
    )
    failures = []
    if longest >= baseline / 4:
        failures.append(f"the freeze is {longest / baseline:.2f} of the baseline (not under 0.25)")
    if args.check and failures:
        print("FAILED: " + "; ".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
