"""``napari-faster-rcnn convert``: there and back gives the same boxes and labels; nothing is overwritten."""

import numpy as np
import pytest

from napari_faster_rcnn.cli import main
from napari_faster_rcnn.core.data.annotations import Annotation, load_annotation, save_annotation
from tests.conftest import write_image
from tests.large_images import write_blank_png


def annotations_of(folder):
    """Image name -> annotation of a dataset folder in our input/ + target/ layout."""
    return {path.stem: load_annotation(path) for path in sorted((folder / "target").glob("*.pt"))}


@pytest.fixture
def labeled(tmp_path):
    """Three photos of different sizes: fractional boxes, an unlabeled one, a class without boxes."""
    folder = tmp_path / "labeled"
    write_image(folder / "input" / "a.png", 40, 60, seed=1)
    write_image(folder / "input" / "b.jpg", 50, 30, seed=2)
    write_image(folder / "input" / "c.png", 20, 20, seed=3)
    classes = ["cat", "dog", "bird"]
    save_annotation(folder / "target" / "a.pt",
                    Annotation([[1.25, 2, 30.5, 20], [10, 10, 60, 40]], ["cat", "dog"], classes=classes))
    save_annotation(folder / "target" / "b.pt", Annotation([[0, 0, 29.5, 49.75]], ["dog"], classes=classes))
    save_annotation(folder / "target" / "c.pt", Annotation(classes=classes))
    return folder


@pytest.mark.parametrize("fmt", ["coco", "voc", "yolo", "pt"])
def test_there_and_back_gives_the_same_boxes_and_labels(tmp_path, labeled, fmt, capsys):
    assert main(["convert", str(labeled), str(tmp_path / fmt), "--to", fmt]) == 0
    out = capsys.readouterr().out
    assert "read" in out and "as input/ + target/*.pt" in out
    assert "wrote 3 images (3 hard-linked, 0 copied), 3 boxes, 3 classes" in out
    assert "classes: cat, dog, bird" in out
    assert main(["convert", str(tmp_path / fmt), str(tmp_path / "back"), "--to", "pt"]) == 0
    original, back = annotations_of(labeled), annotations_of(tmp_path / "back")
    assert sorted(back) == ["a", "b", "c"]
    for name, annotation in original.items():
        np.testing.assert_allclose(back[name].boxes, annotation.boxes, rtol=0, atol=1e-9)
        assert back[name].labels == annotation.labels
        assert back[name].classes == ["cat", "dog", "bird"]
    assert sorted(p.name for p in (tmp_path / "back" / "input").iterdir()) == ["a.png", "b.jpg", "c.png"]


def test_a_chain_through_every_format(tmp_path, labeled):
    folder = labeled
    for fmt in ["coco", "voc", "yolo", "coco", "pt"]:
        target = tmp_path / f"step-{fmt}-{len(list(tmp_path.iterdir()))}"
        assert main(["convert", str(folder), str(target), "--to", fmt, "--copy"]) == 0
        folder = target
    original, back = annotations_of(labeled), annotations_of(folder)
    for name, annotation in original.items():
        np.testing.assert_allclose(back[name].boxes, annotation.boxes, rtol=0, atol=1e-9)
        assert back[name].labels == annotation.labels


def test_refuses_a_destination_that_holds_anything(tmp_path, labeled, capsys):
    destination = tmp_path / "taken"
    destination.mkdir()
    (destination / "important.txt").write_text("keep me")
    assert main(["convert", str(labeled), str(destination), "--to", "coco"]) == 2
    err = capsys.readouterr().err
    assert f"error: {destination}: the destination folder is not empty" in err and "Traceback" not in err
    assert [p.name for p in destination.iterdir()] == ["important.txt"]
    assert (destination / "important.txt").read_text() == "keep me"
    assert main(["convert", str(labeled), str(labeled), "--to", "pt"]) == 2  # onto itself
    assert "not empty" in capsys.readouterr().err
    assert sorted(annotations_of(labeled)) == ["a", "b", "c"]


def test_bad_input_exits_2_with_the_reason(tmp_path, labeled, capsys):
    assert main(["convert", str(tmp_path / "nowhere"), str(tmp_path / "out"), "--to", "yolo"]) == 2
    assert "nowhere: not a folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["convert", str(tmp_path / "empty"), str(tmp_path / "out"), "--to", "yolo"]) == 2
    assert "empty: no dataset in a known format" in capsys.readouterr().err
    assert main(["convert", str(labeled), str(tmp_path / "out"), "--to", "coco", "--from", "voc"]) == 2
    assert "no Pascal VOC XML files" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_status:
        main(["convert", str(labeled), str(tmp_path / "out"), "--to", "tiff"])
    assert exit_status.value.code == 2
    assert not (tmp_path / "out").exists()


def test_skipped_files_are_listed_with_the_reason(tmp_path, labeled, capsys):
    (labeled / "target" / "b.pt").write_bytes(b"garbage")
    assert main(["convert", str(labeled), str(tmp_path / "out"), "--to", "yolo"]) == 0
    captured = capsys.readouterr()
    assert "wrote 2 images" in captured.out and "skipped 1:" in captured.out
    assert f"{labeled / 'target' / 'b.pt'}: " in captured.out
    assert "1 files or images were skipped" in captured.err
    assert sorted(p.name for p in (tmp_path / "out" / "labels").iterdir()) == ["a.txt", "c.txt"]


def test_boxes_outside_the_image_are_clipped_and_the_summary_says_how_many(tmp_path, labeled, capsys):
    save_annotation(labeled / "target" / "c.pt", Annotation([[5, 5, 1e308, 30], [-3, 0, 4, 4]], ["cat", "bird"]))
    assert main(["convert", str(labeled), str(tmp_path / "yolo"), "--to", "yolo"]) == 0
    assert "clipped 2 boxes that reached outside their image to its border" in capsys.readouterr().out
    lines = [line.split() for line in (tmp_path / "yolo" / "labels" / "c.txt").read_text().splitlines()]
    values = np.array([[float(v) for v in line[1:]] for line in lines])
    np.testing.assert_allclose(values, [[12.5 / 20, 12.5 / 20, 15 / 20, 15 / 20], [2 / 20, 2 / 20, 4 / 20, 4 / 20]])


def test_an_image_above_pillows_limit_converts(tmp_path, capsys):
    folder = tmp_path / "slide"
    write_blank_png(folder / "input" / "huge.png")  # 14000 x 14000
    save_annotation(folder / "target" / "huge.pt", Annotation([[140, 280, 1540, 2100]], ["cell"]))
    assert main(["convert", str(folder), str(tmp_path / "yolo"), "--to", "yolo"]) == 0
    assert "wrote 1 images" in capsys.readouterr().out
    label, *values = (tmp_path / "yolo" / "labels" / "huge.txt").read_text().split()
    assert label == "0" and [float(v) for v in values] == pytest.approx([840 / 14000, 1190 / 14000, 0.1, 0.13])
