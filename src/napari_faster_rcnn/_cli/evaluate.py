"""Evaluate a folder of predictions against ground truth: Pascal VOC AP per class at an IoU
threshold, their mean, and COCO mAP@[.5:.95], mAP@0.5 and mAP@0.75.

Predictions and ground truth are paired by file name. Integer labels in the
predictions ("1") are read as class ids against the ground truth's class list
(1 = the first class), or against --classes.
"""

from __future__ import annotations

HELP = "evaluate predictions against ground truth (Pascal VOC AP per class, COCO mAP)"


def configure(parser) -> None:
    parser.add_argument("--gt", required=True, metavar="DIR",
                        help="ground truth: a dataset folder (input/ + target/, images with annotations beside them) "
                        "or a folder of annotation files")
    parser.add_argument("--pred", required=True, metavar="DIR",
                        help="predictions: a folder of .pt/.json files with scores, named after the images")
    parser.add_argument("--iou", type=float, default=0.5, help="IoU threshold of the VOC AP (default 0.5)")
    parser.add_argument("--classes", metavar="A,B,...",
                        help="the class list in class-id order, for integer labels (default: the ground truth's)")
    parser.add_argument("--json", action="store_true",
                        help="print a JSON object (voc_map, coco_map, coco_map50, coco_map75, per_class, ...)")


def run(args) -> int:
    import json
    import sys

    from napari_faster_rcnn.core.evaluation.metrics import evaluate
    from napari_faster_rcnn.core.evaluation.pairing import load_evaluation_folders

    if not 0.0 < args.iou <= 1.0:
        raise ValueError(f"--iou must be in (0, 1], got {args.iou}")
    classes = [name.strip() for name in args.classes.split(",") if name.strip()] if args.classes else None
    folders = load_evaluation_folders(args.gt, args.pred)
    for note in folders.notes:
        print(f"note: {note}", file=sys.stderr)
    result = evaluate(folders.ground_truths, folders.predictions, args.iou, classes)
    if args.json:
        print(json.dumps(result.to_dict(), indent=1))
    else:
        print(format_table(result))
    return 0


def format_table(result) -> str:
    """The evaluation as a plain-text table."""
    voc, coco = result.voc, result.coco
    header = f"AP@{voc.iou_threshold:g}"
    width = max([len("class"), len("mean"), *(len(name) for name in voc.classes)])
    lines = [
        f"{result.images} images, IoU threshold {voc.iou_threshold:g}",
        f"{'class':<{width}}  {'ground truth':>12}  {'predictions':>11}  {header:>8}  {'COCO AP':>8}",
    ]
    for name in voc.classes:
        lines.append(
            f"{name:<{width}}  {voc.ground_truth_counts[name]:>12}  {voc.prediction_counts[name]:>11}  "
            f"{_number(voc.ap[name]):>8}  {_number(coco.per_class.get(name, float('nan'))):>8}"
        )
    lines.append(f"{'mean':<{width}}  {'':>12}  {'':>11}  {_number(voc.map):>8}  {_number(coco.map):>8}")
    lines.append(
        f"COCO mAP@[.5:.95] {_number(coco.map)}   mAP@0.5 {_number(coco.map50)}   mAP@0.75 {_number(coco.map75)}"
    )
    return "\n".join(lines)


def _number(value: float) -> str:
    return "-" if value != value else f"{value:.4f}"
