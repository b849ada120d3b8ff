"""Make the README's screenshots in a real viewer (run under a virtual display).

    xvfb-run -a -s "-screen 0 1400x900x24" python docs/screenshots.py
"""

from __future__ import annotations

from pathlib import Path

import napari

HERE = Path(__file__).parent / "images"


def main() -> None:
    HERE.mkdir(exist_ok=True)
    viewer = napari.Viewer()
    viewer.window._qt_window.resize(1200, 760)
    viewer.open_sample("napari-faster-rcnn", "astronaut")
    viewer.screenshot(str(HERE / "astronaut.png"), canvas_only=False, flash=False)
    viewer.layers.clear()
    viewer.open_sample("napari-faster-rcnn", "synthetic-shapes")
    viewer.dims.set_current_step(0, 3)
    viewer.screenshot(str(HERE / "synthetic.png"), canvas_only=False, flash=False)
    viewer.close()


if __name__ == "__main__":
    main()
