"""A dataset folder with a large stack whose planes are pages of the folder: lazy open, memory, paging.

A folder of two ``size x size`` PNGs and a ``(planes, size, size)`` uint16 TIFF stack ((50, 2048, 2048)
by default: 400 MB) with ``movie.pt`` holding ``boxes`` boxes on every plane (500), all planes labeled
(the stack of :mod:`bench_stack_open`). In one run, under a display (``xvfb-run -a``):

- open: ``viewer.open(folder, plugin="napari-faster-rcnn")`` until both layers are painted; resident
  memory growth (RSS) during it; baseline: napari's own ``add_image`` of a dask array over tifffile's
  zarr store of the stack plus ``add_shapes`` of the same rectangles (``ndim=3``), painted;
- page: moving the slider to another of the stack's pages, 7 pages on (median), painted; baseline: the
  same on the baseline viewer (its planes, every box in one layer);
- next page: the stack's next page after ``--pause`` seconds on the page shown, as a person pressing
  ``n`` (the boxes of the pages next to the one shown are built in the background meanwhile);
  baseline: the same on the baseline viewer;
- the main thread's CPU time per page turn (``time.thread_time``): on a shared host the wall times
  follow the other jobs' load, the CPU times hardly.

Targets (issue 13, as for a stack opened alone): open under 1 s with memory far below the stack's size
(under a quarter of it), paging under 50 ms; or, on a slow host, at most half the baseline's time.
``--check`` exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Painter, report  # noqa: E402
from bench_stack_open import make_stack, napari_baseline, next_page_times, page_times, rss_bytes, timed  # noqa: E402


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--planes", type=int, default=50)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--boxes", type=int, default=500, help="boxes per plane")
    parser.add_argument("--repeat", type=int, default=10, help="page turns measured")
    parser.add_argument("--pause", type=float, default=0.4, help="seconds on a page before the next one (next page)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)

    import dask.array
    import napari
    import tifffile
    import zarr
    from PIL import Image
    from qtpy.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    with tempfile.TemporaryDirectory() as workdir:
        folder = Path(workdir) / "mixed"
        folder.mkdir()
        rng = np.random.default_rng(1)
        for name in ("a", "b"):
            Image.fromarray(rng.integers(0, 256, (args.size, args.size, 3), dtype=np.uint8)).save(folder / f"{name}.png")
        path = folder / "movie.tif"
        xyxy, where = make_stack(path, args.planes, args.size, args.boxes)
        stack_bytes = args.planes * args.size * args.size * 2

        small = Path(workdir) / "small"  # warm-up: imports, napari's layer machinery
        small.mkdir()
        make_stack(small / "s.tif", 3, 256, 20)
        warm = napari.Viewer()
        warm_paint = Painter(app, warm.window._qt_viewer.canvas._scene_canvas)
        warm_paint()
        cold_open_s = timed(lambda: warm.open(small, plugin="napari-faster-rcnn"), warm_paint)
        warm.add_image(dask.array.from_zarr(zarr.open(tifffile.imread(small / "s.tif", aszarr=True), mode="r")))
        warm.add_shapes([np.array([[0, 1, 1], [0, 1, 5], [0, 5, 5], [0, 5, 1]], float)], shape_type="rectangle")
        warm_paint()
        warm.close()

        viewer = napari.Viewer()
        viewer.window._qt_window.resize(1200, 800)
        paint = Painter(app, viewer.window._qt_viewer.canvas._scene_canvas)
        paint()
        before = rss_bytes()
        open_s = timed(lambda: viewer.open(folder, plugin="napari-faster-rcnn"), paint)
        open_rss = rss_bytes() - before
        image, shapes = viewer.layers
        assert image.data.shape[0] == args.planes + 2
        cpu = {name: [] for name in ("page", "next", "own_page", "own_next")}
        pages = page_times(viewer, paint, args.planes, args.repeat, cpu["page"], first=2)
        assert shapes.nshapes == args.boxes
        next_pages = next_page_times(app, viewer, paint, args.planes, args.repeat, args.pause, cpu["next"], first=2)
        assert shapes.nshapes == args.boxes
        viewer.dims.set_current_step(0, 0)
        paint()

        own_open_s, own_rss, own_pages, own_next = napari_baseline(app, path, xyxy, where, args, cpu)
        viewer.close()

    page_s, own_page_s = statistics.median(pages), statistics.median(own_pages)
    next_s, own_next_s = statistics.median(next_pages), statistics.median(own_next)
    summary = {
        "stack": [args.planes, args.size, args.size], "stack_mb": round(stack_bytes / 1e6), "pages": args.planes + 2,
        "boxes": len(xyxy), "open_s": round(open_s, 3), "open_rss_mb": round(open_rss / 1e6, 1),
        "baseline_open_s": round(own_open_s, 3), "baseline_open_rss_mb": round(own_rss / 1e6, 1),
        "open_ratio": round(open_s / own_open_s, 2), "page_ms": round(page_s * 1e3, 1),
        "baseline_page_ms": round(own_page_s * 1e3, 1), "page_ratio": round(page_s / own_page_s, 2),
        "next_page_ms": round(next_s * 1e3, 1), "baseline_next_page_ms": round(own_next_s * 1e3, 1),
        "main_thread_cpu_ms": {name: round(statistics.median(values) * 1e3, 1) for name, values in cpu.items()},
        "cold_open_s": round(cold_open_s, 3), "load_average": round(os.getloadavg()[0], 1),
    }
    report("folder with a stack's planes as pages: open and paging", [
        ("open", f"{open_s:.3f} s", f"{open_rss / 1e6:.0f} MB RSS", f"baseline {own_open_s:.3f} s"),
        ("page (a stack's plane)", f"{page_s * 1e3:.1f} ms", f"baseline {own_page_s * 1e3:.1f} ms"),
        ("next page after a pause", f"{next_s * 1e3:.1f} ms", f"baseline {own_next_s * 1e3:.1f} ms"),
        ("main thread's CPU per page (ms)", ", ".join(f"{name} {statistics.median(values) * 1e3:.1f}"
                                                      for name, values in cpu.items())),
        ("first open in the process (small folder)", f"{cold_open_s:.3f} s"),
    ], summary)
    failures = []
    if open_s >= 1.0 and open_s / own_open_s > 0.5:
        failures.append(f"open {open_s:.2f} s: not under 1 s, nor under half napari's {own_open_s:.2f} s")
    if open_rss >= stack_bytes / 4 and open_rss > 64e6:
        failures.append(f"open grew memory by {open_rss / 1e6:.0f} MB, a quarter or more of the stack's "
                        f"{stack_bytes / 1e6:.0f} MB")
    for what, ours, theirs in (("page", page_s, own_page_s), ("next page", next_s, own_next_s)):
        if ours >= 0.05 and ours / theirs > 0.5:
            failures.append(f"{what} {ours * 1e3:.0f} ms: not under 50 ms, nor under half napari's {theirs * 1e3:.0f} ms")
    for message in failures:
        print(("FAILED: " if args.check else "") + message, file=sys.stderr)
    summary["failures"] = failures
    return summary


if __name__ == "__main__":
    sys.exit(1 if main()["failures"] and "--check" in sys.argv else 0)
