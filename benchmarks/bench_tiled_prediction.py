"""Predicting a 30000 x 30000 tiled TIFF in tiles: peak memory and time per tile.

Writes a 30000 x 30000 uint8 gray TIFF (tiles of 512 x 512, deflate; the image
of ``bench_region_reading.py``), then, each in a fresh process so that the peak
resident memory (RSS) is that of the one predicting:

- ours: ``predict_images`` of the file with tiles of 512 px overlapping by 0.1
  (the `cpu` preset at 512 px, untrained: it still proposes and scores boxes),
  which reads the image tile by tile (``core.data.regions``), batches the tiles
  through the model and merges their detections;
- baseline: the bare model on tiles read beforehand (the first ``--bare-tiles``
  tiles of the same grid as float tensors, the same batch size), timed per tile;
  and, load-robust, the model's own time inside "ours" (every batch it is handed,
  already in memory, timed): ``same_run_ratio`` is ours' wall time over it.

Targets (issue 12): peak RSS under 2 GB, and ours' time per tile within 1.2x
the bare model's.

``--replay``: memory alone, in minutes rather than the half hour of the model
on every tile: the real model predicts the first ``--bare-tiles`` tiles, and a
stand-in then returns their detections again, cycled, for every tile of the
image; the tiles are still read and converted, and all the detections merged
(the model's activations per batch are those of the first tiles). It also
reports ``overhead_ratio``: the time per tile of everything but the model
(reading, converting, merging) over the bare model's time per tile on the
first tiles, so that ours is about ``1 + overhead_ratio`` times the bare model.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report  # noqa: E402
from bench_region_reading import write_image  # noqa: E402

SIDE, TILE, OVERLAP, BATCH = 30000, 512, 0.1, 4

CHILD = r"""
import json, resource, sys, time
import torch
path, how, tile, overlap, batch, bare_tiles, threads = sys.argv[1:8]
tile, overlap, batch, bare_tiles, threads = int(tile), float(overlap), int(batch), int(bare_tiles), int(threads)
torch.set_num_threads(threads)
from napari_faster_rcnn.core.model.config import preset
from napari_faster_rcnn.core.model.detector import build_model
from napari_faster_rcnn.core.prediction.run import predict_images
from napari_faster_rcnn.core.prediction.tiles import Tiling
from napari_faster_rcnn.core.data.regions import open_regions
from napari_faster_rcnn.core.data.image_tensors import image_to_tensor
torch.manual_seed(0)
config = preset("cpu", ["object"], min_size=tile, max_size=tile)
model = build_model(config).eval()
tiling = Tiling(tile, overlap)
if how == "replay":
    # the real model on the first bare_tiles tiles; then a stand-in returns those outputs again, cycled, for
    # every tile of the image: reading, converting and merging the whole image at the model's detection
    # density, without its hours of compute (the model's own memory per batch is the same as in "ours")
    recorded, model_seconds = [], 0.0
    with open_regions(path) as regions:  # a batch read at a time: no preloaded tiles in the peak
        rects = tiling.grid((regions.height, regions.width)).rects[:bare_tiles].tolist()
        for first in range(0, len(rects), batch):
            inputs = [image_to_tensor(regions.read(y0, y1, x0, x1)) for x0, y0, x1, y1 in rects[first:first + batch]]
            model_start = time.perf_counter()
            with torch.inference_mode():  # in batches, as "ours" runs them: the same activations
                recorded += model(inputs)
            model_seconds += time.perf_counter() - model_start
    model_seconds /= len(rects)  # the bare model per tile
    real = model

    class Replay(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(1))
            self.roi_heads, self.config, self.calls, self.raw = real.roi_heads, real.config, 0, 0

        def forward(self, images):
            out = []
            for _ in images:
                out.append({key: value.clone() for key, value in recorded[self.calls % len(recorded)].items()})
                self.raw += len(out[-1]["scores"])
                self.calls += 1
            return out

    model = Replay()
if how == "ours":
    # the bare model's own time on the same tiles, in this run: every batch the pipeline hands it is timed
    # (the tiles are in memory by then), so that load changes on a shared machine hit both sides alike
    inside = {"seconds": 0.0}
    bare_forward = model.forward

    def timed_forward(*args, **kwargs):
        begun = time.perf_counter()
        try:
            return bare_forward(*args, **kwargs)
        finally:
            inside["seconds"] += time.perf_counter() - begun

    model.forward = timed_forward
if how in ("ours", "replay"):
    start = time.perf_counter()
    records, summary = predict_images(model, [path], ["object"], batch_size=batch, tiling=tiling)
    seconds, tiles = time.perf_counter() - start, summary.tiles
    assert records[0].error is None, records[0].error
    boxes = len(records[0].annotation)
else:
    with open_regions(path) as regions:
        rects = tiling.grid((regions.height, regions.width)).rects[:bare_tiles]
        inputs = [image_to_tensor(regions.read(y0, y1, x0, x1)) for x0, y0, x1, y1 in rects.tolist()]
    start = time.perf_counter()
    boxes = 0
    with torch.inference_mode():
        for first in range(0, len(inputs), batch):
            boxes += sum(len(output["boxes"]) for output in model(inputs[first:first + batch]))
    seconds, tiles = time.perf_counter() - start, len(inputs)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"seconds": seconds, "tiles": tiles, "peak": peak, "boxes": boxes, "raw": getattr(model, "raw", None),
                  "model_seconds": model_seconds if how == "replay" else None,
                  "inside_seconds": inside["seconds"] if how == "ours" else None}))
"""


def run_child(path: Path, how: str, args) -> dict:
    """One child's figures; ``how`` is "ours", "bare" or "replay"."""
    source = str(Path(__file__).resolve().parents[1] / "src")
    done = subprocess.run([sys.executable, "-c", CHILD, str(path), how, str(args.tile), str(args.overlap),
                           str(args.batch), str(args.bare_tiles), str(args.threads)],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": source})
    if done.returncode != 0:
        raise SystemExit(f"{how} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=SIDE, help="image side in pixels (default 30000)")
    parser.add_argument("--tile", type=int, default=TILE)
    parser.add_argument("--overlap", type=float, default=OVERLAP)
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--bare-tiles", type=int, default=200, help="tiles the bare model predicts")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads in both")
    parser.add_argument("--replay", action="store_true",
                        help="memory only, fast: the real model on the first --bare-tiles tiles, then their "
                             "detections replayed for every tile (reading, converting and merging the whole image)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "large.tif"
        start = time.perf_counter()
        write_image(path, args.side)
        written = time.perf_counter() - start
        if args.replay:
            replay = run_child(path, "replay", args)
        else:
            bare = run_child(path, "bare", args)
            ours = run_child(path, "ours", args)
    if args.replay:
        peak_gb = replay["peak"] / 1e9
        met = peak_gb < 2.0
        # everything but the model, per tile, over the bare model's time per tile (in the same process)
        overhead = replay["seconds"] / replay["tiles"] / replay["model_seconds"]
        report("tiled_prediction_replay", [
            ("", "tiles", "raw detections", "boxes merged", "peak RSS"),
            ("replayed detections (read by region, merged)", replay["tiles"], replay["raw"], replay["boxes"],
             f"{replay['peak'] / 2**20:.0f} MiB"),
        ], {"side": args.side, "tile": args.tile, "overlap": args.overlap, "batch": args.batch,
            "recorded_tiles": args.bare_tiles, "tiles": replay["tiles"], "seconds": round(replay["seconds"], 1),
            "raw": replay["raw"], "boxes": replay["boxes"], "ms_per_tile": round(replay["seconds"] / replay["tiles"] * 1000, 2),
            "model_ms_per_tile": round(replay["model_seconds"] * 1000, 2), "overhead_ratio": round(overhead, 3),
            "peak_gb": round(peak_gb, 3), "targets": {"peak_gb": 2.0}, "met": met})
        return 1 if args.check and not met else 0
    per_tile = ours["seconds"] / ours["tiles"]
    bare_per_tile = bare["seconds"] / bare["tiles"]
    ratio = per_tile / bare_per_tile
    # the same, against the model's time inside this very run (robust to load drifting between the children)
    same_run_ratio = ours["seconds"] / ours["inside_seconds"]
    peak_gb = ours["peak"] / 1e9
    met = peak_gb < 2.0 and ratio <= 1.2
    report("tiled_prediction", [
        ("", "tiles", "s per tile", "peak RSS"),
        ("ours (read by region, merged)", ours["tiles"], f"{per_tile * 1000:.1f} ms", f"{ours['peak'] / 2**20:.0f} MiB"),
        ("bare model, tiles preloaded", bare["tiles"], f"{bare_per_tile * 1000:.1f} ms", f"{bare['peak'] / 2**20:.0f} MiB"),
    ], {"side": args.side, "tile": args.tile, "overlap": args.overlap, "batch": args.batch,
        "written_seconds": round(written, 1), "tiles": ours["tiles"], "seconds": round(ours["seconds"], 1),
        "ms_per_tile": round(per_tile * 1000, 2), "bare_ms_per_tile": round(bare_per_tile * 1000, 2),
        "time_ratio": round(ratio, 3), "same_run_ratio": round(same_run_ratio, 3),
        "model_ms_per_tile_in_run": round(ours["inside_seconds"] / ours["tiles"] * 1000, 2), "peak_gb": round(peak_gb, 3), "boxes": ours["boxes"],
        "targets": {"peak_gb": 2.0, "time_ratio": 1.2}, "met": met})
    return 1 if args.check and not met else 0


if __name__ == "__main__":
    raise SystemExit(main())
