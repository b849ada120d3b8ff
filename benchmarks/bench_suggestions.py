"""Box suggestions while labeling: boxes a person draws, and paging with suggestions on.

Two parts (``--part figure``, ``--part paging``, or both by default):

figure
    The ``cpu`` preset trained from scratch on the synthetic shapes (the demo's recipe and data:
    :func:`~napari_faster_rcnn.core.training.demo.run_demo`, 128 px images), until its VOC AP@0.5 on
    the held-out images is at least 0.8 (``--steps`` more each round, at most ``--rounds``
    rounds). On those held-out images the model's suggestions (score >= ``--score``, NMS 0.5) meet
    a simulated person (:func:`~napari_faster_rcnn.core.prediction.suggestions.simulated_labeling`)
    who accepts each suggestion matching a true box of its class with IoU >= 0.7 and draws the true
    boxes left. Reported: AP@0.5, and the boxes drawn as a fraction of labeling from scratch (where
    every true box is drawn). Target (issue 14): at least 50% fewer boxes drawn.

paging
    A folder of ``--images`` synthetic images opened with the plugin's reader and labeled in
    "Label boxes" in a real viewer (run under ``xvfb-run -a``). ``n`` is pressed through napari's
    key map with suggestions off (the baseline), then with suggestions on, every image's
    detections ready in the cache (a stub predictor returns each image's true boxes jittered,
    so that no model time mixes in: what paging adds is the filtering and the suggestions layer),
    in the same run; then ``Shift-K`` (accept all) and ``n`` (which saves the image left). Reported:
    the median times and the ratio on/off; target: ``n`` under 50 ms with suggestions on (accept all
    + next is reported, without a target).

``--check`` exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report  # noqa: E402

TARGET_FEWER = 0.5
TARGET_AP = 0.8
TARGET_PAGING = 0.050


def figure(args) -> dict:
    from napari_faster_rcnn.core.data.annotations import load_annotation
    from napari_faster_rcnn.core.model.checkpoints import load_checkpoint
    from napari_faster_rcnn.core.prediction.run import predict_images
    from napari_faster_rcnn.core.prediction.suggestions import SimulatedLabeling, simulated_labeling
    from napari_faster_rcnn.core.prediction.thresholds import Thresholds, apply_thresholds
    from napari_faster_rcnn.core.training.demo import run_demo

    output = Path(args.output or tempfile.mkdtemp(prefix="bench_suggestions_"))
    steps, results = 0, None
    for _ in range(args.rounds):
        steps += args.steps
        results = run_demo(output, train_images=args.train, validation_images=32, test_images=args.test,
                           steps=steps, size=args.size, seed=args.seed, overwrite=True, progress_bar=False,
                           say=lambda line: print(line, file=sys.stderr))
        if results["voc_map"] >= TARGET_AP:
            break
    loaded = load_checkpoint(results["checkpoint"])
    test = output / "data" / "test"
    images = sorted((test / "input").glob("*.png"))
    truths = [load_annotation(test / "target" / f"{path.stem}.pt") for path in images]
    records, _ = predict_images(loaded.model, images, loaded.classes, batch_size=4, read_ahead=0)
    thresholds = Thresholds(score_threshold=args.score, nms_threshold=0.5)
    total = SimulatedLabeling()
    for record, truth in zip(records, truths):
        total = total + simulated_labeling(truth, apply_thresholds(record.annotation, thresholds))
    summary = {
        "voc_ap50": round(results["voc_map"], 4),
        "steps": results["steps"],
        "training_seconds": results["training_seconds"],
        "test_images": len(images),
        "true_boxes": total.boxes,
        "accepted": total.accepted,
        "drawn_with_suggestions": total.drawn,
        "drawn_from_scratch": total.boxes,
        "drawn_fraction": round(total.drawn / total.boxes, 4),
        "fewer_drawn": round(total.fewer_drawn, 4),
        "suggestions_rejected": total.rejected,
        "score_threshold": args.score,
    }
    report("suggestions: boxes drawn by a simulated person", [
        ("VOC AP@0.5 (held-out)", f"{summary['voc_ap50']:.3f}", f"after {summary['steps']} steps"),
        ("true boxes", total.boxes),
        ("accepted suggestions", total.accepted),
        ("drawn with suggestions", total.drawn, f"{summary['drawn_fraction']:.1%} of from scratch"),
        ("rejected suggestions", total.rejected),
    ], summary)
    summary["ok"] = summary["voc_ap50"] >= TARGET_AP and summary["fewer_drawn"] >= TARGET_FEWER
    return summary


def paging(args) -> dict:
    import shutil

    import napari
    from qtpy.QtWidgets import QApplication

    from napari_faster_rcnn.core.data.annotations import Annotation, load_annotation
    from napari_faster_rcnn.core.data.synthetic import write_synthetic_dataset

    folder = Path(tempfile.mkdtemp(prefix="bench_suggestions_paging_")) / "data"
    write_synthetic_dataset(folder, n_images=args.images, seed=args.seed, height=256, width=256, objects=(20, 30),
                            sizes=(10, 24))
    truth = {path.stem: load_annotation(path) for path in (folder / "target").glob("*.pt")}
    shutil.rmtree(folder / "target")  # a folder to label: every true box is a suggestion
    (folder / "target").mkdir()
    rng = np.random.default_rng(0)

    def stub(item) -> Annotation:  # the truth, jittered, with scores: no model time
        annotation = truth[Path(item).stem]
        boxes = annotation.boxes + rng.normal(0, 1.0, annotation.boxes.shape)
        return Annotation(boxes, annotation.labels, scores=rng.uniform(0.3, 1.0, len(annotation)),
                          classes=annotation.classes)

    app = QApplication.instance() or QApplication([])
    viewer = napari.Viewer()
    viewer.window._qt_window.resize(1200, 800)
    viewer.open(folder, plugin="napari-faster-rcnn")
    viewer.dims.set_current_step(0, 0)
    _, widget = viewer.window.add_plugin_dock_widget("napari-faster-rcnn", "Label boxes")
    session = widget.session
    keys = viewer.window._qt_viewer._key_map_handler

    def press(name: str, count: int) -> list[float]:
        times = []
        for _ in range(count):
            app.processEvents()
            start = time.perf_counter()
            keys.press_key(name)
            times.append(time.perf_counter() - start)
        return times

    pages = min(args.pages, args.images - 1)
    off = press("n", pages)
    session.go_to(0)
    app.processEvents()
    widget.suggestions.use_predictor(stub, "stub")
    helper = widget.suggestions.suggestions
    for index in range(len(session)):  # every image ready: the figure is showing suggestions, not the model
        helper.cache.put(helper.image_key(index), stub(helper.image_item(index)))
    helper.show()
    app.processEvents()
    on = press("n", pages)
    shown = helper.layer.nshapes
    session.go_to(0)
    app.processEvents()
    accepting = []
    for _ in range(pages):  # accept all, then the next image: the accepted boxes saved on leaving
        app.processEvents()
        start = time.perf_counter()
        keys.press_key("Shift-K")
        keys.press_key("n")
        accepting.append(time.perf_counter() - start)
    saved = len(load_annotation(folder / "target" / f"{sorted(truth)[0]}.pt"))
    viewer.close()
    median = {name: statistics.median(values) for name, values in (("off", off), ("on", on), ("accept", accepting))}
    summary = {"images": args.images, "pages": pages, "suggestions_per_image": shown,
               "median_off_ms": round(median["off"] * 1e3, 2), "median_on_ms": round(median["on"] * 1e3, 2),
               "ratio_on_off": round(median["on"] / median["off"], 3),
               "median_accept_all_and_next_ms": round(median["accept"] * 1e3, 2), "boxes_saved_first_image": saved}
    report("suggestions: paging (n) in Label boxes, 256 px images", [
        ("n without suggestions", f"{summary['median_off_ms']} ms"),
        ("n with suggestions", f"{summary['median_on_ms']} ms", f"x{summary['ratio_on_off']}"),
        ("Shift-K then n", f"{summary['median_accept_all_and_next_ms']} ms"),
    ], summary)
    summary["ok"] = median["on"] < TARGET_PAGING  # (accept all + next: reported, no target)
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("figure", "paging", "all"), default="all")
    parser.add_argument("--steps", type=int, default=96, help="training steps per round (figure)")
    parser.add_argument("--rounds", type=int, default=4, help="rounds of --steps more at most (figure)")
    parser.add_argument("--train", type=int, default=256, help="training images (figure)")
    parser.add_argument("--test", type=int, default=100, help="held-out images (figure)")
    parser.add_argument("--size", type=int, default=128, help="image side in pixels (figure)")
    parser.add_argument("--score", type=float, default=0.5, help="suggestions' score threshold (figure)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=None, help="the training folder (figure; default: a temporary one)")
    parser.add_argument("--images", type=int, default=60, help="images of the folder (paging)")
    parser.add_argument("--pages", type=int, default=30, help="presses of n (paging)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    results = {}
    if args.part in ("figure", "all"):
        results["figure"] = figure(args)
    if args.part in ("paging", "all"):
        results["paging"] = paging(args)
    print(json.dumps({name: result["ok"] for name, result in results.items()}))
    return 1 if args.check and not all(result["ok"] for result in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
