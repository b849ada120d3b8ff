"""Pascal VOC XML: one ``<annotation>`` file per image.

Coordinates: the VOC devkit counts pixels from 1 and its ``xmin..xmax`` are
*inclusive* pixel indices (its evaluation adds 1 to ``xmax - xmin`` for the
width). A box around 0-based pixel columns ``c1..c2`` is ``[c1, c2 + 1)`` in
our continuous convention and ``xmin = c1 + 1, xmax = c2 + 1`` in VOC, so

    xmin = x1 + 1,  ymin = y1 + 1,  xmax = x2,  ymax = y2.

Fractional values are read and written as they are (the shortest text that
reads back exactly; integers without a decimal point). Tools differ here:
CVAT (Datumaro) and some scripts take ``xmin`` as ``x1`` itself, both ways; their
files read one pixel wider on the left and top than they were drawn, and ours
one pixel narrower there in them. COCO has no such ambiguity.

Where the files lie: ``Annotations/*.xml`` with the images in ``JPEGImages/``
(the devkit's and CVAT's layout), or XML files beside the images (LabelImg,
Roboflow, also in ``train/``, ``valid/``, ``test/``). ``labelmap.txt`` (CVAT)
gives the class order when there is one; else classes come in the order met.
An object marked ``difficult`` is read as an ordinary box, and said so. VOC
has no place for scores; they are not written.

XML is parsed by Python's expat with document type declarations refused, so
no entity can be declared: no "billion laughs", no external files read.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np

from napari_faster_rcnn.core.data.annotations import Annotation
from napari_faster_rcnn.core.formats._common import (
    SPLIT_FOLDERS,
    FormatError,
    LabeledDataset,
    LabeledItem,
    OutputItem,
    header_size,
    image_files,
    number_text,
    read_text,
    write_text,
)

IMAGE_FOLDER = "JPEGImages"
ANNOTATION_FOLDER = "Annotations"
LABEL_MAP = "labelmap.txt"
IMAGE_SET = "ImageSets/Main/default.txt"
NEEDS_SIZE = False


class _NoDoctypeBuilder(ElementTree.TreeBuilder):
    def doctype(self, name, pubid, system):
        raise FormatError(self.path, "has a document type declaration (<!DOCTYPE>), which is refused for safety")


def parse_xml(path: Path) -> ElementTree.Element:
    """Parse an XML file without DTDs (hence without entity expansion); errors name the file."""
    builder = _NoDoctypeBuilder()
    builder.path = path
    parser = ElementTree.XMLParser(target=builder)
    try:
        parser.feed(path.read_bytes())
        return parser.close()
    except ElementTree.ParseError as error:
        raise FormatError(path, f"not valid XML ({error})") from None
    except OSError as error:
        raise FormatError(path, f"cannot be read ({error.strerror or error})") from None


def _xml_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".xml" and not p.name.startswith("."))


def _looks_like_voc(path: Path) -> bool:
    try:
        with open(path, "rb") as file:
            return b"<annotation" in file.read(4096)
    except OSError:
        return False


def _annotation_folders(root: Path) -> list[Path]:
    """Folders holding VOC XML files: ``Annotations/``, the root, and split folders."""
    candidates = [root / ANNOTATION_FOLDER, root, *(root / split for split in SPLIT_FOLDERS)]
    return [folder for folder in candidates if any(_looks_like_voc(p) for p in _xml_files(folder)[:3])]


def detect(root: Path) -> bool:
    return bool(_annotation_folders(root))


def read(root: Path) -> LabeledDataset:
    """Read the VOC XML files of ``root`` and find their images."""
    folders = _annotation_folders(root)
    if not folders:
        raise FormatError(root, "no Pascal VOC XML files (Annotations/*.xml or .xml beside the images)")
    skipped: list = []
    dataset = LabeledDataset(root=root, format="voc", classes=_label_map(root, skipped), skipped=skipped)
    difficult = 0
    for folder in folders:
        image_folder = root / IMAGE_FOLDER if folder.name == ANNOTATION_FOLDER else folder
        images = image_files(image_folder, recursive=image_folder != root)
        by_name = {p.relative_to(image_folder).as_posix().casefold(): p for p in images}
        by_stem = {}
        for p in images:
            by_stem.setdefault(p.stem.casefold(), p)
        paired = set()
        for path in _xml_files(folder):
            try:
                root_element = parse_xml(path)
                if root_element.tag != "annotation":
                    raise FormatError(path, f"not a Pascal VOC annotation (the root element is <{root_element.tag}>)")
                annotation, file_name, size, hard = _read_annotation(path, root_element)
            except FormatError as error:
                dataset.skipped.append((path, error.reason))
                continue
            image = by_name.get((file_name or "").casefold()) or by_stem.get(path.stem.casefold())
            if image is None and file_name:
                image = by_stem.get(Path(file_name).stem.casefold())
            if image is not None:
                paired.add(image)
            if size is None:
                size = header_size(image, dataset.skipped)
            difficult += hard
            name = image.name if image is not None else (Path(file_name).name if file_name else path.stem)
            dataset.items.append(LabeledItem(image, size, annotation, name))
        unlabeled = [p for p in images if p not in paired]
        for image in unlabeled:  # no XML: an image without boxes, as VOC exports every image
            dataset.items.append(LabeledItem(image, header_size(image, dataset.skipped), Annotation(), image.name))
        if unlabeled:
            dataset.notes.append(f"{len(unlabeled)} images in {image_folder} have no XML file; read without boxes")
    for item in dataset.items:
        for label in item.annotation.labels:
            if label not in dataset.classes:
                dataset.classes.append(label)
    if difficult:
        dataset.notes.append(f"{difficult} boxes marked difficult were read as ordinary boxes")
    return dataset


def _read_annotation(path: Path, root: ElementTree.Element):
    file_name = (root.findtext("filename") or "").strip() or None
    size = None
    width, height = root.findtext("size/width"), root.findtext("size/height")
    try:
        if width and height and float(width) > 0 and float(height) > 0:
            size = (int(float(height)), int(float(width)))
    except (ValueError, OverflowError):
        raise FormatError(path, f"<size> is not a number of pixels: width {width!r}, height {height!r}") from None
    boxes, labels, difficult = [], [], 0
    for number, element in enumerate(root.findall("object"), start=1):
        name = (element.findtext("name") or "").strip()
        box = element.find("bndbox")
        if not name or box is None:
            raise FormatError(path, f"object {number} needs a <name> and a <bndbox>")
        try:
            xmin, ymin, xmax, ymax = (float(box.findtext(tag) or "") for tag in ("xmin", "ymin", "xmax", "ymax"))
        except ValueError:
            raise FormatError(path, f"object {number}: <bndbox> needs numbers xmin, ymin, xmax, ymax") from None
        boxes.append((xmin - 1.0, ymin - 1.0, xmax, ymax))
        labels.append(name)
        difficult += (element.findtext("difficult") or "0").strip() in ("1", "true")
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    # xmin - 1 may round a hair past xmax for an empty box; that is no inverted box.
    for low, high in ((0, 2), (1, 3)):
        near = (boxes[:, low] > boxes[:, high]) & (boxes[:, low] - boxes[:, high] <= 1e-9 * (1 + np.abs(boxes[:, high])))
        boxes[near, low] = boxes[near, high]
    try:
        annotation = Annotation(boxes, labels)
    except ValueError as error:
        raise FormatError(path, f"{error} (VOC xmax must be at least xmin - 1)") from None
    return annotation, file_name, size, difficult


def _label_map(root: Path, skipped: list) -> list[str]:
    """Class names from CVAT's ``labelmap.txt`` (``name:r,g,b:parts:actions`` lines), if any."""
    path = root / LABEL_MAP
    if not path.is_file():
        return []
    try:
        text = read_text(path)
    except FormatError as error:
        skipped.append((path, error.reason))
        return []
    names = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name = line.split(":", 1)[0].strip()
            if name and name not in names:
                names.append(name)
    # CVAT lists the devkit's "background" first; it is no class of boxes.
    return [name for name in names if name != "background"]


def write(folder: Path, classes: list[str], outputs: list[OutputItem], notes: list[str]) -> None:
    """Write ``Annotations/*.xml``, ``ImageSets/Main/default.txt`` and ``labelmap.txt``."""
    scored = 0
    for output in outputs:
        stem = Path(output.name).stem
        root = _annotation_element(output)
        ElementTree.indent(root)
        path = folder / ANNOTATION_FOLDER / f"{stem}.xml"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "xb") as file:
            ElementTree.ElementTree(root).write(file, encoding="utf-8", xml_declaration=False)
            file.write(b"\n")
        scored += len(output.annotation) if output.annotation.scores is not None else 0
    write_text(folder / IMAGE_SET, "".join(f"{Path(o.name).stem}\n" for o in outputs))
    if any(":" in name or "\n" in name for name in classes):
        notes.append(f"{LABEL_MAP} not written: a class name holds ':' or a line break")
    else:
        write_text(folder / LABEL_MAP, "# label:color_rgb:parts:actions\n" + "".join(f"{n}:::\n" for n in classes))
    if scored:
        notes.append(f"VOC has no place for scores: the scores of {scored} boxes were not written")


def _annotation_element(output: OutputItem) -> ElementTree.Element:
    root = ElementTree.Element("annotation")
    _text(root, "folder", IMAGE_FOLDER)
    _text(root, "filename", output.name)
    if output.size is not None:
        size = ElementTree.SubElement(root, "size")
        _text(size, "width", str(int(output.size[1])))
        _text(size, "height", str(int(output.size[0])))
        _text(size, "depth", "3")
    _text(root, "segmented", "0")
    for box, label in zip(output.annotation.boxes.tolist(), output.annotation.labels):
        element = ElementTree.SubElement(root, "object")
        _text(element, "name", label)
        _text(element, "pose", "Unspecified")
        _text(element, "truncated", "0")
        _text(element, "difficult", "0")
        bndbox = ElementTree.SubElement(element, "bndbox")
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), (box[0] + 1.0, box[1] + 1.0, box[2], box[3])):
            _text(bndbox, tag, number_text(value))
    return root


def _text(parent: ElementTree.Element, tag: str, text: str) -> None:
    ElementTree.SubElement(parent, tag).text = text
