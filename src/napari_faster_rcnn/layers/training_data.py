"""The data side of the "Train detector" widget: the samples of a box layer that train, the
augmentation preview and its layers, and the export of a run as a config file for ``napari-faster-rcnn fit``.

**Which images of a box layer train.** Every image with boxes, and every image
the person labeled as having no objects: one with an annotation file on disk
(saved empty) or with unsaved edits in the labeling session (all its boxes
deleted). An image with neither boxes nor a file was not labeled yet and is
left out, as :func:`~napari_faster_rcnn.core.training.samples.folder_samples` leaves out images
without an annotation file: training on it would teach the model that its
objects are background. Unsaved edits of the labeling session train as they
are on screen. Images come from the files the layer names
(``metadata["source_images"]``); a layer without files cannot train.

**The export** needs the data on disk: for a box layer, the folder it was
opened from with every edit saved (else the command would train on other boxes); for a
stack's box layer opened alone, the stack's file (``fit`` trains on the labeled planes its
annotation file lists), its edits saved.

No Qt here.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from napari_faster_rcnn.core.data.annotations import Annotation
from napari_faster_rcnn.core.data.atomic_files import atomic_write_bytes
from napari_faster_rcnn.layers import conventions
from napari_faster_rcnn.layers.box_layers import layer_annotations
from napari_faster_rcnn.layers.folder_pages import folder_store
from napari_faster_rcnn.layers.paging_registry import paging_model
from napari_faster_rcnn.layers.stack_labeling import (
    NO_OBJECTS_KEY,
    is_stack_layer,
    labeled_planes,
    plane_dims,
    stack_annotation,
    stack_store,
)

__all__ = ["LayerTrainingData", "PreviewImages", "StackTrainingData", "augmentation_preview", "export_run",
           "layer_training_data", "sample_name"]

PREVIEW_NAME = "augmentation preview"  # the preview's image layer; its boxes: PREVIEW_NAME + " boxes"


# --- training data from a box layer ----------------------------------------------------------------


@dataclass
class LayerTrainingData:
    """The samples of a box layer that train, and what was left out.

    Attributes
    ----------
    samples : list of TrainingSample
        ``(image file, Annotation in memory)`` of each labeled image.
    classes : list of str
        The layer's class list, in class-id order.
    unlabeled : list of str
        Names of the images left out (no boxes, no file, no edits).
    unsaved : int
        Images whose boxes differ from their files (unsaved edits of a labeling session).
    dataset_root : Path or None
        The folder the layer was opened from.
    """

    name: str
    samples: list
    classes: list[str]
    unlabeled: list[str] = field(default_factory=list)
    unsaved: int = 0
    dataset_root: Path | None = None

    def describe(self) -> str:
        text = f"{len(self.samples)} labeled images of {self.name!r}"
        if self.unlabeled:
            text += f"; {len(self.unlabeled)} without boxes or an annotation file left out"
        if self.unsaved:
            text += f"; {self.unsaved} with unsaved edits (trained as shown)"
        return text


def layer_training_data(layer) -> LayerTrainingData:
    """The training samples of a box layer (paged by a labeling session or not).

    Raises
    ------
    ValueError
        When the layer's images have no files, or no image is labeled.
    """
    from napari_faster_rcnn.core.training.samples import TrainingSample

    if is_stack_layer(layer):
        return _stack_training_data(layer)
    annotations = layer_annotations(layer)  # a session's edits on screen included
    metadata = layer.metadata
    sources = list(metadata.get(conventions.SOURCE_IMAGES) or [])
    files = conventions.annotation_paths(metadata)
    model = paging_model(layer)
    edited = set(getattr(getattr(model, "store", None), "dirty", ()))
    pages = folder_store(layer)  # a folder with stacks' planes: which pages are labeled, as the store says
    samples, unlabeled, missing = [], [], []
    for index, annotation in enumerate(annotations):
        source = sources[index] if index < len(sources) else None
        file = files[index] if index < len(files) else None
        plane = conventions.source_plane(metadata, index)
        if plane is not None:  # a stack's plane: labeled when marked or with boxes, never by its stack's file
            labeled = len(annotation) > 0 or (pages is not None and index not in pages.empty)
        else:
            labeled = len(annotation) > 0 or index in edited or (file is not None and file.is_file())
        if not labeled:
            name = Path(source).name if source else f"image {index}"
            unlabeled.append(name if plane is None else f"{name}[{','.join(map(str, plane))}]")
        elif not source:
            missing.append(index)
        else:
            samples.append(TrainingSample(Path(source), _plain_annotation(annotation), plane=plane))
    if missing:
        raise ValueError(
            f"layer {layer.name!r}: {len(missing)} labeled image(s) have no image file (first: image "
            f"{missing[0]}); training reads images from files: save the images to a folder and open it with "
            "the Faster R-CNN reader"
        )
    if not samples:
        raise ValueError(f"layer {layer.name!r} has no labeled images: draw boxes, or save an image without "
                         "objects so that its (empty) annotation file says it was labeled")
    classes = list(metadata.get(conventions.CLASSES) or [])
    for annotation in annotations:
        classes.extend(label for label in annotation.labels if label not in classes)
    root = metadata.get(conventions.DATASET_ROOT)
    return LayerTrainingData(layer.name, samples, classes, unlabeled, len(edited),
                             Path(root) if root else None)


def _stack_training_data(layer) -> LayerTrainingData:
    """Each LABELED plane of a stack's box layer as a sample (its boxes, possibly none); an
    unlabeled plane is never a negative. The planes come from the layer's paging store (every
    plane's boxes, the edits on screen included) or, unpaged, from its shapes."""
    from napari_faster_rcnn.core.training.samples import TrainingSample

    metadata = layer.metadata
    sources = [s for s in metadata.get(conventions.SOURCE_IMAGES) or [] if s]
    if not sources:
        raise ValueError(f"layer {layer.name!r} is a stack without an image file; training reads the planes "
                         "from the file: save the stack as a TIFF and open it with the Faster R-CNN reader")
    source = Path(sources[0])
    annotation = stack_annotation(layer)
    dims = plane_dims(layer)
    planes = {tuple(int(v) for v in plane) for plane in annotation.labeled_planes.reshape(-1, dims).tolist()}
    planes |= {tuple(int(v) for v in plane) for plane in annotation.planes.reshape(-1, dims).tolist()}
    planes |= labeled_planes(layer)
    samples = [TrainingSample(source, _plain_annotation(annotation.on_plane(plane)), plane=plane)
               for plane in sorted(planes)]
    store = stack_store(layer)
    shape = store.shape if store is not None else tuple(metadata.get(conventions.PLANES_SHAPE) or ())
    total = int(np.prod(shape)) if shape else len(samples)
    if not samples:
        raise ValueError(f"layer {layer.name!r} has no labeled planes: draw boxes on a plane, or press "
                         f"{NO_OBJECTS_KEY!r} on a plane without objects (Label boxes) so that it trains as one")
    classes = list(metadata.get(conventions.CLASSES) or [])
    classes.extend(label for label in dict.fromkeys(annotation.labels) if label not in classes)
    root = metadata.get(conventions.DATASET_ROOT)
    unlabeled = [f"{source.name}[{','.join(map(str, plane))}]" for plane in itertools.product(*map(range, shape))
                 if plane not in planes] if shape else []
    return StackTrainingData(layer.name, samples, classes, unlabeled, len(store.dirty) if store is not None else 0,
                             Path(root) if root else None, planes_total=total)


def _plain_annotation(annotation: Annotation) -> Annotation:
    """A copy the training thread owns: boxes and labels only (edits in the viewer do not reach it)."""
    return Annotation(np.array(annotation.boxes, dtype=np.float64), list(annotation.labels),
                      classes=list(annotation.classes or ()))


@dataclass
class StackTrainingData(LayerTrainingData):
    """:class:`LayerTrainingData` of a stack's box layer: one sample per labeled plane."""

    planes_total: int = 0

    def describe(self) -> str:
        image = self.samples[0].image.name if self.samples else self.name
        text = f"{len(self.samples)} labeled planes of {self.planes_total} of the stack {image}"
        if self.unsaved:
            text += f"; {self.unsaved} planes with unsaved edits (trained as shown)"
        return text


# --- export -------------------------------------------------------------------------------------------


def export_run(settings, path: str | Path, layer_data: LayerTrainingData | None = None) -> tuple[Path, str]:
    """Write the run's config file (atomically) and return ``(path, command line)``.

    For a box layer (``layer_data``) the command needs the data on disk: the
    folder the layer was opened from, with every edit saved.

    Raises
    ------
    ValueError
        When the data are only in the viewer, saying what to do.
    """
    from dataclasses import replace

    from napari_faster_rcnn.core.training.settings import export_command

    if isinstance(layer_data, StackTrainingData) and layer_data.dataset_root is None:
        # a stack opened alone: the config names the stack's file (fit trains on its labeled planes, read
        # from its annotation file), so its boxes must be saved there
        if layer_data.unsaved:
            raise ValueError(f"{layer_data.unsaved} plane(s) of {layer_data.name!r} have unsaved boxes; save them "
                             "(Label boxes > Save) so that the command trains on what you see, then export again")
        stack = layer_data.samples[0].image
        settings = replace(settings, data=stack, classes=settings.classes or layer_data.classes)
        layer_data = None
    if layer_data is not None:
        if layer_data.dataset_root is None:
            raise ValueError(f"the boxes of {layer_data.name!r} are not a dataset folder on disk; save them "
                             "(File > Save Selected Layers), open the folder with the Faster R-CNN reader, and "
                             "export again, or choose the folder as the source")
        if layer_data.unsaved:
            raise ValueError(f"{layer_data.unsaved} image(s) of {layer_data.name!r} have unsaved boxes; save them "
                             "(Label boxes > Save) so that the command trains on what you see, then export again")
        settings = replace(settings, data=layer_data.dataset_root, classes=settings.classes or layer_data.classes)
    path = Path(path)
    text, command = export_command(settings, path.resolve())
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, text.encode("utf-8"))
    return path, command


def sample_name(sample) -> str:
    """``001.png``, or for a plane of a stack ``movie.tif[3]`` (``[t,z]`` for two leading dimensions)."""
    plane = getattr(sample, "plane", None)
    return sample.image.name if plane is None else f"{sample.image.name}[{','.join(map(str, plane))}]"


# --- augmentation preview ----------------------------------------------------------------------------


@dataclass
class PreviewImages:
    """Augmented training images, padded into one stack, and their boxes."""

    images: np.ndarray  # (N, H, W, 3) uint8
    annotations: list[Annotation]
    sizes: list[tuple[int, int]]
    names: list[str]
    classes: list[str]


def augmentation_preview(data, augmentation, ratios=None, split_seed: int = 0, count: int = 8, seed: int = 0,
                         classes=None, normalization: str = "auto", channels=None) -> PreviewImages:
    """``count`` training images through the training's augmentation (the same
    ``build_transform(config, train=True)``), spread over the training part, after
    the model's ``normalization`` (as training sees them: a 16-bit image by its
    percentiles, not dark at a fraction of 65535) and with its ``channels``.

    ``data`` is a dataset folder or samples; ``ratios`` (None: all of it trains)
    and ``split_seed`` split it as the run will.
    """
    from napari_faster_rcnn.core.training.dataset import DetectionDataset
    from napari_faster_rcnn.core.training.samples import folder_samples
    from napari_faster_rcnn.core.training.splits import split_samples
    from napari_faster_rcnn.core.training.transforms import build_transform

    samples = folder_samples(data) if isinstance(data, (str, Path)) else list(data)
    if ratios is not None:
        samples = split_samples(samples, ratios, split_seed)[0]
    if not samples:
        raise ValueError("no training images to preview")
    picks = np.unique(np.linspace(0, len(samples) - 1, min(count, len(samples))).round().astype(int))
    dataset = DetectionDataset([samples[i] for i in picks], classes,
                               transform=build_transform(augmentation, train=True, seed=seed),
                               normalization=normalization, channels=channels)
    images, annotations, sizes = [], [], []
    for index in range(len(dataset)):
        tensor, target = dataset[index]
        image = (tensor.permute(1, 2, 0).numpy() * 255).round().clip(0, 255).astype(np.uint8)
        images.append(image)
        sizes.append(image.shape[:2])
        labels = [dataset.classes[int(i) - 1] for i in target["labels"]]
        annotations.append(Annotation(target["boxes"].numpy().astype(np.float64), labels,
                                      classes=list(dataset.classes)))
    height, width = max(s[0] for s in sizes), max(s[1] for s in sizes)
    stack = np.zeros((len(images), height, width, 3), dtype=np.uint8)
    for index, image in enumerate(images):
        stack[index, : image.shape[0], : image.shape[1]] = image
    names = [sample_name(sample) for sample in dataset.samples]
    return PreviewImages(stack, annotations, sizes, names, list(dataset.classes))


def show_preview(viewer, preview: PreviewImages, colors: dict | None = None) -> None:
    """Show ``preview`` as an RGB image layer and its boxes (``colors``: the classes' colours), in place
    of an earlier preview's layers; a picture only, not a box layer to label or train on."""
    for name in (PREVIEW_NAME, f"{PREVIEW_NAME} boxes"):
        if name in viewer.layers:
            viewer.layers.remove(name)
    viewer.add_image(preview.images, name=PREVIEW_NAME, rgb=True)
    data, kwargs, _ = conventions.shapes_layer_data(preview.annotations, stacked=True, name=f"{PREVIEW_NAME} boxes",
                                                    classes=preview.classes, colors=colors, image_sizes=preview.sizes)
    kwargs["metadata"].pop(conventions.LAYER_ROLE)
    viewer.add_shapes(data, **kwargs)
    viewer.dims.set_current_step(0, 0)
