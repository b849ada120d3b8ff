"""The "Anchor boxes" widget in a real viewer: a setting changed until the layers show it.

A stack of 20 photos of 1024 x 1024 (random pixels) with 20 boxes each, shown
as the default ResNet-50 FPN sees them (resized to 800 x 800: 53,000 anchor
positions on five maps, 160,000 anchors), with the "Anchor boxes" widget
docked. In one run, times per change (median):

- sizes: new anchor sizes typed and applied (the anchors at the point and the
  whole-dataset coverage change; the grids do not);
- ratios: new aspect ratios, likewise;
- min_size: a new ``min_size`` (each value new, so the image is resized anew;
  the grids, centres, ground truth and coverage all change);
- click: a click on the model input moving the point;
- image: the dims slider moving to another image (transformed anew);

each until the widget's handler returns, i.e. the layers hold the new data.
Beside: ``anchor_coverage`` of 1,000 images (1024 x 768 and other sizes) with
20 boxes each, against torchvision's ``box_iou`` of each image's boxes with
every anchor ``AnchorGenerator`` makes (on the first 25 images; per image).
Baselines in the same run: the bare core computation behind each change
(``anchor_settings``, ``anchor_coverage``, ``anchor_grids``, ``transform_image``,
no layers), and setting the same data into the same layers again (napari's own
cost). Target (issue 4): every change under 200 ms for a 1024 x 1024 image.
Run under a display (``xvfb-run -a``); the painted time (Mesa's software
OpenGL under Xvfb) is reported beside.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Painter, report  # noqa: E402

SIZES = ["(32,), (64,), (128,), (256,), (512,)", "(24,), (48,), (96,), (192,), (384,)",
         "(40,), (80,), (160,), (320,), (640,)", "(28,), (56,), (112,), (224,), (448,)"]
RATIOS = ["(0.5, 1, 2)", "(0.7, 1.4)", "(0.5, 1, 2, 3)", "(0.4, 1, 2.5)"]


def make_dataset(images: int, per_image: int, size: int, seed: int = 0):
    from napari_faster_rcnn.core.data.annotations import Annotation

    rng = np.random.default_rng(seed)
    annotations = []
    for _ in range(images):
        wh = np.exp(rng.uniform(np.log(16), np.log(400), (per_image, 2)))
        corner = rng.uniform(0, size - wh)
        annotations.append(Annotation(np.concatenate([corner, corner + wh], axis=1),
                                      [("cat", "dog", "bird")[k % 3] for k in range(per_image)]))
    pixels = rng.integers(0, 256, (images, size, size, 3), dtype=np.uint8)
    return pixels, annotations


def coverage_speed(config, images: int = 1000, dense_images: int = 25):
    """Seconds per image: ``anchor_coverage`` over ``images``, and a dense IoU with every anchor."""
    import torch
    from torchvision.ops import box_iou

    from napari_faster_rcnn.core.data.annotations import Annotation
    from napari_faster_rcnn.core.model.anchor_inputs import transform_boxes
    from napari_faster_rcnn.core.model.anchors import anchor_boxes, anchor_coverage

    rng = np.random.default_rng(1)
    items = []
    for k in range(images):
        height, width = [(768, 1024), (1024, 768), (720, 1280), (480, 640)][k % 4]
        wh = np.exp(rng.uniform(np.log(10), np.log(300), (20, 2)))
        centre = rng.uniform(wh / 2, [width, height] - wh / 2)
        items.append(((height, width), Annotation(np.concatenate([centre - wh / 2, centre + wh / 2], 1),
                                                  ["object"] * 20)))
    start = time.perf_counter()
    coverage = anchor_coverage(config, items)
    ours = (time.perf_counter() - start) / images
    anchors = {size: torch.from_numpy(np.concatenate(anchor_boxes(config, size))) for size, _ in items[:4]}
    start = time.perf_counter()
    dense = [box_iou(torch.from_numpy(transform_boxes(config, size, a.boxes)), anchors[size]).max(1).values.numpy()
             for size, a in items[:dense_images]]
    theirs = (time.perf_counter() - start) / dense_images
    np.testing.assert_allclose(np.concatenate(dense), coverage.best_iou[:20 * dense_images], atol=1e-6)
    return ours, theirs


def timed(function, paint, repeat: int):
    handler, painted = [], []
    for step in range(repeat):
        paint()
        start = time.perf_counter()
        function(step)
        handler.append(time.perf_counter() - start)
        paint()
        painted.append(time.perf_counter() - start)
    return statistics.median(handler), statistics.median(painted)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--boxes", type=int, default=20)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=8)
    parser.add_argument("--check", action="store_true", help="exit 1 unless every change is under 200 ms")
    args = parser.parse_args(argv)

    import napari
    import torch
    from napari.layers import Layer
    from napari.utils.events import Event
    from qtpy.QtWidgets import QApplication

    from napari_faster_rcnn._widgets.anchor_boxes import AnchorBoxesWidget
    from napari_faster_rcnn.core.data.boxes import rectangles_to_boxes
    from napari_faster_rcnn.core.model.anchor_inputs import anchor_settings, transform_image
    from napari_faster_rcnn.core.model.anchors import anchor_coverage, anchor_grids
    from napari_faster_rcnn.layers import anchors, conventions

    torch.set_num_threads(2)
    pixels, annotations = make_dataset(args.images, args.boxes, args.size)
    sizes = [(args.size, args.size)] * args.images
    app = QApplication.instance() or QApplication([])
    viewer = napari.Viewer()
    viewer.window._qt_window.resize(1300, 860)
    viewer.add_image(pixels, rgb=True, name="photos", contrast_limits=[0, 255],
                     metadata={conventions.IMAGE_SIZES: [list(s) for s in sizes]})
    viewer.add_layer(Layer.create(*conventions.shapes_layer_data(annotations, stacked=True, name="photos boxes",
                                                       image_sizes=sizes)))
    widget = AnchorBoxesWidget(viewer)
    viewer.window.add_dock_widget(widget)
    paint = Painter(app, viewer.window._qt_viewer.canvas._scene_canvas)
    paint()
    assert widget.config.backbone == "resnet50" and widget.config.fpn
    points = sum(len(layer.data) for layer in widget.view.centre_layers)

    def set_sizes(step):
        widget.sizes.setText(SIZES[(step + 1) % len(SIZES)])
        assert widget.apply()

    def set_ratios(step):
        widget.ratios.setText(RATIOS[(step + 1) % len(RATIOS)])
        assert widget.apply()

    def set_min_size(step):
        widget.min_size.setValue(768 - 32 * step)  # each value new: resized anew

    image_layer = widget.view.layers[anchors.IMAGE]

    def click(step):
        for callback in image_layer.mouse_drag_callbacks:
            callback(image_layer, Event("mouse_press", position=(0, 100.0 + 37 * step, 650.0 - 41 * step)))

    def next_image(step):
        viewer.dims.set_current_step(0, (step + 1) % args.images)

    rows, changes = [], {}
    for name, function in [("sizes", set_sizes), ("ratios", set_ratios), ("min_size", set_min_size),
                           ("click", click), ("image", next_image)]:
        changes[name] = timed(function, paint, args.repeat)
    config = widget.config
    expected = anchor_coverage(config, list(zip(sizes, annotations)))
    np.testing.assert_allclose(widget.coverage.best_iou, expected.best_iou, atol=1e-5)  # napari keeps float32
    assert len(widget.view.centre_layers[0].data) == anchor_grids(config, sizes[0])[0].locations

    # baselines: the bare core computation behind a change, and the same layer data set again
    items = list(zip(sizes, annotations))

    def core_anchors(step):
        new = anchor_settings(widget.settings.base, SIZES[step % len(SIZES)], RATIOS[step % len(RATIOS)])
        anchor_coverage(new, items)
        [grid.at(400, 400) for grid in anchor_grids(new, sizes[0])]

    def core_min_size(step):
        new = config.replace(min_size=700 - 16 * step)
        transform_image(new, pixels[step % args.images])
        anchor_coverage(new, items)
        [grid.centres() for grid in anchor_grids(new, sizes[0])]

    def same_data(step):
        for layer in widget.view.centre_layers:
            layer.data = layer.data
        shown = widget.view.layers[anchors.IMAGE]
        shown.data = shown.data
        for name in (anchors.TRUTH, anchors.UNREACHED, anchors.AT_POINT):
            shapes = widget.view.layers[name]
            anchors.replace_rectangles(shapes, rectangles_to_boxes(shapes.data)[0], shapes.edge_color,
                                 shapes.features.copy(), widget.view.edge_width)

    coverage_per_image, dense_per_image = coverage_speed(widget.settings.base)  # ResNet-50 FPN, 800 px
    baseline_anchors = timed(core_anchors, lambda: None, args.repeat)[0]
    baseline_min_size = timed(core_min_size, lambda: None, args.repeat)[0]
    baseline_layers = timed(same_data, paint, args.repeat)
    viewer.close()

    baselines = {"sizes": baseline_anchors, "ratios": baseline_anchors, "min_size": baseline_min_size}
    rows = [("change", "ms", "painted ms", "core ms", "ratio to core")]
    for name, (handler, painted) in changes.items():
        core = baselines.get(name)
        rows.append((name, f"{handler * 1e3:.1f}", f"{painted * 1e3:.1f}",
                     f"{core * 1e3:.1f}" if core else "", f"{handler / core:.2f}" if core else ""))
    rows.append(("(same data into every layer again)", f"{baseline_layers[0] * 1e3:.1f}",
                 f"{baseline_layers[1] * 1e3:.1f}", "", ""))
    rows.append(("anchor_coverage per image (1,000 images)", f"{coverage_per_image * 1e3:.3f}", "",
                 f"{dense_per_image * 1e3:.1f}", f"{coverage_per_image / dense_per_image:.5f}"))
    summary = {"image_size": args.size, "images": args.images, "boxes": args.images * args.boxes,
               "anchor_positions": points}
    for name, (handler, painted) in changes.items():
        summary[f"{name}_ms"] = round(handler * 1e3, 1)
        summary[f"{name}_painted_ms"] = round(painted * 1e3, 1)
    summary.update(core_anchors_ms=round(baseline_anchors * 1e3, 1), core_min_size_ms=round(baseline_min_size * 1e3, 1),
                   same_layer_data_ms=round(baseline_layers[0] * 1e3, 1),
                   coverage_per_image_ms=round(coverage_per_image * 1e3, 4),
                   dense_iou_per_image_ms=round(dense_per_image * 1e3, 1))
    report(f"Anchor boxes: {args.images} images of {args.size} x {args.size}, {args.boxes} boxes each, "
           "ResNet-50 FPN at 800 px", rows, summary)
    slow = [f"{name} {handler * 1e3:.0f} ms" for name, (handler, _) in changes.items() if handler >= 0.2]
    if args.check and slow:
        print("FAILED: not under 200 ms: " + ", ".join(slow), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
