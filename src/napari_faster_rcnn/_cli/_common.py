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
