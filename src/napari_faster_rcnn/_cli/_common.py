"""Arguments shared by several subcommands."""

from __future__ import annotations


def add_folder_arguments(parser, *, pred_help: str, classes_default: str) -> None:
    """``--gt``, ``--pred`` and ``--classes``: a ground-truth folder, a predictions folder paired with
    it by file name, and the class list integer labels resolve against (``evaluate``, ``calibrate``).

    ``pred_help`` says what ``--pred`` holds; ``classes_default`` where the class list comes from
    without ``--classes``.
    """
    parser.add_argument("--gt", required=True, metavar="DIR",
                        help="ground truth: a dataset folder (input/ + target/, images with annotations beside them) "
                        "or a folder of annotation files")
    parser.add_argument("--pred", required=True, metavar="DIR", help=pred_help)
    parser.add_argument("--classes", metavar="A,B,...",
                        help=f"the class list in class-id order, for integer labels (default: {classes_default})")


def check_batch_and_tiles(args) -> None:
    """``ValueError`` naming the flag when ``--batch-size``, ``--tile`` or ``--overlap`` is out of range
    (``predict``, ``rank``)."""
    from napari_faster_rcnn.core.prediction.tiles import MIN_TILE

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.tile is not None and args.tile != 0 and args.tile < MIN_TILE:
        raise ValueError(f"--tile must be 0 (each image whole) or at least {MIN_TILE} pixels, got {args.tile}")
    if args.overlap is not None and not 0.0 <= args.overlap <= 0.9:
        raise ValueError(f"--overlap must be a fraction from 0 to 0.9, got {args.overlap}")
