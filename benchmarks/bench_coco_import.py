"""Importing a large COCO JSON: ``read_dataset`` against the bare ``json.load`` of the same file.

Generates a COCO file of N images (5,000 by default) with M boxes (50,000)
over 10 classes, shaped as CVAT exports it (``annotations/instances_default.json``
with image sizes, ``iscrowd``, ``area``, ``segmentation``), with no image
files: the sizes come from the JSON, so none are needed (``--image-files``
adds empty stand-ins, to time finding them as well). Then times in one run

- ours: ``read_dataset`` (detecting the format, parsing, validating every
  box, grouping boxes per image into ``Annotation`` objects, looking for the
  image files);
- baseline: ``json.load`` of the same file, the least any import must do.

Target (issue 3): the import under 5 seconds; the ratio to ``json.load`` is
reported beside it.

``--to-pt`` also times what the "Label boxes" widget's Import… does before it
opens the result: ``convert_dataset`` into a new folder of ours (images
hard-linked from stand-ins, one ``.pt`` file per image), reported as a ratio
to ``read_dataset`` (not checked).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import measure, report  # noqa: E402

from napari_faster_rcnn.core.formats import convert_dataset, detect_format, read_dataset  # noqa: E402


def write_coco(folder: Path, images: int, boxes: int, classes: int, image_files: bool, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    widths, heights = rng.integers(320, 1920, images), rng.integers(240, 1080, images)
    owners = np.sort(rng.integers(0, images, boxes))
    corners = rng.uniform(0, 1, (boxes, 2)) * np.column_stack([widths[owners], heights[owners]]) * 0.8
    sizes = rng.uniform(4, 200, (boxes, 2))
    categories = rng.integers(0, classes, boxes)
    data = {
        "licenses": [{"name": "", "id": 0, "url": ""}],
        "info": {"description": "bench_coco_import"},
        "categories": [{"id": 3 * k + 1, "name": f"class{k}", "supercategory": ""} for k in range(classes)],
        "images": [{"id": i + 1, "width": int(widths[i]), "height": int(heights[i]),
                    "file_name": f"image_{i:05d}.jpg", "license": 0} for i in range(images)],
        "annotations": [
            {"id": n + 1, "image_id": int(owners[n]) + 1, "category_id": 3 * int(categories[n]) + 1,
             "segmentation": [], "area": round(float(sizes[n, 0] * sizes[n, 1]), 2),
             "bbox": [round(float(v), 2) for v in (*corners[n], *sizes[n])], "iscrowd": 0,
             "attributes": {"occluded": False}}
            for n in range(boxes)
        ],
    }
    path = folder / "annotations" / "instances_default.json"
    path.parent.mkdir(parents=True)
    if image_files:  # empty stand-ins: with sizes in the JSON only their names are looked up
        (folder / "images").mkdir()
        for record in data["images"]:
            (folder / "images" / record["file_name"]).touch()
    path.write_text(json.dumps(data))
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--boxes", type=int, default=50000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--image-files", action="store_true",
                        help="also put (empty) image files in images/, to time finding them")
    parser.add_argument("--to-pt", action="store_true",
                        help="also time converting into our input/ + target/*.pt folder (implies --image-files)")
    parser.add_argument("--check", action="store_true", help="exit 1 unless the import takes under 5 s")
    args = parser.parse_args(argv)
    args.image_files = args.image_files or args.to_pt

    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary) / "coco"
        start = time.perf_counter()
        path = write_coco(folder, args.images, args.boxes, args.classes, args.image_files)
        made = time.perf_counter() - start
        assert detect_format(folder) == "coco"

        def bare():
            with open(path, "rb") as file:
                return json.load(file)

        json_time, json_peak, _ = measure(bare, args.repeat)
        ours_time, ours_peak, dataset = measure(lambda: read_dataset(folder), args.repeat)
        megabytes = path.stat().st_size / 2**20
        convert_time = converted = None
        if args.to_pt:
            runs = iter(range(10**6))
            convert_time, _, converted = measure(
                lambda: convert_dataset(folder, Path(temporary) / f"ours_{next(runs)}", "pt"), args.repeat)

    found = sum(item.image is not None for item in dataset.items)
    if len(dataset) != args.images or dataset.box_count != args.boxes or dataset.skipped or (
        args.image_files and found != args.images
    ):
        print(f"FAILED: read {len(dataset)} images, {dataset.box_count} boxes, {len(dataset.skipped)} skipped",
              file=sys.stderr)
        return 1
    if converted is not None and (converted.images, converted.boxes) != (args.images, args.boxes):
        print(f"FAILED: converted {converted.images} images, {converted.boxes} boxes", file=sys.stderr)
        return 1
    ratio = ours_time / json_time
    extra_rows, extra = [], {}
    if convert_time is not None:
        extra_rows = [("convert_dataset to pt (Import…)", f"{convert_time:.3f}", ""),
                      ("ratio convert / read_dataset", f"{convert_time / ours_time:.1f}", "")]
        extra = {"convert_to_pt_seconds": round(convert_time, 3),
                 "convert_ratio_to_read_dataset": round(convert_time / ours_time, 2)}
    report(
        f"COCO import of {args.images} images, {args.boxes} boxes, {args.classes} classes ({megabytes:.1f} MiB JSON"
        + (", image files found" if args.image_files else ", no image files") + ")",
        [
            ("", "seconds", "peak MiB"),
            ("ours: read_dataset", f"{ours_time:.3f}", f"{ours_peak / 2**20:.0f}"),
            ("baseline: json.load", f"{json_time:.3f}", f"{json_peak / 2**20:.0f}"),
            ("ratio ours / json.load", f"{ratio:.2f}", ""),
            *extra_rows,
        ],
        {
            "images": args.images,
            "boxes": args.boxes,
            "image_files": found,
            "json_mib": round(megabytes, 1),
            "setup_seconds": round(made, 2),
            "read_dataset_seconds": round(ours_time, 4),
            "json_load_seconds": round(json_time, 4),
            "ratio_to_json_load": round(ratio, 3),
            "read_dataset_peak_mib": round(ours_peak / 2**20, 1),
            "json_load_peak_mib": round(json_peak / 2**20, 1),
            **extra,
        },
    )
    if args.check and ours_time >= 5.0:
        print(f"FAILED: the COCO import took {ours_time:.2f} s, not under 5 s", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
