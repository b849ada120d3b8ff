"""Write a real astronomy dataset of hundreds of tiny objects: scikit-image's Hubble deep field
(872 x 1000 RGB, bundled with scikit-image, no download) cut into its four quadrants, each with
the stars and galaxies that scikit-image's Laplacian-of-Gaussian blob detector finds as boxes
(``blob_log``; about 550 a quadrant, median 6 x 6 px). Three quadrants go to ``FOLDER/train``,
the fourth to ``FOLDER/test``, each image with its ``.pt`` beside it.

    python benchmarks/make_hubble_stars.py /tmp/hubble

The boxes are a detector's, not a person's: the figure they give (see benchmarks/README.md,
"Tiny objects on tiles") is how well a model learns to repeat them on the held-out quadrant.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import quadrants  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    args = parser.parse_args(argv)
    from PIL import Image
    from skimage import color, data, feature

    from napari_faster_rcnn.core.data.annotations import Annotation, save_annotation

    image = data.hubble_deep_field()
    blobs = feature.blob_log(color.rgb2gray(image), min_sigma=1.5, max_sigma=12, threshold=0.06)
    radius = np.maximum(blobs[:, 2] * np.sqrt(2) * 1.3, 3)  # a blob's radius is about sqrt(2) sigma
    boxes = np.stack([blobs[:, 1] - radius, blobs[:, 0] - radius, blobs[:, 1] + radius, blobs[:, 0] + radius], 1)
    for part, name, rows, columns, shifted in quadrants(*image.shape[:2], boxes):
        (args.folder / part).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[rows, columns]).save(args.folder / part / f"{name}.png")
        save_annotation(args.folder / part / f"{name}.pt", Annotation(shifted, ["object"] * len(shifted)))
        print(f"{part}/{name}.png: {columns.stop - columns.start} x {rows.stop - rows.start}, {len(shifted)} boxes, "
              f"median side {np.median(shifted[:, 2] - shifted[:, 0]):.0f} px")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
