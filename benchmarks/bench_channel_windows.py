"""Training windows of a large image of a microscope's channels, the model's channels chosen: peak memory
and time per window, read by region against the image read whole.

Writes a ``(4, SIDE, SIDE)`` uint16 OME-TIFF of axes ``CYX`` (four stains on pages of their own, tiles
of 512 px, deflate; smooth content with small bright nuclei, so that it compresses as a real slide
does), then, each in a fresh process so that the peak resident memory (RSS) is that of the one reading,
reads ``--windows`` windows of 512 x 512 at random places with the channels ``2,0`` (two stains, a third
of zeros):

- ours: :func:`~napari_faster_rcnn.core.training.sample_images.read_sample_window`, which reads only the
  tiles a window touches, of the chosen channels' pages (since 2026-12-03);
- before: what training did for chosen channels until then, each window cut from the image read whole
  (:func:`~napari_faster_rcnn.core.data.images.read_image` with the channels), as an uncached dataset
  reads every item.

Reports seconds per window, the peak RSS of each and its growth over the imports (torch), and the
ratios ours / before. The windows of both
are compared pixel for pixel in a third process (a checksum of each window).

Run: ``PYTHONPATH=src python benchmarks/bench_channel_windows.py`` (``--side``, ``--windows``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report  # noqa: E402

CHANNELS = (2, 0)
WINDOW = 512

CHILD = r"""
import json, resource, sys, time
import numpy as np
path, how, side, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
from napari_faster_rcnn.core.data.images import read_image
from napari_faster_rcnn.core.training.sample_images import read_sample_window
from napari_faster_rcnn.core.training.samples import TrainingSample
rng = np.random.default_rng(0)
corners = rng.integers(0, side - 512, (count, 2))
sample = TrainingSample(path, None)
imports = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # (torch and the rest, before any read)
sums = []
start = time.perf_counter()
for y, x in corners:
    if how == "ours":
        window = read_sample_window(sample, (x, y, x + 512, y + 512), (side, side), (2, 0))
        assert window is not None
    else:
        window = read_image(path, (2, 0))[y:y + 512, x:x + 512]
    sums.append(int(window.astype(np.int64).sum()))
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds_per_window": seconds / count, "peak_rss_mib": peak, "growth_mib": peak - imports,
                  "sums": sums}))
"""


def write_image(path: Path, side: int) -> None:
    import tifffile

    rng = np.random.default_rng(1)
    with tifffile.TiffWriter(path, ome=True) as writer:
        stains = np.empty((4, side, side), np.uint16)
        rows = np.arange(side)[:, None]
        for channel in range(4):
            stains[channel] = (200 + 100 * channel + (rows // 64) % 7 * 10).astype(np.uint16)
            for y, x in rng.integers(8, side - 8, (side * side // 20000, 2)):
                stains[channel, y - 6:y + 6, x - 6:x + 6] = 3000 + 200 * channel
        writer.write(stains, metadata={"axes": "CYX"}, tile=(512, 512), compression="zlib")


def run_child(path: Path, how: str, side: int, windows: int) -> dict:
    completed = subprocess.run([sys.executable, "-c", CHILD, str(path), how, str(side), str(windows)],
                               capture_output=True, text=True, check=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=6000, help="image side in pixels (default 6000)")
    parser.add_argument("--windows", type=int, default=8, help="windows read (default 8)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "stains.ome.tif"
        write_image(path, args.side)
        size = path.stat().st_size
        ours = run_child(path, "ours", args.side, args.windows)
        before = run_child(path, "before", args.side, args.windows)
    same = ours.pop("sums") == before.pop("sums")
    raw = 4 * args.side * args.side * 2
    results = {
        "image": f"(4, {args.side}, {args.side}) uint16 CYX, {raw / 2**20:.0f} MiB raw, {size / 2**20:.0f} MiB on disk",
        "windows": args.windows, "same_pixels": same, "ours": ours, "before": before,
        "time_ratio": ours["seconds_per_window"] / before["seconds_per_window"],
        "rss_ratio": ours["peak_rss_mib"] / before["peak_rss_mib"],
        "growth_ratio": ours["growth_mib"] / before["growth_mib"],
    }
    rows = [("", "s / window", "peak RSS (MiB)", "growth over the imports (MiB)"),
            ("ours (by region)", f"{ours['seconds_per_window']:.3f}", f"{ours['peak_rss_mib']:.0f}",
             f"{ours['growth_mib']:.0f}"),
            ("before (read whole)", f"{before['seconds_per_window']:.3f}", f"{before['peak_rss_mib']:.0f}",
             f"{before['growth_mib']:.0f}"),
            ("ratio ours / before", f"{results['time_ratio']:.3f}", f"{results['rss_ratio']:.3f}",
             f"{results['growth_ratio']:.3f}")]
    report(f"training windows of {results['image']}, channels 2,0 ({'same' if same else 'DIFFERENT'} pixels)",
           rows, results)
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
