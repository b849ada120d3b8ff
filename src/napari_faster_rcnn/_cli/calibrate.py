"""Choose the score threshold per class and the NMS IoU from labeled images: those of the best
F1 (--objective f1, the default), or those whose predicted counts per image come nearest the
true counts (--objective count).

--pred holds raw detections (predict --raw), paired with the ground truth of --gt
by file name, as evaluate pairs them. A detection is a true positive when it
overlaps a ground-truth box of its class with IoU 0.5 or more that no better
scored detection took (one prediction per truth, greedy by score). Every score
threshold of every class is tried, with each NMS IoU of 0.3 to 0.8, 0.9 and 1 (off).
Predictions written with thresholds already applied can be calibrated too, but
only thresholds above the applied ones can be told apart (a note says so).

--out writes the thresholds as thresholds.json ("class_score_thresholds" holds
each class's threshold, "score_threshold" the best single one, for other
classes): predict --thresholds reads it, and so does "Tune predictions" when it
lies in the predictions folder.
"""

from __future__ import annotations

from napari_faster_rcnn._cli._common import add_folder_arguments

HELP = "choose score thresholds per class and the NMS IoU from labeled images (best F1 or counts)"


def configure(parser) -> None:
    add_folder_arguments(
        parser, pred_help="raw detections (predict --raw): .pt/.json files with scores, named after the images",
        classes_default="the list the ground-truth or else the prediction files carry")
    parser.add_argument("--objective", choices=("f1", "count"), default="f1",
                        help="f1: the best F1 per class (default); count: predicted counts per image nearest the "
                        "true ones")
    parser.add_argument("--out", metavar="FILE",
                        help="write the thresholds here (a thresholds.json for predict --thresholds; a folder: "
                        "FOLDER/thresholds.json); replaced if there")
    parser.add_argument("--json", action="store_true",
                        help="print a JSON object (thresholds, objective, value, micro_f1, per_class, by_nms, notes)")


def run(args) -> int:
    import json
    import sys
    from pathlib import Path

    from napari_faster_rcnn.core.data.annotations import THRESHOLDS_FILE
    from napari_faster_rcnn.core.evaluation.pairing import load_evaluation_folders
    from napari_faster_rcnn.core.prediction.calibration import calibrate
    from napari_faster_rcnn.core.prediction.thresholds import save_thresholds_file

    classes = [name.strip() for name in args.classes.split(",") if name.strip()] if args.classes else None
    folders = load_evaluation_folders(args.gt, args.pred)
    result = calibrate(folders.ground_truths, folders.predictions, args.objective, classes=classes,
                       image_sizes=folders.image_sizes)
    notes = [*folders.notes, *result.notes]
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    written = None
    if args.out:
        path = Path(args.out)
        if path.is_dir():
            path = path / THRESHOLDS_FILE
        written = save_thresholds_file(path, result.thresholds)
    if args.json:
        summary = result.to_dict()
        summary["notes"] = notes
        summary["written"] = None if written is None else str(written)
        print(json.dumps(summary, indent=1))
    else:
        print(format_table(result))
        if written is not None:
            print(f"written to {written}")
    return 0


def format_table(result) -> str:
    """The calibration as a plain-text table."""
    thresholds = result.thresholds
    width = max([len("class"), *(len(name) for name in result.per_class)])
    lines = [
        f"{result.images} images, objective {result.objective}, NMS IoU {thresholds.nms_threshold:g}",
        f"{'class':<{width}}  {'ground truth':>12}  {'threshold':>9}  {'kept':>6}  {'precision':>9}  "
        f"{'recall':>6}  {'F1':>6}  {'count error':>11}",
    ]
    for name, stats in result.per_class.items():
        precision = "-" if stats["precision"] != stats["precision"] else f"{stats['precision']:.4f}"
        lines.append(
            f"{name:<{width}}  {stats['ground_truth']:>12}  {stats['score_threshold']:>9.4f}  {stats['predictions']:>6}"
            f"  {precision:>9}  {stats['recall']:>6.4f}  {stats['f1']:>6.4f}  {stats['count_error']:>11}"
        )
    total_error = sum(stats["count_error"] for stats in result.per_class.values())
    macro = sum(stats["f1"] for stats in result.per_class.values()) / max(len(result.per_class), 1)
    lines.append(f"macro F1 {macro:.4f}   micro F1 {result.micro_f1:.4f}   count error {total_error}   "
                 f"other classes: score >= {thresholds.score_threshold:.4f}")
    return "\n".join(lines)
