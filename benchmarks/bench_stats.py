"""Dataset statistics of a folder: sizes from the image headers against decoding every image.

Writes N generated JPEG images (by default 1,000, mostly 1024 x 768 with some
768 x 1024, 1280 x 720 and 640 x 480 among them; textured) with 5 to 30 boxes
of three classes each, in the tutorial's input/ + target/ layout, then, in one
run, times

- headers: ``folder_statistics`` (image sizes from the file headers, the
  annotation files read, every statistic before and after the transform);
- decoded: the same statistics with each image's size taken from its decoded
  pixels (what reading the sizes without headers costs).

Reports both and their ratio. Target: headers < 5 s for 1,000 images.
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
from napari_faster_rcnn.core.data.images import read_image  # noqa: E402
from napari_faster_rcnn.core.statistics.folders import folder_statistics  # noqa: E402
from napari_faster_rcnn.core.statistics.measures import dataset_statistics  # noqa: E402

SIZES = [(768, 1024)] * 7 + [(1024, 768), (720, 1280), (480, 640)]  # (height, width), some variety
TARGET_SECONDS = 5.0


def make_folder(folder: Path, n_images: int) -> int:
    from PIL import Image

    from napari_faster_rcnn.core.data.synthetic import make_synthetic_sample

    (folder / "input").mkdir(parents=True)
    rng = np.random.default_rng(0)
    # a few distinct textured images per size, written many times over (decoding cost is what matters)
    textures = {size: [make_synthetic_sample(0, i, height=size[0], width=size[1], objects=(8, 8), sizes=(20, 120))[0]
                       for i in range(2)] for size in set(SIZES)}
    boxes_written = 0
    for index in range(n_images):
        height, width = SIZES[index % len(SIZES)]
        name = f"{index:04d}"
        Image.fromarray(textures[(height, width)][index % 2]).save(folder / "input" / f"{name}.jpg", quality=90)
        count = int(rng.integers(5, 31))
        x1, y1 = rng.uniform(0, width - 150, count), rng.uniform(0, height - 150, count)
        boxes = np.stack([x1, y1, x1 + rng.uniform(8, 150, count), y1 + rng.uniform(8, 150, count)], 1)
        labels = [("cell", "nucleus", "debris")[k] for k in rng.integers(0, 3, count)]
        save_annotation(folder / "target" / f"{name}.pt", Annotation(boxes, labels))
        boxes_written += count
    return boxes_written


def statistics_by_decoding(folder: Path):
    """The baseline: the same statistics, each image's size from its decoded pixels."""
    dataset = discover_dataset(folder)
    items = [(read_image(s.image).shape[:2], load_annotation(s.annotation)) for s in dataset.samples]
    return dataset_statistics(items, names=[s.name for s in dataset.samples])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--check", action="store_true", help=f"exit 1 unless headers take under {TARGET_SECONDS:g} s")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary) / "dataset"
        boxes = make_folder(folder, args.images)
        folder_statistics(folder)  # warm-up: imports, file cache
        header_time, header_peak, stats = measure(lambda: folder_statistics(folder), args.repeat)
        decode_time, decode_peak, baseline = measure(lambda: statistics_by_decoding(folder), args.repeat)
    if stats.boxes != boxes or not np.array_equal(stats.image_height, baseline.image_height):
        print("FAILED: the two ways disagree", file=sys.stderr)
        return 1

    ratio = header_time / decode_time
    report(
        f"dataset statistics of {args.images} JPEG images (mostly 1024 x 768) with {boxes} boxes",
        [
            ("", "seconds", "peak MiB"),
            ("headers (folder_statistics)", f"{header_time:.3f}", f"{header_peak / 2**20:.1f}"),
            ("decoded pixels (baseline)", f"{decode_time:.3f}", f"{decode_peak / 2**20:.1f}"),
            ("ratio", f"{ratio:.3f}", f"{header_peak / decode_peak:.3f}"),
        ],
        {
            "images": args.images,
            "boxes": boxes,
            "header_seconds": round(header_time, 4),
            "decode_seconds": round(decode_time, 4),
            "time_ratio": round(ratio, 4),
            "target_seconds": TARGET_SECONDS,
        },
    )
    if args.check and header_time >= TARGET_SECONDS:
        print(f"FAILED: {header_time:.2f} s for {args.images} images is not under {TARGET_SECONDS:g} s",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
