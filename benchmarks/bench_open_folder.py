"""Opening a dataset folder: the lazy reader against reading every image eagerly.

Writes N generated JPEG images (1024 x 768 by default, a typical photo like the
tutorial's head photos; textured) with 20 boxes each in the
tutorial's input/ + target/ layout, then, in one run, times

- lazy: ``read_dataset_folder`` until it returns its layer data (headers and
  annotations read, pixels not decoded);
- eager: every image decoded into one padded numpy stack, plus the same
  annotations (what a reader without a lazy stack has to do).

Reports the time and peak-memory ratios lazy / eager. Target: time < 0.1.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import measure, report  # noqa: E402

from napari_faster_rcnn.core.data.annotations import Annotation, load_annotation, save_annotation  # noqa: E402
from napari_faster_rcnn.core.data.folders import discover_dataset  # noqa: E402
from napari_faster_rcnn.core.data.image_stack import read_padded  # noqa: E402
from napari_faster_rcnn.core.data.images import image_size  # noqa: E402
from napari_faster_rcnn.layers.folder_reading import read_dataset_folder  # noqa: E402


def make_folder(folder: Path, n_images: int, width: int, height: int, boxes_per_image: int = 20) -> None:
    from PIL import Image

    from napari_faster_rcnn.core.data.synthetic import make_synthetic_sample

    (folder / "input").mkdir(parents=True)
    rng = np.random.default_rng(0)
    # a few distinct textured images, written many times over (decoding cost is what matters)
    textures = [
        make_synthetic_sample(0, i, height=height, width=width, objects=(8, 8), sizes=(20, 120))[0] for i in range(8)
    ]
    for index in range(n_images):
        name = f"{index:04d}"
        Image.fromarray(textures[index % len(textures)]).save(folder / "input" / f"{name}.jpg", quality=90)
        x1 = rng.uniform(0, width - 60, boxes_per_image)
        y1 = rng.uniform(0, height - 60, boxes_per_image)
        boxes = np.stack([x1, y1, x1 + rng.uniform(5, 60, boxes_per_image), y1 + rng.uniform(5, 60, boxes_per_image)], 1)
        labels = [("cell", "nucleus", "debris")[k] for k in rng.integers(0, 3, boxes_per_image)]
        save_annotation(folder / "target" / f"{name}.pt", Annotation(boxes, labels))


def read_eagerly(folder: Path):
    dataset = discover_dataset(folder)
    sizes = [image_size(s.image) for s in dataset.samples]
    height, width = max(h for h, _ in sizes), max(w for _, w in sizes)
    stack = np.stack([read_padded(s.image, height, width, np.uint8) for s in dataset.samples])
    annotations = [load_annotation(s.annotation) for s in dataset.samples]
    return stack, annotations


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--height", type=int, default=768)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--check", action="store_true", help="exit 1 unless the time ratio is under 0.1")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary) / "dataset"
        make_folder(folder, args.images, args.width, args.height)
        read_dataset_folder(folder)  # warm-up: imports, file cache
        lazy_time, lazy_peak, layers = measure(lambda: read_dataset_folder(folder), args.repeat)
        boxes = len(layers[-1][0])
        eager_time, eager_peak, _ = measure(lambda: read_eagerly(folder), args.repeat)

    time_ratio = lazy_time / eager_time
    memory_ratio = lazy_peak / eager_peak
    report(
        f"open a folder of {args.images} images ({args.width} x {args.height}) with 20 boxes each",
        [
            ("", "seconds", "peak MiB"),
            ("lazy reader", f"{lazy_time:.3f}", f"{lazy_peak / 2**20:.1f}"),
            ("eager baseline", f"{eager_time:.3f}", f"{eager_peak / 2**20:.1f}"),
            ("ratio", f"{time_ratio:.3f}", f"{memory_ratio:.3f}"),
        ],
        {
            "images": args.images,
            "image_size": [args.height, args.width],
            "boxes": boxes,
            "lazy_seconds": round(lazy_time, 4),
            "eager_seconds": round(eager_time, 4),
            "time_ratio": round(time_ratio, 4),
            "memory_ratio": round(memory_ratio, 4),
        },
    )
    if args.check and time_ratio >= 0.1:
        print(f"FAILED: lazy/eager time ratio {time_ratio:.3f} is not under 0.1", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
