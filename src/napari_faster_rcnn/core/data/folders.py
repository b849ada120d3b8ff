"""Dataset folders: which images and annotation files belong together.

Two layouts are recognised:

- ``input/`` + ``target/``: images in ``input/``, annotations of the same stem in
  ``target/`` (the layout of the tutorial this plugin comes from);
- side by side: images and their annotation files in one folder.

A folder of annotation files alone (predictions, say) is read too; its images
are looked for in a sibling folder whose images have the same stems.

An image is an image file or a Zarr store (a folder, see
:func:`~.regions.is_zarr_folder`); stacks (multi-page TIFF, OME-TIFF, Zarr with
leading time or z dimensions) and 2-D images mix freely: each has one
annotation file of its stem (``movie.zarr`` and ``movie.pt``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from napari_faster_rcnn.core.data.annotations import ANNOTATION_SUFFIXES, THRESHOLDS_FILE
from napari_faster_rcnn.core.data.image_files import is_image_file
from napari_faster_rcnn.core.data.regions import is_zarr_folder

INPUT_TARGET = "input/target"
SIDE_BY_SIDE = "side by side"
ANNOTATIONS_ONLY = "annotations only"


class DatasetError(ValueError):
    """A folder that is not a dataset; ``str()`` names the folder and the reason."""

    def __init__(self, path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True)
class Sample:
    """One image of a dataset and its annotation file (None when not labeled yet)."""

    name: str
    image: Path | None
    annotation: Path | None


@dataclass
class DatasetFolder:
    """The images and annotation files found in a folder, sorted by file name."""

    root: Path
    layout: str
    image_folder: Path | None
    annotation_folder: Path
    samples: list[Sample]
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def annotation_suffix(self) -> str:
        """The format most existing annotation files use (``.pt`` when there are none)."""
        counts = Counter(s.annotation.suffix.lower() for s in self.samples if s.annotation is not None)
        return counts.most_common(1)[0][0] if counts else ".pt"

    def annotation_path(self, sample: Sample, suffix: str | None = None) -> Path:
        """Where the annotation of ``sample`` is (or will be) saved."""
        if sample.annotation is not None and (suffix is None or sample.annotation.suffix == suffix):
            return sample.annotation
        return self.annotation_folder / f"{sample.name}{suffix or self.annotation_suffix}"


def _files(folder: Path) -> list[Path]:
    return sorted(
        (p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")),
        key=lambda p: p.name,
    )


def _by_stem(paths, kind: str, skipped: list) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in paths:
        if path.stem in found:
            skipped.append((path, f"another {kind} has the same name {path.stem!r} ({found[path.stem].name})"))
            continue
        found[path.stem] = path
    return found


def _annotation_files(folder: Path) -> list[Path]:
    return [p for p in _files(folder) if p.suffix.lower() in ANNOTATION_SUFFIXES and p.name != THRESHOLDS_FILE]


def discover_dataset(folder: str | Path) -> DatasetFolder:
    """Find the images and annotation files of a dataset folder.

    Raises
    ------
    DatasetError
        If the folder does not exist or holds neither images nor annotations.
    """
    root = Path(folder)
    if not root.is_dir():
        raise DatasetError(root, "not a folder")
    skipped: list[tuple[Path, str]] = []
    if (root / "input").is_dir():
        layout, image_folder, annotation_folder = INPUT_TARGET, root / "input", root / "target"
    else:
        image_folder, annotation_folder = root, root
        layout = SIDE_BY_SIDE if _images(root) else ANNOTATIONS_ONLY

    if layout == ANNOTATIONS_ONLY:
        annotations = _by_stem(_annotation_files(root), "annotation", skipped)
        if not annotations:
            raise DatasetError(root, "no images and no .pt or .json annotation files")
        image_folder = find_image_folder(root, set(annotations))
        images = _by_stem(_images(image_folder), "image", skipped) if image_folder else {}
        samples = [Sample(name, images.get(name), path) for name, path in annotations.items()]
        return DatasetFolder(root, layout, image_folder, annotation_folder, samples, skipped)

    images = _by_stem(_images(image_folder), "image", skipped)
    if not images:
        raise DatasetError(image_folder, "no images (.png, .jpg, .tif, .bmp or .webp)")
    annotations: dict[str, Path] = {}
    if annotation_folder.is_dir():
        annotations = _by_stem(_annotation_files(annotation_folder), "annotation", skipped)
    for name, path in annotations.items():
        if name not in images:
            skipped.append((path, "no image with this name"))
    samples = [Sample(name, path, annotations.get(name)) for name, path in images.items()]
    return DatasetFolder(root, layout, image_folder, annotation_folder, samples, skipped)


def _images(folder: Path) -> list[Path]:
    """Image files and Zarr stores, sorted by name."""
    stores = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".") and is_zarr_folder(p)]
    return sorted([p for p in _files(folder) if is_image_file(p)] + stores, key=lambda p: p.name)


def find_image_folder(annotation_folder: Path, names: set[str]) -> Path | None:
    """The sibling folder whose images best match the annotation ``names``.

    Most matching stems wins; among equals, the folder with the fewest other
    images (``test/`` over ``input/`` for predictions of the test images).
    """
    parent = annotation_folder.parent
    best, best_score = None, (0, 0)
    for candidate in sorted(parent.iterdir()):
        if not candidate.is_dir() or candidate == annotation_folder:
            continue
        stems = {p.stem for p in _images(candidate)}
        matches = len(stems & names)
        score = (matches, -len(stems - names))
        if matches and score > best_score:
            best, best_score = candidate, score
    return best


def annotation_for(path: str | Path, cache: dict) -> Path | None:
    """The annotation file of the image ``path`` where the folder rules look for one (``target/NAME.pt``
    or ``.json`` beside ``input/``, or ``NAME.pt``/``.json`` beside the image), None when it has none.

    ``cache`` (a dict, empty at first) keeps each folder's lookup, so that many images of one folder
    discover it once. Raises :class:`DatasetError` for a folder that holds no images.
    """
    path = Path(path)
    parent = path.parent
    root = parent.parent if parent.name == "input" and (parent.parent / "target").is_dir() else parent
    if root not in cache:
        dataset = discover_dataset(root)
        cache[root] = {sample.image.resolve(): sample.annotation for sample in dataset.samples
                       if sample.image is not None}
    return cache[root].get(path.resolve())
