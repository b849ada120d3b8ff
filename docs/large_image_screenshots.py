"""Screenshots of a large image with boxes (docs/images/large_image_*.png).

Writes a 20480 x 20480 tiled TIFF mosaic (tiles of 512, deflate) with one
bright object of 24-48 px per tile and an annotation of their 1,600 boxes,
opens it with the plugin's reader in a real viewer, and saves the canvas: the
whole image, then zoomed on one box. Prints the levels, the time to open and
to draw, and the process's peak resident memory. Run under Xvfb::

    xvfb-run -a -s "-screen 0 1400x1000x24" python docs/large_image_screenshots.py OUT_FOLDER
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from napari_faster_rcnn.core.data.annotations import Annotation, save_annotation

SIDE, TILE = 20480, 512


def object_at(row: int, col: int) -> tuple[int, int, int]:
    """Top, left and side of the object in tile (row, col)."""
    return row * TILE + 150 + 13 * (col % 7), col * TILE + 200 + 11 * (row % 5), 24 + 8 * ((row + col) % 4)


def write_mosaic(folder: Path) -> Path:
    across = SIDE // TILE
    rows, cols = np.mgrid[0:TILE, 0:TILE]

    def tiles():
        for row in range(across):
            for col in range(across):
                checker = ((rows + row * TILE) // 256 + (cols + col * TILE) // 256) % 2
                tile = (checker * 30 + 40 + (row * 3 + col * 2) % 40).astype(np.uint8)
                top, left, side = object_at(row, col)
                tile[top - row * TILE:top - row * TILE + side, left - col * TILE:left - col * TILE + side] = 240
                yield tile

    path = folder / "mosaic.tif"
    with tifffile.TiffWriter(path) as writer:
        writer.write(tiles(), shape=(SIDE, SIDE), dtype=np.uint8, tile=(TILE, TILE), photometric="minisblack",
                     compression="zlib")
    boxes = []
    for row in range(across):
        for col in range(across):
            top, left, side = object_at(row, col)
            boxes.append([left, top, left + side, top + side])
    save_annotation(folder / "mosaic.pt", Annotation(boxes, ["object"] * len(boxes)))
    return path


def main(out: Path) -> None:
    import napari

    out.mkdir(parents=True, exist_ok=True)
    path = write_mosaic(out)
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1200, 900)
    start = time.perf_counter()
    viewer.open(path, plugin="napari-faster-rcnn")
    opened = time.perf_counter() - start
    Image.fromarray(viewer.screenshot(canvas_only=True, flash=False)).save(out / "overview.png")
    drawn = time.perf_counter() - start
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
    top, left, side = object_at(25, 31)
    camera.center = (top + side / 2, left + side / 2)
    camera.zoom = 6.0
    Image.fromarray(viewer.screenshot(canvas_only=True, flash=False)).save(out / "zoom.png")
    shapes = [level.shape for level in viewer.layers[0].data]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"levels {shapes}; open {opened:.2f} s; first draw {drawn:.2f} s; boxes {len(viewer.layers[1].data)}; "
          f"peak RSS {peak:.0f} MiB")
    viewer.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
