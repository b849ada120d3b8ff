"""``napari-faster-rcnn stats``: the table, the JSON, the plots file and the errors."""

import json

import numpy as np
import pytest

from napari_faster_rcnn.cli import main
from napari_faster_rcnn.core.data.annotations import Annotation, save_annotation
from napari_faster_rcnn.core.statistics.folders import folder_statistics
from tests.conftest import write_image
from tests.large_images import HUGE_SIDE, write_blank_png


def table_rows(text: str) -> dict[str, list[str]]:
    """The quantity rows of the table: label -> the eight figures (as stored, then after)."""
    rows = {}
    for line in text.splitlines():
        if "|" not in line or line.lstrip().startswith("quantity"):
            continue
        left, right = line.split("|")
        parts = left.rstrip().rsplit(None, 4)
        if len(parts) == 5:
            rows[parts[0].strip()] = parts[1:] + right.split()
    return rows


def test_table_shows_counts_and_every_quantity_before_and_after(tutorial_dataset, capsys):
    assert main(["stats", str(tutorial_dataset), "--min-size", "400", "--max-size", "500"]) == 0
    out = capsys.readouterr().out
    stats = folder_statistics(tutorial_dataset, 400, 500)
    assert out.startswith(f"6 images, {stats.boxes} boxes, {stats.images_without_boxes} images without boxes")
    assert "transform: min_size 400, max_size 500" in out
    for name, count in stats.class_counts.items():
        assert f"{name}  " in out
        line = next(line for line in out.splitlines() if line.split()[:1] == [name])
        assert line.split()[1:] == [str(count), str(stats.class_image_counts[name])]

    rows = table_rows(out)
    # 64 x 80 images: the short side becomes 400 (scale 6.25), the long one 500
    assert rows["image height (px)"] == ["64"] * 4 + ["400"] * 4
    assert rows["image width (px)"] == ["80"] * 4 + ["500"] * 4
    area = stats.values("box_area")
    assert float(rows["box area (px²)"][3]) == pytest.approx(area.max(), abs=0.05)
    assert float(rows["box area (px²)"][7]) == pytest.approx(area.max() * 6.25**2, abs=0.05)
    for name in stats.classes:
        assert f"{name}: box width (px)" in rows


def test_json_keys_and_numbers(tutorial_dataset, capsys):
    assert main(["stats", str(tutorial_dataset), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"images", "boxes", "min_size", "max_size", "images_without_boxes", "unlabeled_images", "clipped_boxes",
            "classes", "summary", "per_class", "skipped"} <= set(data)
    stats = folder_statistics(tutorial_dataset)
    assert data["images"] == 6 and data["boxes"] == stats.boxes and (data["min_size"], data["max_size"]) == (800, 1333)
    assert set(data["summary"]) == {"image_height", "image_width", "boxes_per_image", "box_width", "box_height",
                                    "box_area"}
    assert data["summary"]["image_height"]["after"] == {"count": 6, "minimum": 800, "median": 800, "mean": 800,
                                                        "maximum": 800}
    assert data["summary"]["box_width"]["before"]["mean"] == pytest.approx(np.mean(stats.values("box_width")), abs=1e-4)
    assert {name: c["boxes"] for name, c in data["classes"].items()} == stats.class_counts
    assert set(data["per_class"]) == set(stats.classes)


def test_plots_are_written_as_png(tutorial_dataset, tmp_path, capsys):
    folder = tmp_path / "plots"
    folder.mkdir()
    assert main(["stats", str(tutorial_dataset), "--plots", str(folder)]) == 0
    assert "saved the histograms to" in capsys.readouterr().out
    written = folder / "dataset_statistics.png"
    assert written.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    with Image.open(written) as image:
        assert image.height > image.width > 500  # two columns, six rows

    named = tmp_path / "new" / "stats.png"
    assert main(["stats", str(tutorial_dataset), "--plots", str(named), "--json"]) == 0
    captured = capsys.readouterr()
    json.loads(captured.out)  # the note goes to stderr, so stdout stays JSON
    assert named.read_bytes()[:4] == b"\x89PNG" and "saved the histograms" in captured.err


def test_skipped_files_are_listed_on_stderr(tutorial_dataset, capsys):
    (tutorial_dataset / "target" / "001.pt").write_text("garbage")
    assert main(["stats", str(tutorial_dataset)]) == 0
    captured = capsys.readouterr()
    assert "5 images" in captured.out and "2 files skipped" in captured.out
    assert "001.pt: not a readable PyTorch file" in captured.err


@pytest.mark.parametrize(
    "arguments,message",
    [
        (["{missing}"], "not a folder"),
        (["{empty}"], "no images"),
        (["{dataset}", "--min-size", "0"], "--min-size must be a positive number"),
        (["{dataset}", "--plots", "{tmp}/stats.jpg"], "saved as PNG"),
    ],
)
def test_errors_are_one_clear_line(tutorial_dataset, tmp_path, capsys, arguments, message):
    (tmp_path / "empty").mkdir()
    values = {"missing": tmp_path / "missing", "empty": tmp_path / "empty", "dataset": tutorial_dataset,
              "tmp": tmp_path}
    assert main(["stats", *(a.format(**values) for a in arguments)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.startswith("error: ")


def test_a_folder_with_nothing_readable(tmp_path, capsys):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.png").write_bytes(b"no image")
    assert main(["stats", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert "a.png: not a readable image" in err and "error: " in err and "no image could be read" in err


def test_an_image_above_pillows_limit_is_measured_from_its_header(tmp_path, capsys):
    folder = tmp_path / "slides"
    write_blank_png(folder / "huge.png")  # 14000 x 14000: Pillow refuses to open it
    write_image(folder / "small.png", 40, 60)
    save_annotation(folder / "huge.json", Annotation([[100, 200, 1100, 1700]], ["cell"]))
    assert main(["stats", str(folder), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["images"] == 2 and data["boxes"] == 1 and not data["skipped"]
    assert data["summary"]["image_width"]["before"]["maximum"] == HUGE_SIDE
    assert data["summary"]["box_height"]["before"]["maximum"] == 1500
