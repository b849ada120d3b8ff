"""Reading an image above Pillow's decompression-bomb limit: time and peak memory.

Writes black 14000 x 14000 PNGs (196 million pixels, above the 179 million
Pillow opens), 8-bit gray and 1-bit, and for each, in a fresh process per
measurement (so that the peak resident memory is that of one read),

- ours: ``image_header`` (the header alone) and ``read_image`` (the whole
  image as ``(H, W, 3)`` uint8);
- baseline: what the code before did, with Pillow's limit lifted in that
  process only: ``Image.open`` and ``np.asarray(image.convert("RGB"))`` for the
  1-bit image, ``np.asarray`` and ``np.repeat`` to RGB for the gray one.

Reports the times, the peak resident memory of each process, and the ratios
ours / baseline. Targets: the header < 0.1 s; reading no more memory than the
baseline (ratio <= 1.0) and about its time (ratio <= 1.25: the same work for
the gray image, where a shared machine's noise is that large).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import report  # noqa: E402

from tests.large_images import HUGE_SIDE, write_blank_png  # noqa: E402

CHILD = r"""
import json, resource, sys, time
import numpy as np
path, how = sys.argv[1], sys.argv[2]
start = time.perf_counter()
if how == "ours":
    from napari_faster_rcnn.core.data.images import image_header, read_image
    header_start = time.perf_counter()
    image_header(path)
    header = time.perf_counter() - header_start
    start = time.perf_counter()
    pixels = read_image(path)
else:
    from PIL import Image
    Image.MAX_IMAGE_PIXELS = None  # this process only
    header = float("nan")
    start = time.perf_counter()
    with Image.open(path) as image:
        if image.mode == "L":
            pixels = np.repeat(np.asarray(image)[:, :, None], 3, axis=2)
        else:
            pixels = np.asarray(image.convert("RGB"))
seconds = time.perf_counter() - start
assert pixels.shape == (%d, %d, 3)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"seconds": seconds, "header": header, "peak": peak}))
""" % (HUGE_SIDE, HUGE_SIDE)


def run_child(path: Path, how: str) -> dict:
    source = str(Path(__file__).resolve().parents[1] / "src")
    done = subprocess.run([sys.executable, "-c", CHILD, str(path), how], capture_output=True, text=True,
                          env={**__import__("os").environ, "PYTHONPATH": source}, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2, help="runs of each, alternating (fastest kept)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()
    rows, summary, ok = [("image", "ours s", "baseline s", "ratio", "ours MiB", "baseline MiB", "ratio", "header s")],\
        {}, True
    with tempfile.TemporaryDirectory() as folder:
        for name, depth in (("gray 8-bit", 8), ("1-bit", 1)):
            path = write_blank_png(Path(folder) / f"{depth}.png", bit_depth=depth)
            runs = {"ours": [], "baseline": []}
            for _ in range(args.repeat):
                for how in runs:
                    runs[how].append(run_child(path, how))
            ours = min(runs["ours"], key=lambda r: r["seconds"])
            base = min(runs["baseline"], key=lambda r: r["seconds"])
            peak_ours = min(r["peak"] for r in runs["ours"])
            peak_base = min(r["peak"] for r in runs["baseline"])
            time_ratio, memory_ratio = ours["seconds"] / base["seconds"], peak_ours / peak_base
            header = min(r["header"] for r in runs["ours"])
            rows.append((name, f"{ours['seconds']:.2f}", f"{base['seconds']:.2f}", f"{time_ratio:.2f}",
                         f"{peak_ours / 2**20:.0f}", f"{peak_base / 2**20:.0f}", f"{memory_ratio:.2f}",
                         f"{header:.4f}"))
            summary[name] = {"seconds": ours["seconds"], "baseline_seconds": base["seconds"], "time_ratio": time_ratio,
                             "peak_bytes": peak_ours, "baseline_peak_bytes": peak_base, "memory_ratio": memory_ratio,
                             "header_seconds": header}
            ok &= header < 0.1 and time_ratio <= 1.25 and memory_ratio <= 1.0
    report(f"read a {HUGE_SIDE} x {HUGE_SIDE} PNG (above Pillow's limit)", rows, {**summary, "ok": ok})
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
