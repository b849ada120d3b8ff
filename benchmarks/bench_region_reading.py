"""Reading a 30000 x 30000 tiled TIFF region by region: peak memory and time.

Writes a 30000 x 30000 uint8 gray TIFF with tifffile (tiles of 512 x 512,
deflate; smooth content with small bright objects, so that it compresses as a
real image does), then, each in a fresh process so that the peak resident
memory (RSS) is that of the one reading:

- ours: ``open_regions`` and ``read`` of every 1024 x 1024 region (the grid a
  tiled prediction walks; 30 x 30 regions), each as ``(h, w, 3)`` uint8;
- baseline: the same regions, made by decoding each of their tiles directly
  with tifffile (``TiffPage.decode`` of the tile's bytes) straight into an
  ``(h, w, 3)`` region, the least work that reading by region can do;
- reference: ``tifffile.imread`` of the whole image (what reading it whole costs).

Reports seconds per region and the peak RSS of each, and the ratios ours /
baseline. Targets (issue 12): ours stays far below the 2 GB that predicting the
image may take in all (peak RSS < 1 GiB, leaving the rest to the model), and
its time per region within 1.5x of the baseline's (it also makes the RGB copy).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report  # noqa: E402

SIDE, TILE, REGION = 30000, 512, 1024

CHILD = r"""
import json, resource, sys, time
import numpy as np
path, how, side, region = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
import tifffile, zarr  # imports outside the time
from napari_faster_rcnn.core.data.regions import open_regions
start = time.perf_counter()
checksum = 0
count = 0
if how == "ours":
    with open_regions(path) as regions:
        assert regions.by_region
        for y in range(0, side, region):
            for x in range(0, side, region):
                pixels = regions.read(y, y + region, x, x + region)
                checksum += int(pixels[::97, ::89, 0].sum())
                count += 1
elif how == "baseline":
    with tifffile.TiffFile(path) as tif:
        page, handle = tif.pages[0], tif.filehandle
        tiles_across = -(-side // page.tilewidth)
        tile = page.tilelength
        for y in range(0, side, region):
            for x in range(0, side, region):
                height, width = min(region, side - y), min(region, side - x)
                pixels = np.empty((height, width, 3), np.uint8)  # the same RGB output as ours
                for ty in range(y // tile, -(-(y + height) // tile)):
                    for tx in range(x // tile, -(-(x + width) // tile)):
                        index = ty * tiles_across + tx
                        handle.seek(page.dataoffsets[index])
                        data = handle.read(page.databytecounts[index])
                        segment = page.decode(data, index, jpegtables=page.jpegtables)[0][0, :, :, 0]
                        r0, c0 = ty * tile - y, tx * tile - x
                        rows, cols = min(tile, height - r0), min(tile, width - c0)
                        pixels[r0:r0 + rows, c0:c0 + cols] = segment[:rows, :cols, None]
                checksum += int(pixels[::97, ::89, 0].sum())
                count += 1
else:
    whole = tifffile.imread(path)
    for y in range(0, side, region):
        for x in range(0, side, region):
            checksum += int(whole[y:y + region, x:x + region][::97, ::89].sum())
            count += 1
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"seconds": seconds, "regions": count, "peak": peak, "checksum": checksum}))
"""


def write_image(path: Path, side: int) -> None:
    """Smooth background with bright 6-24 px squares, tile by tile (never the whole image in memory)."""
    import tifffile

    rng = np.random.default_rng(0)
    across = -(-side // TILE)
    rows, cols = np.mgrid[0:TILE, 0:TILE]

    def tiles():
        for ty in range(across):
            for tx in range(across):
                tile = ((rows + ty * TILE) // 64 + (cols + tx * TILE) // 64) % 40 + 20
                tile = tile.astype(np.uint8)
                for _ in range(8):
                    y, x, size = rng.integers(0, TILE - 24), rng.integers(0, TILE - 24), rng.integers(6, 24)
                    tile[y:y + size, x:x + size] = 200 + rng.integers(0, 55)
                yield tile

    with tifffile.TiffWriter(path, bigtiff=True) as writer:
        writer.write(tiles(), shape=(side, side), dtype=np.uint8, tile=(TILE, TILE), photometric="minisblack",
                     compression="zlib")


def run_child(path: Path, how: str, side: int) -> dict:
    source = str(Path(__file__).resolve().parents[1] / "src")
    done = subprocess.run([sys.executable, "-c", CHILD, str(path), how, str(side), str(REGION)],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": source}, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=SIDE, help="image side in pixels (default 30000)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of ours and the baseline, alternating")
    parser.add_argument("--no-reference", action="store_true", help="skip reading the image whole")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "large.tif"
        start = time.perf_counter()
        write_image(path, args.side)
        written = time.perf_counter() - start
        runs = {"ours": [], "baseline": []}
        for _ in range(args.repeat):
            for how in runs:
                runs[how].append(run_child(path, how, args.side))
        reference = None if args.no_reference else run_child(path, "whole", args.side)
        file_bytes = path.stat().st_size
    ours = min(runs["ours"], key=lambda r: r["seconds"])
    base = min(runs["baseline"], key=lambda r: r["seconds"])
    assert ours["checksum"] == base["checksum"], "ours and the baseline read different pixels"
    count = ours["regions"]
    time_ratio = ours["seconds"] / base["seconds"]
    memory_ratio = ours["peak"] / base["peak"]
    rows = [("reading", "s total", "ms / region", "peak RSS MiB"),
            ("ours (open_regions)", f"{ours['seconds']:.1f}", f"{1000 * ours['seconds'] / count:.1f}",
             f"{ours['peak'] / 2**20:.0f}"),
            ("baseline (tiles decoded directly)", f"{base['seconds']:.1f}", f"{1000 * base['seconds'] / count:.1f}",
             f"{base['peak'] / 2**20:.0f}")]
    if reference is not None:
        rows.append(("reference (tifffile.imread whole)", f"{reference['seconds']:.1f}", "",
                     f"{reference['peak'] / 2**20:.0f}"))
    ok = ours["peak"] < 2**30 and time_ratio <= 1.5
    summary = {"side": args.side, "regions": count, "region": REGION, "file_bytes": file_bytes,
               "write_seconds": written, "seconds": ours["seconds"], "baseline_seconds": base["seconds"],
               "time_ratio": time_ratio, "peak_bytes": ours["peak"], "baseline_peak_bytes": base["peak"],
               "memory_ratio": memory_ratio, "ok": ok}
    if reference is not None:
        summary.update(whole_seconds=reference["seconds"], whole_peak_bytes=reference["peak"])
    report(f"read every {REGION} x {REGION} region of a {args.side} x {args.side} uint8 tiled TIFF "
           f"(ratio ours/baseline: time {time_ratio:.2f}, peak memory {memory_ratio:.2f})", rows, summary)
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
