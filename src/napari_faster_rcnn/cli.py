"""The ``napari-faster-rcnn`` command line.

Each subcommand lives in ``napari_faster_rcnn._cli.<name>`` with ``HELP``,
``configure(parser)`` and ``run(args) -> int``. Modules import torch and
friends inside ``run``, so ``--help`` stays fast. A module with
``PASSTHROUGH = True`` gets the raw arguments instead (``run(argv)``), for
commands that parse their own (Lightning's CLI).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from napari_faster_rcnn import __version__

#: subcommand name -> module; the order is the order of ``--help``.
COMMANDS = {
    "synthetic": "napari_faster_rcnn._cli.synthetic",
    "predict": "napari_faster_rcnn._cli.predict",
    "evaluate": "napari_faster_rcnn._cli.evaluate",
    "calibrate": "napari_faster_rcnn._cli.calibrate",
    "rank": "napari_faster_rcnn._cli.rank",
    "convert": "napari_faster_rcnn._cli.convert",
    "stats": "napari_faster_rcnn._cli.stats",
    "demo": "napari_faster_rcnn._cli.demo",
    "fit": "napari_faster_rcnn._cli.fit",
}


def _load(name: str):
    return importlib.import_module(COMMANDS[name])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-faster-rcnn",
        description="Label boxes, train, predict and evaluate torchvision Faster R-CNN detectors.",
        epilog="Run 'napari-faster-rcnn COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = _load(name)
        if getattr(module, "PASSTHROUGH", False):
            subparsers.add_parser(name, help=module.HELP, add_help=False)
            continue
        subparser = subparsers.add_parser(name, help=module.HELP, description=module.__doc__)
        module.configure(subparser)
        subparser.set_defaults(run=module.run)
    return parser


def main(argv=None) -> int:
    """Entry point of the console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in COMMANDS and getattr(_load(argv[0]), "PASSTHROUGH", False):
            return int(_load(argv[0]).run(argv[1:]) or 0)
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 0
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError) as error:
        # Errors a user can cause name the file and the reason; no traceback needed.
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
