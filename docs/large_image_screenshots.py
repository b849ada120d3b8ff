"""Screenshots of a large image with boxes (docs/images/large_image_*.png): a 20480 x 20480 tiled
TIFF mosaic with 1,600 small objects and their boxes, opened with the reader; prints the levels,
the time to open and draw, and the peak RSS. Run under xvfb-run: ``xvfb-run -a python
docs/large_image_screenshots.py OUT_FOLDER``."""

import sys, time, resource
from pathlib import Path
import numpy as np, tifffile
from napari_faster_rcnn.core.data.annotations import Annotation, save_annotation
out = Path(sys.argv[1]); out.mkdir(exist_ok=True)
side, T = 20480, 512
n = side // T
rows, cols = np.mgrid[0:T, 0:T]
boxes = []
def obj(ty, tx):
    y = ty * T + 150 + 13 * (tx % 7); x = tx * T + 200 + 11 * (ty % 5); return y, x, 24 + 8 * ((tx + ty) % 4)
def tiles():
    for ty in range(n):
        for tx in range(n):
            tile = (((rows + ty * T) // 256 + (cols + tx * T) // 256) % 2 * 30 + 40 + (ty * 3 + tx * 2) % 40).astype(np.uint8)
            y, x, s = obj(ty, tx)
            tile[y - ty*T:y - ty*T + s, x - tx*T:x - tx*T + s] = 240
            yield tile
for ty in range(n):
    for tx in range(n):
        y, x, s = obj(ty, tx); boxes.append([x, y, x + s, y + s])
path = out / "mosaic.tif"
with tifffile.TiffWriter(path) as w:
    w.write(tiles(), shape=(side, side), dtype=np.uint8, tile=(T, T), photometric="minisblack", compression="zlib")
save_annotation(out / "mosaic.pt", Annotation(boxes, ["object"] * len(boxes)))
import napari
viewer = napari.Viewer(show=True)
viewer.window._qt_window.resize(1200, 900)
start = time.perf_counter()
viewer.open(path, plugin="napari-faster-rcnn")
opened = time.perf_counter() - start
shot = viewer.screenshot(canvas_only=True, flash=False)
first = time.perf_counter() - start
from PIL import Image
Image.fromarray(shot).save(out / "overview.png")
camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
y, x, s = obj(25, 31)
camera.center = (y + s / 2, x + s / 2); camera.zoom = 1.0
Image.fromarray(viewer.screenshot(canvas_only=True, flash=False)).save(out / "zoom1.png")
camera.zoom = 6.0
Image.fromarray(viewer.screenshot(canvas_only=True, flash=False)).save(out / "zoom6.png")
print(f"levels {[l.shape for l in viewer.layers[0].data]}; open {opened:.2f}s; first draw {first:.2f}s; "
      f"boxes {len(viewer.layers[1].data)}; peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024:.0f} MiB")
viewer.close()
