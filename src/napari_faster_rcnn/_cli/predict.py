"""Predict images with a trained checkpoint: one annotation file per image (boxes, labels as
class names, scores, classes) in --out, named after the image, and thresholds.json.

IMAGES is a dataset folder (input/ + target/, or images with annotations beside
them; its images are found as the reader finds them) or image files. The boxes
written pass the score threshold and per-class NMS (--score, --nms, --classes,
or a thresholds.json saved by "Tune predictions" with --thresholds; flags given
win over the file). With --raw the raw detections are written instead (the
model's own score threshold and NMS relaxed) and thresholds.json holds the
values to start tuning from: open the folder in napari and use "Tune predictions".
Files already in --out are not replaced unless --overwrite.

An image larger than --tile pixels is predicted in overlapping tiles of that
size (--overlap, a fraction of the tile), at the scale the model was trained
at, and the detections of its tiles are merged so that an object cut by a
tile's border is one box. Both default from the checkpoint's training images;
--tile 0 predicts each image whole, in one pass.

A stack (a multi-page TIFF or OME-TIFF: a time-lapse or a z stack) is predicted
plane by plane and written as ONE file, NAME.pt (or .json), whose boxes carry
their plane ("planes": each box's leading coordinates); predictions are not
labels, so the file has no "labeled_planes". --planes chooses planes along the
first leading dimension: 5, 3:7 (planes 3 to 6: the end is excluded, as in
Python), 3: (from 3 on), :4, or several joined by commas (0,10:12); planes are
counted from 0, as napari's slider counts them. Folders may mix stacks and 2-D
images; --planes concerns the stacks only. The progress bar counts images and
planes.
"""

from __future__ import annotations

from napari_faster_rcnn._cli._common import check_batch_and_tiles

HELP = "predict images with a trained checkpoint, one annotation file per image"


def configure(parser) -> None:
    parser.add_argument("checkpoint", metavar="CHECKPOINT", help="a training checkpoint (best.ckpt, last.ckpt)")
    parser.add_argument("images", metavar="IMAGES", nargs="+", help="a dataset folder or image files")
    parser.add_argument("--out", required=True, metavar="DIR", help="the folder the prediction files go into")
    parser.add_argument("--score", type=float, metavar="S",
                        help="keep boxes scoring at least this (default 0.5, or the checkpoint config's "
                        "box_score_thresh when it sets one other than torchvision's 0.05)")
    parser.add_argument("--nms", type=float, metavar="IOU",
                        help="per-class NMS IoU threshold, 1 keeps overlapping boxes (default: the checkpoint "
                        "config's box_nms_thresh, 0.5)")
    parser.add_argument("--classes", metavar="A,B,...", help="keep only these classes (default: all)")
    parser.add_argument("--thresholds", metavar="FILE",
                        help="a thresholds.json saved with tuned predictions (or the folder holding one)")
    parser.add_argument("--raw", action="store_true",
                        help="write the raw detections, no thresholds applied (thresholds.json: where tuning starts)")
    parser.add_argument("--format", choices=("pt", "json"), default="pt", help="annotation file format (default pt)")
    parser.add_argument("--batch-size", type=int, default=4, metavar="N",
                        help="images (or tiles) per forward pass (default 4)")
    parser.add_argument("--tile", type=int, metavar="SIZE",
                        help="predict images larger than this in overlapping tiles of SIZE x SIZE pixels, merged; "
                        "0: each image whole (default: the checkpoint's training image size at the model's scale)")
    parser.add_argument("--overlap", type=float, metavar="FRACTION",
                        help="the tiles' overlap, a fraction of the tile from 0 to 0.9 (default: from the "
                        "checkpoint's training boxes, 0.1 to 0.5)")
    parser.add_argument("--planes", metavar="RANGE",
                        help="the planes of each stack to predict, along its first leading dimension (time or z): "
                        "5, 3:7 (3 to 6, the end excluded), 3:, :4, or several joined by commas; counted from 0 "
                        "(default: every plane)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"),
                        help="where the model runs (default auto: a CUDA GPU, else MPS, else the CPU)")
    parser.add_argument("--overwrite", action="store_true", help="replace prediction files already in --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def chosen_thresholds(args, config):
    """The thresholds from --thresholds, --score, --nms and --classes over the checkpoint's defaults."""
    import json
    from pathlib import Path

    from napari_faster_rcnn.core.data.annotations import THRESHOLDS_FILE
    from napari_faster_rcnn.core.prediction.settings import starting_thresholds
    from napari_faster_rcnn.core.prediction.thresholds import Thresholds

    thresholds = starting_thresholds(config)
    if args.thresholds:
        path = Path(args.thresholds)
        if path.is_dir():
            path = path / THRESHOLDS_FILE
        try:
            thresholds = Thresholds.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: no such thresholds file") from None
        except (OSError, UnicodeDecodeError, ValueError, TypeError) as error:
            raise ValueError(f"{path}: not a thresholds file ({error})") from None
    changes = {}
    for flag, key in (("score", "score_threshold"), ("nms", "nms_threshold")):
        value = getattr(args, flag)
        if value is not None:
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"--{flag} must be from 0 to 1, got {value}")
            changes[key] = value
    if "score_threshold" in changes:  # --score is one threshold for every class
        changes["class_score_thresholds"] = None
    if args.classes:
        changes["classes"] = tuple(name.strip() for name in args.classes.split(",") if name.strip())
    return thresholds.replace(**changes) if changes else thresholds


def run(args) -> int:
    import sys
    import time

    from tqdm.auto import tqdm

    from napari_faster_rcnn.core.model.checkpoints import load_checkpoint
    from napari_faster_rcnn.core.prediction.folders import predict_folder
    from napari_faster_rcnn.core.prediction.settings import resolve_device
    from napari_faster_rcnn.core.prediction.tiles import chosen_tiling

    check_batch_and_tiles(args)
    if args.planes is not None:
        from napari_faster_rcnn.core.prediction.stacks import parse_planes

        try:
            parse_planes(args.planes)
        except ValueError as error:
            raise ValueError(f"--planes: {error}") from None
    device = resolve_device(args.device)
    start = time.perf_counter()
    checkpoint = load_checkpoint(args.checkpoint, device=device)
    thresholds = chosen_thresholds(args, checkpoint.config)
    tiling = chosen_tiling(checkpoint.config, checkpoint.training_images, args.tile, args.overlap)
    bars = []

    def progress(record) -> None:
        if not bars:  # made at the first image, so a refusal to overwrite prints no bar
            bars.append(tqdm(total=record.total, desc="predicting", unit="image", disable=args.quiet,
                             file=sys.stderr))
        bar = bars[0]
        bar.total = record.total  # unreadable images are left out of it as they are found
        if record.plane is not None:  # a stack counts its planes, and says which one is done
            bar.unit = "plane"
            bar.set_description(f"{record.source.stem} plane {','.join(map(str, record.plane))}", refresh=False)
        bar.update(record.done - bar.n)

    tile_bars = []

    def tile_progress(record) -> None:
        """The tiles of the image in progress, a bar of its own (a large image is minutes of tiles)."""
        if not tile_bars:
            tile_bars.append(tqdm(total=record.tiles, desc="tiles of the image", unit="tile", leave=False,
                                  disable=args.quiet, file=sys.stderr))
        bar = tile_bars[0]
        bar.set_description(f"tiles of image {record.images_done + 1} of {record.total}", refresh=False)
        if bar.total != record.tiles or record.done < bar.n:  # the next tiled image
            bar.reset(total=record.tiles)
        bar.update(record.done - bar.n)

    try:
        result = predict_folder(checkpoint, args.images, args.out, thresholds=thresholds, raw=args.raw,
                                suffix=f".{args.format}", batch_size=args.batch_size, device=None,
                                overwrite=args.overwrite, progress=progress, tiling=tiling, planes=args.planes,
                                tile_progress=tile_progress)
    finally:
        for bar in tile_bars + bars:
            bar.close()
    for path, reason in result.skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    applied = "raw detections (no thresholds applied)" if args.raw else describe(thresholds)
    tiles = (f"{result.tiled} images in {tiling.describe()} ({result.summary.tiles} forward passes)"
             if tiling.enabled else "each image whole (--tile 0)")
    stacks = f" ({result.stacks} stacks, {result.planes} planes)" if result.stacks else ""
    print(f"{len(result.written)} images{stacks}, {result.boxes} boxes, {result.summary.seconds:.1f} s on {device} "
          f"({time.perf_counter() - start:.1f} s with loading), "
          f"{len(result.skipped)} skipped; {applied}; written to {result.out_dir} "
          f"(with {result.thresholds_file.name}); {tiles}")
    return 0


def describe(thresholds) -> str:
    """The thresholds in words, for the results line."""
    text = f"score >= {thresholds.score_threshold:g}, NMS IoU {thresholds.nms_threshold:g}"
    if thresholds.class_score_thresholds:
        text += " (per class: " + ", ".join(f"{name} >= {value:.3g}"
                                            for name, value in thresholds.class_score_thresholds) + ")"
    if thresholds.classes is not None:
        text += f", classes {','.join(thresholds.classes)}"
    return text
