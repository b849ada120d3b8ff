"""``napari-faster-rcnn predict`` on stacks: one file per stack with planes, --planes, mixed folders."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from napari_faster_rcnn.cli import main
from napari_faster_rcnn.core.data.annotations import load_annotation
from tests.checkpoint_data import tiny_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory)


@pytest.fixture(scope="module")
def movie(tmp_path_factory):
    """A 10-frame 16-bit 64 x 64 time-lapse of bright squares."""
    frames = np.full((10, 64, 64), 300, np.uint16)
    for t in range(10):
        frames[t, 10 + t:30 + t, 20:40] = 4000
    path = tmp_path_factory.mktemp("movie") / "movie.tif"
    tifffile.imwrite(path, frames, photometric="minisblack")
    return path


def test_a_stack_gives_one_file_with_planes_and_planes_chooses_them(checkpoint, movie, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["predict", str(checkpoint), str(movie), "--out", str(out), "--planes", "3:7", "--raw",
                 "--format", "json"]) == 0
    captured = capsys.readouterr()
    assert sorted(p.name for p in out.iterdir()) == ["movie.json", "thresholds.json"]  # ONE file for the stack
    assert "1 images (1 stacks, 4 planes)" in captured.out
    assert "movie plane 6" in captured.err  # the progress bar names the plane done
    saved = json.loads((out / "movie.json").read_text())
    assert "labeled_planes" not in saved  # predictions are not labels
    assert len(saved["boxes"]) == len(saved["labels"]) == len(saved["scores"]) == len(saved["planes"]) > 0
    assert {plane[0] for plane in saved["planes"]} == {3, 4, 5, 6}  # raw: every plane chosen has detections
    assert load_annotation(out / "movie.json").is_stack


def test_every_plane_by_default_and_a_folder_mixing_stacks_and_images(checkpoint, movie, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "movie.tif").write_bytes(movie.read_bytes())
    tifffile.imwrite(folder / "still.tif", np.full((64, 48), 200, np.uint8))
    out = tmp_path / "out"
    assert main(["predict", str(checkpoint), str(folder), "--out", str(out), "--raw", "--quiet"]) == 0
    stack, still = load_annotation(out / "movie.pt"), load_annotation(out / "still.pt")
    assert set(stack.planes[:, 0].tolist()) == set(range(10)) and still.planes is None
    assert len(stack.labeled_planes) == 10  # read back, a plane with boxes is one with boxes, nothing more


def test_a_bad_planes_range_is_refused_before_any_work(checkpoint, movie, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["predict", str(checkpoint), str(movie), "--out", str(out), "--planes", "7:3", "--quiet"]) == 2
    assert "--planes: planes '7:3'" in capsys.readouterr().err
    assert not out.exists()
    assert main(["predict", str(checkpoint), str(movie), "--out", str(out), "--planes", "20:", "--quiet"]) == 2
    assert "no plane 20: in a stack of 10 planes" in capsys.readouterr().err


def test_evaluate_a_stacks_predictions_on_its_labeled_planes_only(checkpoint, movie, tmp_path, capsys):
    from napari_faster_rcnn.core.data.annotations import Annotation, save_annotation

    truth = tmp_path / "truth"
    truth.mkdir()
    (truth / "movie.tif").write_bytes(movie.read_bytes())
    # plane 2 has its square, plane 5 was labeled "no objects here"; the other planes are unlabeled
    save_annotation(truth / "movie.pt", Annotation([[20, 12, 40, 32]], ["square"], planes=[[2]],
                                                   labeled_planes=[[2], [5]]))
    out = tmp_path / "out"
    assert main(["predict", str(checkpoint), str(truth / "movie.tif"), "--out", str(out), "--raw", "--quiet"]) == 0
    predicted = load_annotation(out / "movie.pt")
    capsys.readouterr()
    assert main(["evaluate", "--gt", str(truth), "--pred", str(out), "--json", "--nms", "1"]) == 0  # (as they are)
    result = json.loads(capsys.readouterr().out)
    assert result["images"] == 2  # the two labeled planes, not the ten frames
    on_labeled = len(predicted.on_plane([2])) + len(predicted.on_plane([5]))
    assert sum(c["predictions"] for c in result["classes"].values()) == on_labeled < len(predicted)
    assert sum(c["ground_truth"] for c in result["classes"].values()) == 1
