"""Reading a stack's planes for prediction: the stack kept open between planes.

A ``(planes, size, size)`` uint16 TIFF stack ((50, 1024, 1024) by default). In one run:

- baseline: :func:`~napari_faster_rcnn.core.data.stack_files.read_plane` of every plane, each call
  opening the file's stack again (what each plane of a prediction run cost before);
- measured: :meth:`~napari_faster_rcnn.core.prediction.stacks.StackPlane.read` of every plane
  of :func:`~napari_faster_rcnn.core.prediction.stacks.stack_items`, as a prediction run's reader
  thread reads them (the stack opened once, kept for the next plane).

Both give the same pixels (checked). Reported: milliseconds per plane and their ratio; target
(``--check``): the ratio at most 0.6.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report  # noqa: E402

TARGET = 0.6


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--planes", type=int, default=50)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--check", action="store_true", help=f"exit 1 when the ratio is above {TARGET}")
    args = parser.parse_args(argv)

    import tifffile

    from napari_faster_rcnn.core.data.stack_files import read_plane
    from napari_faster_rcnn.core.prediction.stacks import stack_items

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "stack.tif"
        pixels = np.random.default_rng(0).integers(0, 4096, (args.planes, args.size, args.size), dtype=np.uint16)
        tifffile.imwrite(path, pixels, photometric="minisblack")
        del pixels
        start = time.perf_counter()
        last_baseline = None
        for plane in range(args.planes):
            last_baseline = read_plane(path, (plane,))
        baseline = (time.perf_counter() - start) / args.planes
        start = time.perf_counter()
        last = None
        for item in stack_items(path):
            last = item.read()
        measured = (time.perf_counter() - start) / args.planes
        assert np.array_equal(last, last_baseline)
    ratio = measured / baseline
    report(f"stack planes read for prediction ({args.planes} x {args.size} x {args.size} uint16)", [
        ("read_plane, opened per plane (baseline)", f"{baseline * 1000:.1f} ms/plane"),
        ("StackPlane.read, kept open", f"{measured * 1000:.1f} ms/plane"),
        ("ratio", f"{ratio:.2f} (target <= {TARGET})"),
    ], {"baseline_ms": baseline * 1000, "measured_ms": measured * 1000, "ratio": ratio})
    if args.check and ratio > TARGET:
        print(f"ratio {ratio:.2f} above the target {TARGET}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
