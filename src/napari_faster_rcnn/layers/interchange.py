"""The viewer's side of the interchange formats: a box layer as a dataset to export, the folder
an import goes to, and COCO / Pascal VOC / YOLO folders opened read-only.

Why an import converts instead of labeling the other tool's files in place:

- A labeling session saves one small file per image when you leave it
  (atomically: a temporary file renamed over the old one) and knows from each
  file's stamp whether another program changed it. COCO keeps every image of
  the set in one JSON: saving one image would rewrite the whole file on every
  ``n``, and one stamp for the whole set would make any outside change a
  conflict on every image.
- What we do not model would be lost on rewriting: COCO segmentations,
  keypoints, attributes and track ids (CVAT), VOC's ``pose``/``truncated``/
  ``occluded``, YOLO's polygons. YOLO numbers classes by position, so renaming
  or removing one would renumber every label file and the ``data.yaml`` that a
  training setup points at.
- The other tool's export stays exactly as it was, to go back to it; **Export…**
  writes the labels out in its format when you are done.

So a COCO, VOC or YOLO folder dropped into napari opens read-only (no
annotation files: autosave and Save write nothing into it; the widget and a
notification say to use Import…), and Import… converts it into a new folder of
ours (``NAME_pt`` beside it) that saves as you label.

No Qt here.
"""

from __future__ import annotations

from pathlib import Path

from napari_faster_rcnn.core.data.annotations import class_list
from napari_faster_rcnn.core.data.image_files import ImageReadError
from napari_faster_rcnn.core.data.images import image_info
from napari_faster_rcnn.core.formats import (
    FORMAT_TITLES,
    FormatError,
    LabeledDataset,
    LabeledItem,
    detect_format,
    read_dataset,
)
from napari_faster_rcnn.layers import conventions
from napari_faster_rcnn.layers.box_layers import layer_annotations
from napari_faster_rcnn.layers.folder_layers import dataset_layers
from napari_faster_rcnn.layers.paging_registry import paging_model
from napari_faster_rcnn.layers.reader_reports import report_skipped

#: the suffix of the folder an import is converted into, beside the folder imported
IMPORT_SUFFIX = "_pt"


def layer_dataset(layer) -> LabeledDataset:
    """Every image of a box layer as a :class:`~.core.formats.LabeledDataset`, ready to export.

    The boxes are those of the session (or other model) that pages the layer,
    with the edits on screen not yet saved; the image files come from
    ``metadata["source_images"]``, the sizes from ``metadata["image_sizes"]``,
    and the class list, in its order and with classes that have no boxes, from
    the session (else the metadata).

    Raises
    ------
    ValueError
        If none of the layer's images is a file on disk (an image made in
        napari, or opened by another reader): a dataset needs its images.
    """
    metadata = layer.metadata
    model = paging_model(layer)
    annotations = model.all_annotations() if model is not None else layer_annotations(layer)
    sources = list(metadata.get(conventions.SOURCE_IMAGES) or [])
    sources = (sources + [None] * len(annotations))[: len(annotations)]
    if not any(source and Path(source).is_file() for source in sources):
        raise ValueError(
            f"{layer.name!r}: its images are not files on disk (made in napari, or opened by another reader), "
            "so they cannot go into a dataset folder; open the images from files with Faster R-CNN, or save the "
            "boxes alone with File > Save Selected Layers"
        )
    stacks = list(dict.fromkeys(Path(sources[i]).name for i in range(len(annotations))
                                if sources[i] and conventions.source_plane(metadata, i) is not None))
    if stacks:  # COCO, VOC and YOLO hold 2-D images: a stack's planes have no place there
        raise ValueError(f"{layer.name!r}: its pages include the planes of {len(stacks)} stack(s) "
                         f"({', '.join(stacks[:3])}), which COCO, Pascal VOC and YOLO cannot hold (2-D images only); "
                         "the stacks' boxes are in their own files (NAME.pt with planes)")
    sizes = list(metadata.get(conventions.IMAGE_SIZES) or [])
    files = conventions.annotation_paths(metadata)
    classes = class_list(annotations, getattr(model, "classes", None) or metadata.get(conventions.CLASSES) or ())
    digits = max(3, len(str(len(annotations) - 1)))
    items = []
    for index, annotation in enumerate(annotations):
        source = Path(sources[index]) if sources[index] else None
        size = tuple(int(v) for v in sizes[index]) if index < len(sizes) and sizes[index] else None
        if source is not None:
            name = source.name
        elif index < len(files) and files[index] is not None:
            name = files[index].stem
        else:
            name = f"{index:0{digits}d}"
        items.append(LabeledItem(source, size, annotation, name))
    root = metadata.get(conventions.DATASET_ROOT)
    return LabeledDataset(root=Path(root) if root else None, format="pt", classes=classes, items=items)


def import_destination(source: str | Path) -> Path:
    """The new folder an import of ``source`` goes to: ``NAME_pt`` beside it, or ``NAME_pt_2``, ... when taken."""
    source = Path(source).absolute()
    candidate = source.parent / f"{source.name}{IMPORT_SUFFIX}"
    counter = 1
    while candidate.exists():
        counter += 1
        candidate = source.parent / f"{source.name}{IMPORT_SUFFIX}_{counter}"
    return candidate


def inside(path: str | Path, folder: str | Path) -> bool:
    """Whether ``path`` is ``folder`` or lies under it (links resolved)."""
    path, folder = Path(path).resolve(), Path(folder).resolve()
    return path == folder or folder in path.parents


def read_only_note(layer) -> str | None:
    """What to tell a person labeling a layer read from a COCO / VOC / YOLO folder; None for ours."""
    fmt = layer.metadata.get(conventions.SOURCE_FORMAT)
    if not fmt:
        return None
    return (f"read-only {FORMAT_TITLES.get(fmt, fmt)} folder: edits here are not written to its files. "
            "Import… makes a copy in our format that saves as you label; Export… writes these boxes out")


# --- the reader's part ------------------------------------------------------------------------


def foreign_format(folder: str | Path) -> str | None:
    """``"coco"``, ``"voc"`` or ``"yolo"`` when ``folder`` is a dataset in that format; None for ours or none."""
    try:
        fmt = detect_format(folder)
    except (FormatError, OSError):
        return None
    return None if fmt == "pt" else fmt


def read_foreign_folder(path) -> list[tuple]:
    """A COCO, Pascal VOC or YOLO folder as an image stack and a read-only box layer.

    The box layer names no annotation files, so nothing the viewer saves goes
    into the folder (see the module docstring); a notification says how to
    label it. Unreadable files are skipped and listed, as for our folders.
    """
    from napari.utils.notifications import show_info

    path = Path(path[0] if isinstance(path, (list, tuple)) else path)
    dataset = read_dataset(path)
    skipped = list(dataset.skipped)
    images, sizes, dtypes, annotations = [], [], [], []
    for item in dataset.items:
        size = item.size
        if item.image is not None:
            try:
                *size, dtype = image_info(item.image)  # the pixels shown decide, not the format's record
            except ImageReadError as error:
                skipped.append((item.image, error.reason))
                continue
            dtypes.append(dtype)
        images.append(item.image)
        sizes.append(tuple(size) if size else None)
        annotations.append(item.annotation)
    if skipped:
        report_skipped(path, skipped)
    if not annotations:
        raise FormatError(path, "nothing could be read: " + "; ".join(f"{p.name}: {r}" for p, r in skipped[:5]))
    count = len(annotations)
    metadata = {
        conventions.SOURCE_IMAGES: [str(image) if image else None for image in images],
        conventions.ANNOTATION_FILES: [None] * count,
        conventions.ANNOTATION_STAMPS: [None] * count,
        conventions.DATASET_ROOT: str(path),
        conventions.SOURCE_FORMAT: dataset.format,
    }
    title = FORMAT_TITLES[dataset.format]
    layers = dataset_layers(path, images, sizes, dtypes, annotations, metadata, classes=dataset.classes,
                            name=f"{path.name} boxes ({title}, read-only)")
    show_info(f"Opened {path.name} ({title}) read-only: nothing is saved into its files. To label it, use "
              "Label boxes > Import…, which converts it into a new folder that saves as you go.")
    return layers
