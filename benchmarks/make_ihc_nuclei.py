"""Write a real histology dataset of hundreds of small touching nuclei, in two forms: scikit-image's
immunohistochemistry image (512 x 512 RGB, a colon section stained for a protein in brown (DAB)
with a blue hematoxylin counterstain; bundled with scikit-image, no download) cut into its four
quadrants, each with the nuclei that a classical segmentation of the hematoxylin stain finds, as
boxes (Otsu threshold, distance-transform watershed; about 75 a quadrant, median 15 x 15 px).
Three quadrants go to ``train``, the fourth to ``test``, each image with its ``.pt`` beside it:

``FOLDER/rgb``
    The quadrants as 8-bit RGB PNGs, as a slide scanner writes them.
``FOLDER/hed``
    The same quadrants unmixed into their stains (``skimage.color.rgb2hed``): float32
    OME-TIFFs of axes ``CYX``, channel 0 hematoxylin, 1 eosin, 2 DAB. Values are optical
    densities (0 to about 0.1, not 0 to 1): the data a microscopist gets from colour
    deconvolution, and what the ``channels`` choice and the percentile normalization are for.

    python benchmarks/make_ihc_nuclei.py /tmp/ihc

The boxes are an algorithm's, not a pathologist's (nuclei inside the brown-stained glands are
often merged or split): the figure they give (benchmarks/README.md, "Nuclei in a stained
section") is how well a model learns to repeat them on the held-out quadrant.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import quadrants  # noqa: E402


def nuclei_boxes(hematoxylin: np.ndarray) -> np.ndarray:
    """``(N, 4)`` xyxy boxes of the nuclei in a hematoxylin optical-density image."""
    from scipy import ndimage
    from skimage import feature, filters, measure, morphology, segmentation

    smooth = filters.gaussian(hematoxylin, 1)
    mask = ndimage.binary_fill_holes(morphology.remove_small_objects(smooth > filters.threshold_otsu(smooth), max_size=30))
    distance = ndimage.distance_transform_edt(mask)
    peaks = feature.peak_local_max(distance, min_distance=6, labels=measure.label(mask), exclude_border=False)
    markers = np.zeros(distance.shape, int)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    regions = measure.regionprops(segmentation.watershed(-distance, markers, mask=mask))
    rows = np.array([region.bbox for region in regions if region.area >= 40], float).reshape(-1, 4)
    return rows[:, [1, 0, 3, 2]]  # (min_row, min_col, max_row, max_col) to xyxy


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    args = parser.parse_args(argv)
    import tifffile
    from PIL import Image
    from skimage import color, data

    from napari_faster_rcnn.core.data.annotations import Annotation, save_annotation

    image = data.immunohistochemistry()
    stains = color.rgb2hed(image).astype(np.float32)
    boxes = nuclei_boxes(stains[..., 0])
    for part, name, rows, columns, shifted in quadrants(*image.shape[:2], boxes):
        for form in ("rgb", "hed"):
            (args.folder / form / part).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[rows, columns]).save(args.folder / "rgb" / part / f"{name}.png")
        tifffile.imwrite(args.folder / "hed" / part / f"{name}.ome.tif",
                         np.ascontiguousarray(stains[rows, columns].transpose(2, 0, 1)), metadata={"axes": "CYX"})
        for stem, form in ((name, "rgb"), (f"{name}.ome", "hed")):
            save_annotation(args.folder / form / part / f"{stem}.pt", Annotation(shifted, ["nucleus"] * len(shifted)))
        print(f"{part}/{name}: {columns.stop - columns.start} x {rows.stop - rows.start}, {len(shifted)} boxes, "
              f"median side {np.median(shifted[:, 2] - shifted[:, 0]):.0f} px")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
