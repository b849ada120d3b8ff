"""Rank unlabeled images and planes by how much labeling them should help: which to label next.

IMAGES is a dataset folder (input/ + target/, or images with annotations beside
them) or image files; the unlabeled ones are those without an annotation file
where the folder rules look for one (target/NAME.pt or .json beside input/, or
NAME.pt or .json beside the image). A stack (multi-page TIFF, OME-TIFF, Zarr with
leading t/z dimensions) gives each of its UNLABELED planes, those not in its
annotation's "labeled_planes" (all of them when it has no annotation file); a plane
is named movie.tif[3] ([t,z] for two leading dimensions) and its --json object
carries "image" (the stack) and "plane" (its leading indices). An image (or a
stack's plane) of more than 16.8 megapixels that the checkpoint's tiling cuts into
tiles (as predict tiles it) is scored through its tiles, read one at a time: it
takes the place and score of its most useful tile, whose [x0, y0, x1, y1] its
--json object carries as "tile".
Each is predicted with CHECKPOINT, and with its mirror image, and scored from 0 to 1
by four measures of doubt, and by how new it is next to the labeled images:

  uncertainty    detections scoring near the score threshold (--score)
  confusion      boxes whose class the box head hesitates between
  disagreement   boxes the image and its mirror image do not agree on
  low_confidence no proposal the model is sure is an object (1 - the mean
                 foreground probability of its 3 surest proposals, image and
                 mirror image averaged): images unlike the training images
  novelty        the distance of the image's pooled backbone features to the
                 nearest labeled image's, among the labeled images, planes and
                 tiles found in IMAGES (those left out of the ranking), in units
                 of the images' spread; 0 and not counted when none is labeled

Each measure is put on a common scale, its percentile among the images ranked
(so that none counts more for being larger), and the informativeness is their
weighted mean (novelty 4 when labeled images are found, low_confidence 8,
disagreement 2, uncertainty 1, confusion 1). The first max(K, 16) images are then
chosen greedily among the 3 x max(K, 16) most informative: each next one of
highest informativeness minus --diversity times its cosine similarity (its
redundancy) to the images chosen before it, on the model's pooled features, so
that the top images are not near-duplicates; "score" is that value. The rest
follow by informativeness.
--json prints one JSON list of objects with image (plane, tile), score and the parts of the score.
"""

from __future__ import annotations

from napari_faster_rcnn._cli._common import check_batch_and_tiles

HELP = "rank unlabeled images and planes of stacks by how much labeling them should help (which to label next)"

PARTS = ("uncertainty", "confusion", "disagreement", "low_confidence", "novelty", "redundancy")


def configure(parser) -> None:
    parser.add_argument("checkpoint", metavar="CHECKPOINT", help="a training checkpoint (best.ckpt, last.ckpt)")
    parser.add_argument("images", metavar="IMAGES", nargs="+", help="a dataset folder or image files (stacks too)")
    parser.add_argument("--top", type=int, metavar="K", help="print only the K most useful images or planes (default: all)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON list of objects with image (and plane, for a plane of a stack), score and "
                        "the parts of the score")
    parser.add_argument("--score", type=float, metavar="S",
                        help="the score threshold detections are judged against (default: the checkpoint's, 0.5)")
    parser.add_argument("--diversity", type=float, default=0.5, metavar="D",
                        help="how much similarity to an image ranked higher costs among the first max(K, 16) "
                             "(default 0.5; 0: none)")
    parser.add_argument("--tile", type=int, metavar="SIZE",
                        help="score images (and stacks' planes) larger than SIZE x SIZE pixels through their tiles of "
                        "that size (at most 64, spread over the image; an image takes its most useful tile's place, "
                        "JSON key tile); 0: every image whole (default: images over 4096 x 4096 pixels, in the tiles "
                        "predict uses)")
    parser.add_argument("--overlap", type=float, metavar="FRACTION",
                        help="the tiles' overlap, a fraction of the tile from 0 to 0.9 (default: predict's)")
    parser.add_argument("--batch-size", type=int, default=4, metavar="N", help="images per forward pass (default 4)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"),
                        help="where the model runs (default auto: a CUDA GPU, else MPS, else the CPU)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    import json
    import sys

    from tqdm.auto import tqdm

    from napari_faster_rcnn.core.model.checkpoints import load_checkpoint
    from napari_faster_rcnn.core.prediction.rank_targets import find_rank_targets, iter_target_ranking
    from napari_faster_rcnn.core.prediction.settings import resolve_device
    from napari_faster_rcnn.core.prediction.tiles import chosen_tiling
    from napari_faster_rcnn.core.prediction.usefulness import RankingWeights
    from napari_faster_rcnn.core.progress import run_to_end

    if args.top is not None and args.top < 1:
        raise ValueError(f"--top must be at least 1, got {args.top}")
    check_batch_and_tiles(args)
    if args.score is not None and not 0.0 < args.score < 1.0:
        raise ValueError(f"--score must be between 0 and 1, got {args.score}")
    if args.diversity < 0:
        raise ValueError(f"--diversity must be 0 or more, got {args.diversity}")
    device = resolve_device(args.device)
    checkpoint = load_checkpoint(args.checkpoint, device=device)
    tiling = chosen_tiling(checkpoint.config, checkpoint.training_images, args.tile, args.overlap)
    # --tile SIZE: any image larger than a tile is scored through its tiles; by default only very large ones
    large = {} if args.tile is None else {"large_pixels": 0}
    targets, skipped, labeled = find_rank_targets(args.images, tiling, **large)
    for path, reason in skipped:
        if not reason.startswith("labeled"):
            print(f"skipped {path}: {reason}", file=sys.stderr)
    if not targets:
        raise ValueError(f"{', '.join(args.images)}: no unlabeled images ({len(labeled)} labeled)")
    bar = tqdm(total=len(targets) + len(labeled), desc="ranking", unit="image", disable=args.quiet, file=sys.stderr)

    def progress(step) -> None:
        if step.error is not None:
            bar.write(f"skipped {step.error}", file=sys.stderr)
        bar.total = step.total
        bar.update(step.done - bar.n)

    try:
        ranking = run_to_end(iter_target_ranking(checkpoint.model, targets, top=args.top, labeled=labeled,
                                                 weights=RankingWeights(diversity=args.diversity),
                                                 threshold=args.score, batch_size=args.batch_size), progress)
    finally:
        bar.close()
    whole = [target for target in targets if target.region is None]
    tiled = [target for target in targets if target.region is not None]
    planes = sum(target.plane is not None for target in whole)
    kinds = f"{len(whole) - planes} unlabeled images" + (f" and {planes} unlabeled planes" if planes else "")
    if tiled:
        large = {(t.image, t.plane) for t in tiled}
        large_planes = sum(plane is not None for _, plane in large)
        what = " and ".join(part for part in (
            f"{len(large) - large_planes} large images" if len(large) > large_planes else "",
            f"{large_planes} large planes" if large_planes else "") if part)
        kinds += f" and {what} in {len(tiled)} tiles"
    novelty = "; novelty against them" if labeled else ""
    print(f"{kinds} ranked ({len(labeled)} labeled left out{novelty})", file=sys.stderr)
    if args.json:
        print(json.dumps([entry.to_dict() for entry in ranking], indent=1))
        return 0
    print("rank   score  " + "  ".join(f"{name:>12}" for name in PARTS) + "  image")
    for entry in ranking:
        score = entry.score
        print(f"{score.rank:>4}  {score.score:6.3f}  " + "  ".join(f"{getattr(score, name):12.3f}" for name in PARTS)
              + f"  {entry.target.name}")
    return 0
