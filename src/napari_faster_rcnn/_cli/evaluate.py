"""Evaluate a folder of predictions against ground truth: Pascal VOC AP per class at an IoU
threshold, their mean, and COCO mAP@[.5:.95], mAP@0.5 and mAP@0.75.

Predictions and ground truth are paired by file name. Integer labels ("1", on
either side) are read as class ids (1 = the first class) of a class list:
--classes, else the classes of --checkpoint, else the list the ground-truth files
carry, else the one the prediction files carry. Ground-truth boxes follow
training's rule (clipped to the image, dropped without area; counted in
dropped_boxes). What the numbers may hide ends the table as "warning:" lines
(with --json: in its "warnings", and on stderr). Predictions are measured after
the per-class NMS of the thresholds.json beside them (--nms to choose another,
1 for none), as predict and Tune predictions show them: raw detections
(predict --raw) hold every overlapping box of an object, and each but one would
count as a false positive. Scores are never cut: AP needs them all.
"""

from __future__ import annotations

from napari_faster_rcnn._cli._common import add_folder_arguments

HELP = "evaluate predictions against ground truth (Pascal VOC AP per class, COCO mAP)"


def configure(parser) -> None:
    add_folder_arguments(
        parser, pred_help="predictions: a folder of .pt/.json files with scores, named after the images",
        classes_default="--checkpoint's, else the list the ground-truth or else the prediction files carry")
    parser.add_argument("--iou", type=float, default=0.5, help="IoU threshold of the VOC AP (default 0.5)")
    parser.add_argument("--checkpoint", metavar="CKPT",
                        help="a training checkpoint whose class list (in class-id order) resolves integer labels")
    parser.add_argument("--max-dets", type=int, default=None, metavar="N",
                        help="the most detections per image and class COCO mAP counts, the highest scoring (default: the "
                        "largest number of any image, at least 100)")
    parser.add_argument("--nms", type=float, default=None, metavar="IOU",
                        help="per-class NMS IoU applied to the predictions first (default: that of thresholds.json "
                        "beside them, none without one; 1: none)")
    parser.add_argument("--json", action="store_true",
                        help="print a JSON object (voc_map, coco_map, coco_map50, coco_map75, per_class, ...)")


def run(args) -> int:
    import json
    import sys

    from napari_faster_rcnn.core.evaluation.metrics import evaluate
    from napari_faster_rcnn.core.evaluation.pairing import load_evaluation_folders

    if not 0.0 < args.iou <= 1.0:
        raise ValueError(f"--iou must be in (0, 1], got {args.iou}")
    if args.max_dets is not None and args.max_dets < 1:
        raise ValueError(f"--max-dets must be at least 1, got {args.max_dets}")
    classes = [name.strip() for name in args.classes.split(",") if name.strip()] if args.classes else None
    if classes is None and args.checkpoint:
        from napari_faster_rcnn.core.model.checkpoints import checkpoint_classes

        classes = checkpoint_classes(args.checkpoint)
    if args.nms is not None and not 0.0 < args.nms <= 1.0:
        raise ValueError(f"--nms must be in (0, 1], got {args.nms}")
    folders = load_evaluation_folders(args.gt, args.pred)
    predictions, nms_note = _with_nms(folders.predictions, args.pred, args.nms)
    result = evaluate(folders.ground_truths, predictions, args.iou, classes, image_sizes=folders.image_sizes,
                      max_dets=args.max_dets, names=folders.names)
    notes = [*folders.notes, *([nms_note] if nms_note else [])]
    for note in [*notes, *result.notes]:
        print(f"note: {note}", file=sys.stderr)
    if args.json:
        for warning in result.warnings:  # the table ends with them; JSON keeps stdout for itself
            print(f"warning: {warning}", file=sys.stderr)
        summary = result.to_dict()
        summary["notes"] = [*notes, *summary["notes"]]
        print(json.dumps(summary, indent=1))
    else:
        print(format_table(result))
    return 0


def _with_nms(predictions, folder, nms):
    """``predictions`` after per-class NMS at ``nms`` (None: the IoU of ``folder``'s thresholds.json, none
    without one), scores kept whatever they are; and a note saying which, or None."""
    from pathlib import Path

    from napari_faster_rcnn.core.prediction.thresholds import Thresholds, apply_thresholds, load_thresholds

    note = None
    if nms is None:
        saved = load_thresholds(folder) if Path(folder).is_dir() else None
        if saved is None:
            return predictions, None
        nms = saved.nms_threshold
        note = (f"predictions measured after per-class NMS at IoU {nms:g}, from {Path(folder) / 'thresholds.json'} "
                "(--nms 1 measures them as they are)")
    if nms >= 1.0:
        return predictions, note
    rule = Thresholds(score_threshold=0.0, nms_threshold=nms)
    return [apply_thresholds(annotation, rule) for annotation in predictions], note


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
        f"   (at most {coco.max_dets} detections per image)"
    )
    lines.extend(f"warning: {warning}" for warning in result.warnings)
    return "\n".join(lines)


def _number(value: float) -> str:
    return "-" if value != value else f"{value:.4f}"
