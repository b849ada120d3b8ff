"""The viewer's side of the interchange formats, without the widget: COCO / VOC / YOLO folders
opened read-only by the reader, a box layer as a dataset, where an import goes."""

import numpy as np
import pytest

from napari_faster_rcnn._reader import get_reader
from napari_faster_rcnn.core.data.annotations import Annotation
from napari_faster_rcnn.core.data.boxes import boxes_to_rectangles, rectangles_to_boxes
from napari_faster_rcnn.core.formats import LabeledDataset, LabeledItem, write_dataset
from napari_faster_rcnn.layers import conventions
from napari_faster_rcnn.layers.folder_reading import read_dataset_folder
from napari_faster_rcnn.layers.interchange import (
    foreign_format,
    import_destination,
    inside,
    layer_dataset,
    read_foreign_folder,
)
from napari_faster_rcnn.layers.labeling import labeling_session
from tests.conftest import write_image

PLUGIN = "napari-faster-rcnn"
CLASSES = ["cat", "dog", "bird"]
BOXES = {
    "a.png": Annotation([[1.5, 2.0, 30.0, 20.25]], ["dog"]),
    "b.png": Annotation(),
    "c.png": Annotation([[0.0, 0.0, 10.0, 10.0], [5.0, 6.0, 59.5, 39.0]], ["cat", "dog"]),
}


def write_in(folder, fmt, source):
    items = []
    for seed, (name, annotation) in enumerate(BOXES.items()):
        write_image(source / name, 40, 60, seed=seed)
        items.append(LabeledItem(source / name, (40, 60), annotation, name))
    write_dataset(LabeledDataset(root=None, format="pt", classes=CLASSES, items=items), folder, fmt)
    return folder


def files_of(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("fmt", ["coco", "voc", "yolo"])
def test_the_reader_opens_other_formats_read_only(make_napari_viewer, tmp_path, fmt):
    folder = write_in(tmp_path / fmt, fmt, tmp_path / "source")
    before = files_of(folder)
    assert foreign_format(folder) == fmt and get_reader(str(folder)) is read_foreign_folder
    viewer = make_napari_viewer()
    viewer.open(folder, plugin=PLUGIN)
    image, shapes = viewer.layers
    assert image.data.shape[:3] == (3, 40, 60)
    assert shapes.metadata[conventions.CLASSES] == CLASSES  # "bird" has no boxes and stays, in its place
    assert shapes.metadata[conventions.SOURCE_FORMAT] == fmt and shapes.metadata[conventions.ANNOTATION_FILES] == [None] * 3
    assert [p.rsplit("/", 1)[-1] for p in shapes.metadata[conventions.SOURCE_IMAGES]] == list(BOXES)

    session = labeling_session(viewer, shapes)
    got = session.all_annotations()
    for annotation, expected in zip(got, BOXES.values()):
        np.testing.assert_allclose(annotation.boxes.reshape(-1, 4), expected.boxes, atol=1e-3)
        assert annotation.labels == expected.labels
    viewer.dims.set_current_step(0, 0)
    shapes.add_rectangles(boxes_to_rectangles(np.array([[2.0, 2.0, 9.0, 9.0]]), image_index=0))
    session.ask_unsaved = lambda count, can_cancel: "discard"
    report = session.save()
    assert report.written == [] and report.without_file == [0]  # read-only: nothing goes into their files
    assert files_of(folder) == before


def test_our_folders_still_open_as_ours(tutorial_dataset, side_by_side_dataset, tmp_path):
    assert get_reader(str(tutorial_dataset)) is read_dataset_folder
    assert get_reader(str(side_by_side_dataset)) is read_dataset_folder
    (tmp_path / "empty").mkdir()
    assert foreign_format(tmp_path / "empty") is None and get_reader(str(tmp_path / "empty")) is None
    assert foreign_format(tmp_path / "nowhere") is None


def test_images_with_voc_xml_beside_them_show_their_boxes(make_napari_viewer, tmp_path):
    """A LabelImg folder (images and .xml side by side) used to open as images without boxes;
    labeling it would then have written .pt files among the XML."""
    voc = write_in(tmp_path / "voc", "voc", tmp_path / "source")
    beside = tmp_path / "labelimg"
    beside.mkdir()
    for path in list((voc / "JPEGImages").iterdir()) + list((voc / "Annotations").iterdir()):
        (beside / path.name).write_bytes(path.read_bytes())
    viewer = make_napari_viewer()
    viewer.open(beside, plugin=PLUGIN)
    boxes, index = rectangles_to_boxes(viewer.layers[-1].data)
    assert len(boxes) == 3 and viewer.layers[-1].metadata[conventions.SOURCE_FORMAT] == "voc"


def test_a_layer_as_a_dataset(make_napari_viewer, tutorial_dataset):
    viewer = make_napari_viewer()
    viewer.open(tutorial_dataset, plugin=PLUGIN)
    layer = viewer.layers[1]  # not paged: every box is in the layer
    dataset = layer_dataset(layer)
    assert [item.name for item in dataset.items] == [f"{i:03d}.png" for i in range(6)]
    assert all(item.image.is_file() and item.size == (64, 80) for item in dataset.items)
    assert dataset.classes == layer.metadata[conventions.CLASSES] and dataset.root == tutorial_dataset
    session = labeling_session(viewer, layer)
    session.add_class("unused")
    viewer.dims.set_current_step(0, 0)
    session.layer.add_rectangles(boxes_to_rectangles(np.array([[1.0, 1.0, 5.0, 5.0]]), image_index=0))
    paged = layer_dataset(layer)  # paged by the session: its boxes, the one on screen too
    assert len(paged.items[0].annotation) == len(dataset.items[0].annotation) + 1
    assert paged.classes[-1] == "unused"


def test_an_import_goes_beside_the_folder_never_into_it(tmp_path):
    source = tmp_path / "cvat export"
    source.mkdir()
    assert import_destination(source) == tmp_path / "cvat export_pt"
    (tmp_path / "cvat export_pt").mkdir()
    (tmp_path / "cvat export_pt_2").write_text("a file")
    assert import_destination(source) == tmp_path / "cvat export_pt_3"
    assert inside(source / "x" / "y", source) and inside(source, source)
    assert not inside(tmp_path / "cvat export_pt", source)
