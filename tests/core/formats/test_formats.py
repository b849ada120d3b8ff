"""Interchange formats: round trips through each format, and the API the CLI and widget use.

Files as CVAT, Label Studio and Roboflow write them are in test_formats_examples.py.
"""

import os
import tempfile
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from napari_faster_rcnn.core.data.annotations import Annotation, save_annotation
from napari_faster_rcnn.core.formats import (
    FORMATS,
    FormatError,
    LabeledDataset,
    LabeledItem,
    convert_dataset,
    detect_format,
    iter_write_dataset,
    matching_formats,
    read_dataset,
    write_dataset,
)
from tests.conftest import write_image

CLASS_NAMES = ["cell", "nucleus", "big cell", "Zelle-ä", "x_1"]


def blank_image(path: Path, height: int, width: int) -> Path:
    """A 1-bit PNG: only its header matters here, and it is quick to write even when large."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("1", (width, height)).save(path)
    return path


@st.composite
def datasets(draw, with_scores=False):
    """Images of random sizes with 0-6 boxes inside each, integer or fractional coordinates."""
    classes = draw(st.lists(st.sampled_from(CLASS_NAMES), min_size=1, max_size=4, unique=True))
    images = []
    for index in range(draw(st.integers(1, 4))):
        height, width = draw(st.integers(1, 4000)), draw(st.integers(1, 4000))
        boxes = []
        for _ in range(draw(st.integers(0, 6))):
            coordinate = st.one_of(st.integers(0, 4000).map(float), st.floats(0, 4000, allow_nan=False))
            xs = sorted(min(draw(coordinate), width) for _ in range(2))
            ys = sorted(min(draw(coordinate), height) for _ in range(2))
            boxes.append([xs[0], ys[0], xs[1], ys[1]])
        labels = [draw(st.sampled_from(classes)) for _ in boxes]
        scores = [draw(st.floats(0, 1)) for _ in boxes] if with_scores else None
        images.append((f"img{index}.png", (height, width), Annotation(np.reshape(boxes, (-1, 4)), labels, scores)))
    return classes, images


def make_dataset(folder: Path, classes, images) -> LabeledDataset:
    items = []
    for name, size, annotation in images:
        items.append(LabeledItem(blank_image(folder / name, *size), size, annotation, name))
    return LabeledDataset(root=folder, format="pt", classes=list(classes), items=items)


def assert_same(read_back: LabeledDataset, classes, images, scores: bool):
    assert read_back.classes[: len(classes)] == list(classes)
    by_name = {item.name: item for item in read_back.items}
    assert sorted(by_name) == sorted(name for name, _, _ in images)  # images without boxes too
    for name, size, annotation in images:
        item = by_name[name]
        assert item.size == size
        assert item.image is not None and item.image.name == name
        np.testing.assert_allclose(item.annotation.boxes, annotation.boxes, rtol=0, atol=1e-3)
        assert item.annotation.labels == annotation.labels
        if scores and len(annotation):  # an image without boxes has no scores to keep
            np.testing.assert_allclose(item.annotation.scores, annotation.scores, atol=1e-9)


ROUND_TRIP = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("fmt", FORMATS)
@ROUND_TRIP
@given(data=datasets())
def test_round_trip_keeps_boxes_labels_classes_and_sizes(fmt, data):
    classes, images = data
    with tempfile.TemporaryDirectory() as temporary:
        temporary = Path(temporary)
        report = write_dataset(make_dataset(temporary / "source", classes, images), temporary / "out", fmt)
        assert report.images == len(images) and report.boxes == sum(len(a) for _, _, a in images)
        assert detect_format(temporary / "out") == fmt
        read_back = read_dataset(temporary / "out")
        assert read_back.format == fmt and read_back.skipped == []
        assert_same(read_back, classes, images, scores=False)


@pytest.mark.parametrize("fmt", ["coco", "yolo", "pt"])
@ROUND_TRIP
@given(data=datasets(with_scores=True))
def test_scores_survive_where_the_format_has_a_place_for_them(fmt, data):
    classes, images = data
    with tempfile.TemporaryDirectory() as temporary:
        temporary = Path(temporary)
        write_dataset(make_dataset(temporary / "source", classes, images), temporary / "out", fmt)
        assert_same(read_dataset(temporary / "out", fmt), classes, images, scores=True)


def test_voc_says_it_drops_scores(tmp_path):
    image = blank_image(tmp_path / "a.png", 20, 30)
    dataset = LabeledDataset(None, "pt", ["a"], [LabeledItem(image, (20, 30), Annotation([[1, 2, 3, 4]], ["a"], [0.5]), "a.png")])
    report = write_dataset(dataset, tmp_path / "voc", "voc")
    assert any("scores of 1 boxes were not written" in note for note in report.notes)


def test_voc_coordinates_follow_the_devkit(tmp_path):
    """Our box [10, 20) x [5, 8) covers 0-based pixel columns 10..19: VOC 11..20."""
    image = blank_image(tmp_path / "a.png", 40, 40)
    dataset = LabeledDataset(None, "pt", ["a"], [LabeledItem(image, (40, 40), Annotation([[10, 5, 20, 8.25]], ["a"]), "a.png")])
    write_dataset(dataset, tmp_path / "voc", "voc")
    text = (tmp_path / "voc" / "Annotations" / "a.xml").read_text()
    for tag, value in [("xmin", "11"), ("ymin", "6"), ("xmax", "20"), ("ymax", "8.25")]:
        assert f"<{tag}>{value}</{tag}>" in text


def test_yolo_and_coco_coordinates(tmp_path):
    image = blank_image(tmp_path / "a.png", 50, 200)
    annotation = Annotation([[10, 5, 30, 15]], ["b"])
    dataset = LabeledDataset(None, "pt", ["a", "b"], [LabeledItem(image, (50, 200), annotation, "a.png")])
    write_dataset(dataset, tmp_path / "yolo", "yolo")
    assert (tmp_path / "yolo" / "labels" / "a.txt").read_text() == "1 0.1 0.2 0.1 0.2\n"
    write_dataset(dataset, tmp_path / "coco", "coco")
    text = (tmp_path / "coco" / "annotations" / "instances_default.json").read_text()
    assert '"bbox":[10.0,5.0,20.0,10.0]' in text and '"category_id":2' in text


def test_unused_classes_and_empty_images_survive_every_format(tmp_path):
    image = blank_image(tmp_path / "src" / "empty.png", 10, 10)
    dataset = LabeledDataset(None, "pt", ["never", "used"], [LabeledItem(image, (10, 10), Annotation(), "empty.png")])
    for fmt in FORMATS:
        write_dataset(dataset, tmp_path / fmt, fmt)
        read_back = read_dataset(tmp_path / fmt)
        assert read_back.classes == ["never", "used"], fmt
        assert [(item.name, len(item.annotation), item.size) for item in read_back.items] == [("empty.png", 0, (10, 10))]


# --- writing: new folders only, images linked or copied, all or nothing ---------


@pytest.fixture
def small_dataset(tmp_path):
    images = [("a.png", (20, 30), Annotation([[1, 2, 10, 12]], ["cat"])), ("b.png", (20, 30), Annotation())]
    return make_dataset(tmp_path / "source", ["cat"], images)


@pytest.mark.parametrize("fmt", FORMATS)
def test_writing_refuses_a_folder_that_holds_anything(tmp_path, small_dataset, fmt):
    target = tmp_path / "out"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="out: the destination folder is not empty"):
        write_dataset(small_dataset, target, fmt)
    assert os.listdir(target) == ["keep.txt"] and (target / "keep.txt").read_text() == "mine"
    (target / "keep.txt").unlink()
    write_dataset(small_dataset, target, fmt)  # an empty folder is fine
    assert detect_format(target) == fmt


def test_images_are_hard_linked_or_copied_never_moved(tmp_path, small_dataset):
    source = small_dataset.items[0].image
    before = source.read_bytes()
    linked = write_dataset(small_dataset, tmp_path / "linked", "yolo")
    assert linked.linked == 2 and linked.image_files == 2
    assert (tmp_path / "linked" / "images" / "a.png").stat().st_ino == source.stat().st_ino
    copied = write_dataset(small_dataset, tmp_path / "copied", "yolo", link_images=False)
    assert copied.linked == 0 and copied.image_files == 2
    assert (tmp_path / "copied" / "images" / "a.png").stat().st_ino != source.stat().st_ino
    assert source.read_bytes() == before and (tmp_path / "copied" / "images" / "a.png").read_bytes() == before


def test_an_interrupted_write_leaves_nothing_behind(tmp_path, small_dataset):
    steps = iter_write_dataset(small_dataset, tmp_path / "out", "voc")
    assert next(steps) == (1, 2)
    steps.close()  # a cancelled thread worker
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_names_that_clash_are_made_unique(tmp_path):
    first = blank_image(tmp_path / "train" / "a.png", 10, 10)
    second = blank_image(tmp_path / "valid" / "a.png", 12, 12)
    items = [LabeledItem(first, (10, 10), Annotation([[0, 0, 1, 1]], ["x"]), "a.png"),
             LabeledItem(second, (12, 12), Annotation([[0, 0, 2, 2]], ["x"]), "a.png")]
    report = write_dataset(LabeledDataset(None, "yolo", ["x"], items), tmp_path / "out", "pt")
    assert any("renamed" in note for note in report.notes)
    read_back = read_dataset(tmp_path / "out")
    assert [(item.name, item.size) for item in read_back.items] == [("a.png", (10, 10)), ("a_2.png", (12, 12))]


def test_yolo_needs_image_sizes_and_says_which_are_missing(tmp_path):
    items = [LabeledItem(None, None, Annotation([[0, 0, 1, 1]], ["x"]), "gone.jpg"),
             LabeledItem(None, (5, 5), Annotation([[0, 0, 1, 1]], ["x"]), "known.jpg")]
    dataset = LabeledDataset(None, "coco", ["x"], items)
    report = write_dataset(dataset, tmp_path / "out", "yolo")
    assert report.images == 1
    assert report.skipped == [(Path("gone.jpg"), "the image size is unknown, which yolo needs")]
    assert any("not on disk" in note for note in report.notes)
    assert (tmp_path / "out" / "labels" / "known.txt").read_text() == "0 0.1 0.1 0.2 0.2\n"


def test_unknown_format_names_the_choices(tmp_path, small_dataset):
    with pytest.raises(ValueError, match="unknown format 'tiff'; choose one of coco, voc, yolo, pt"):
        write_dataset(small_dataset, tmp_path / "out", "tiff")


# --- detecting and reading our own folders -------------------------------------


def test_detect_format_names_the_folder_when_nothing_fits(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(FormatError, match=f"{tmp_path}: no dataset in a known format"):
        detect_format(tmp_path)
    with pytest.raises(FormatError, match="nowhere: not a folder"):
        read_dataset(tmp_path / "nowhere")


def test_our_layouts_are_pt(tutorial_dataset, side_by_side_dataset, tmp_path):
    assert detect_format(tutorial_dataset) == "pt"
    assert detect_format(side_by_side_dataset) == "pt"  # .json annotations beside images are ours, not COCO
    dataset = read_dataset(side_by_side_dataset)
    assert [(item.name, len(item.annotation), item.size) for item in dataset.items] == [
        ("a.png", 2, (40, 60)), ("b.jpg", 1, (50, 30)), ("c.png", 0, (20, 20))]
    assert dataset.classes == ["cat", "dog"]
    assert any("1 images have no annotation file" in note for note in dataset.notes)


def test_matching_formats_lists_every_format_that_fits(tmp_path, small_dataset, tutorial_dataset):
    for fmt in ("coco", "voc", "yolo", "pt"):
        write_dataset(small_dataset, tmp_path / fmt, fmt)
        assert matching_formats(tmp_path / fmt) == [fmt] == [detect_format(tmp_path / fmt)]
    assert matching_formats(tutorial_dataset) == ["pt"]
    # VOC XML files beside the images of a folder that also holds a COCO JSON: both fit, COCO first
    mixed = tmp_path / "mixed"
    write_dataset(small_dataset, mixed, "voc")
    coco = tmp_path / "coco" / "annotations" / "instances_default.json"
    (mixed / "annotations.json").write_bytes(coco.read_bytes())
    assert matching_formats(mixed) == ["coco", "voc"] and detect_format(mixed) == "coco"
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("x")
    assert matching_formats(tmp_path / "notes") == []


def test_an_unreadable_annotation_leaves_its_image_out(tmp_path):
    write_image(tmp_path / "input" / "a.png")
    write_image(tmp_path / "input" / "b.png")
    save_annotation(tmp_path / "target" / "a.pt", Annotation([[0, 0, 5, 5]], ["x"]))
    (tmp_path / "target" / "b.pt").write_bytes(b"not a pickle")
    dataset = read_dataset(tmp_path)
    assert [item.name for item in dataset.items] == ["a.png"]
    assert [path.name for path, _ in dataset.skipped] == ["b.pt"]
    report = convert_dataset(tmp_path, tmp_path.parent / "converted", "coco")
    assert report.images == 1 and report.skipped == dataset.skipped


# --- boxes outside their image, a killed write, folder modes ------------------------

OUTSIDE = Annotation([[-5, 2, 40, 12], [1, 1, 1e308, 25], [2, 3, 8, 9]], ["cat", "cat", "cat"])
# the same boxes cut at the border of a 20 x 30 image, by hand
INSIDE = np.array([[0, 2, 30, 12], [1, 1, 30, 20], [2, 3, 8, 9]], dtype=float)


@pytest.mark.parametrize("fmt", FORMATS)
def test_boxes_outside_their_image_are_clipped_on_write_and_counted(tmp_path, fmt):
    image = blank_image(tmp_path / "source" / "a.png", 20, 30)
    dataset = LabeledDataset(None, "pt", ["cat"], [LabeledItem(image, (20, 30), OUTSIDE, "a.png")])
    report = write_dataset(dataset, tmp_path / fmt, fmt)
    assert report.clipped_boxes == 2 and report.boxes == 3
    assert "clipped 2 boxes that reached outside their image to its border" in report.summary()
    (item,) = read_dataset(tmp_path / fmt).items
    np.testing.assert_allclose(item.annotation.boxes, INSIDE, rtol=0, atol=1e-9)


def test_a_round_trip_through_yolo_clips_nothing(tmp_path):
    # boxes on the border read back from YOLO's centre and size a hair outside it: no clipping to report
    image = blank_image(tmp_path / "source" / "a.png", 10, 2180)
    boxes = Annotation([[2054.345960432867, 0, 2180, 10]], ["x"])  # x2 reads back as 2180 + 4.5e-13
    write_dataset(LabeledDataset(None, "pt", ["x"], [LabeledItem(image, (10, 2180), boxes, "a.png")]), tmp_path / "y",
                  "yolo")
    assert read_dataset(tmp_path / "y").items[0].annotation.boxes[0, 2] > 2180
    report = convert_dataset(tmp_path / "y", tmp_path / "back", "pt")
    assert report.clipped_boxes == 0 and "clipped" not in report.summary()
    assert read_dataset(tmp_path / "back").items[0].annotation.boxes[0, 2] == 2180  # cut all the same


def test_yolo_beyond_1_and_voc_xmax_1e308_are_clipped_when_converted(tmp_path):
    yolo = tmp_path / "yolo"
    blank_image(yolo / "images" / "a.png", 20, 30)
    (yolo / "labels").mkdir()
    (yolo / "labels" / "a.txt").write_text("0 0.9 0.5 0.4 0.2\n")  # x from 21 to 33 px in a 30 px wide image
    (yolo / "classes.txt").write_text("cat\n")
    report = convert_dataset(yolo, tmp_path / "voc", "voc")
    assert report.clipped_boxes == 1
    xml = (tmp_path / "voc" / "Annotations" / "a.xml").read_text()
    box = ElementTree.fromstring(xml).find("object/bndbox")
    corners = [float(box.findtext(tag)) for tag in ("xmin", "ymin", "xmax", "ymax")]
    assert corners == pytest.approx([22, 9, 30, 12]) and "<xmax>30</xmax>" in xml

    voc = tmp_path / "voc"
    (voc / "Annotations" / "a.xml").write_text(xml.replace("<xmax>30</xmax>", "<xmax>1e308</xmax>"))
    report = convert_dataset(voc, tmp_path / "yolo again", "yolo")
    assert report.clipped_boxes == 1
    values = [float(v) for v in (tmp_path / "yolo again" / "labels" / "a.txt").read_text().split()[1:]]
    assert values == pytest.approx([(21 + 30) / 2 / 30, 0.5, 9 / 30, 0.2])


KILLED_WRITE = """
import os, sys
from napari_faster_rcnn.core.formats import iter_convert_dataset
steps = iter_convert_dataset(sys.argv[1], sys.argv[2], "voc")
next(steps)  # the staging folder holds the first image
os._exit(9)  # killed: no cleanup runs
"""


def killed_write(source, destination) -> list[Path]:
    """Run a write in another process and kill it midway; the hidden folders it left."""
    import subprocess
    import sys

    source_root = Path(__file__).resolve().parents[3] / "src"
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(source_root), os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-c", KILLED_WRITE, str(source), str(destination)], env=environment,
                   check=False, timeout=300)
    return [p for p in destination.parent.iterdir() if p.name.startswith(f".{destination.name}.partial-")]


def test_a_write_removes_what_a_killed_write_to_the_same_folder_left(tmp_path, small_dataset):
    write_dataset(small_dataset, tmp_path / "pt", "pt")
    left = killed_write(tmp_path / "pt", tmp_path / "out")
    assert len(left) == 1 and (left[0] / "JPEGImages" / "a.png").is_file()
    old = tmp_path / ".out.partial-k2j4_x9q"  # what versions before the owner was in the name left
    (old / "JPEGImages").mkdir(parents=True)
    other = tmp_path / ".other.partial-k2j4_x9q"  # another destination's
    other.mkdir()
    report = write_dataset(small_dataset, tmp_path / "out", "voc")
    assert not left[0].exists() and not old.exists() and other.is_dir()
    assert "removed 2 unfinished folders that an interrupted write to out had left" in report.summary()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == [".other.partial-k2j4_x9q"]


def test_a_write_leaves_alone_the_staging_folder_of_a_write_still_running(tmp_path, small_dataset):
    running = iter_write_dataset(small_dataset, tmp_path / "out", "voc")
    next(running)
    (staging,) = [p for p in tmp_path.iterdir() if p.name.startswith(".out.partial-")]
    write_dataset(small_dataset, tmp_path / "out", "voc")  # a second write to the same folder finishes first
    assert (staging / "JPEGImages" / "a.png").is_file()
    with pytest.raises(FileExistsError):  # the first then finds the folder taken, and removes its own
        list(running)
    assert not staging.exists()


def test_the_new_folder_and_the_folders_in_it_have_one_mode(tmp_path, small_dataset):
    reference = tmp_path / "made by mkdir"
    reference.mkdir()
    expected = reference.stat().st_mode & 0o777
    for fmt in FORMATS:
        write_dataset(small_dataset, tmp_path / fmt, fmt)
        folders = [tmp_path / fmt, *(p for p in (tmp_path / fmt).rglob("*") if p.is_dir())]
        assert len(folders) > 1
        assert {p.stat().st_mode & 0o777 for p in folders} == {expected}, fmt
