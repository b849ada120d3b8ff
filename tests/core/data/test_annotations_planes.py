"""A stack's annotation: boxes with their planes and the planes a person labeled (issue 13)."""

import json

import numpy as np
import pytest
import torch

from napari_faster_rcnn.core.data.annotations import (
    Annotation,
    AnnotationError,
    load_annotation,
    save_annotation,
)


def stack_annotation():
    # planes 3 and 7 of a time-lapse labeled: two boxes on 3, "no objects" on 7
    return Annotation(
        boxes=[[1, 2, 10, 12], [20, 20, 30, 35]],
        labels=["cell", "cell"],
        planes=[[3], [3]],
        labeled_planes=[[3], [7]],
    )


@pytest.mark.parametrize("suffix", [".pt", ".json"])
def test_stack_round_trip_keeps_planes_and_labeled_planes(tmp_path, suffix):
    annotation = stack_annotation()
    path = save_annotation(tmp_path / f"movie{suffix}", annotation)
    loaded = load_annotation(path)
    assert loaded == annotation
    assert loaded.planes.tolist() == [[3], [3]]
    assert loaded.labeled_planes.tolist() == [[3], [7]]
    assert loaded.on_plane([3]).boxes.tolist() == [[1, 2, 10, 12], [20, 20, 30, 35]]
    assert len(loaded.on_plane([7])) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"movie{suffix}"]


def test_stack_pt_reads_with_plain_weights_only_torch_load(tmp_path):
    path = save_annotation(tmp_path / "movie.pt", stack_annotation())
    raw = torch.load(path, weights_only=True)
    assert raw["planes"].dtype == torch.int64 and raw["planes"].tolist() == [[3], [3]]
    assert raw["labeled_planes"].tolist() == [[3], [7]]


def test_time_and_z_planes_have_two_leading_coordinates(tmp_path):
    annotation = Annotation(
        boxes=np.array([[0, 0, 4, 4]]), labels=[1], planes=np.array([[2, 5]]), labeled_planes=[[0, 1]]
    )
    loaded = load_annotation(save_annotation(tmp_path / "tz.json", annotation))
    assert loaded.planes.tolist() == [[2, 5]]
    # a plane holding a box is labeled
    assert loaded.labeled_planes.tolist() == [[0, 1], [2, 5]]


def test_a_2d_image_file_is_unchanged(tmp_path):
    annotation = Annotation(boxes=[[1, 2, 3, 4]], labels=["a"])
    assert not annotation.is_stack
    path = save_annotation(tmp_path / "image.json", annotation)
    assert set(json.loads(path.read_text())) == {"boxes", "labels"}
    raw = torch.load(save_annotation(tmp_path / "image.pt", annotation), weights_only=True)
    assert set(raw) == {"boxes", "labels"}
    assert load_annotation(path).planes is None


def test_only_labeled_planes_without_boxes(tmp_path):
    path = tmp_path / "movie.json"
    path.write_text(json.dumps({"boxes": [], "labels": [], "labeled_planes": [[4], [1]]}))
    loaded = load_annotation(path)
    assert loaded.is_stack and len(loaded) == 0
    assert loaded.labeled_planes.tolist() == [[1], [4]]
    assert loaded.planes.shape == (0, 1)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ({"boxes": [[0, 0, 1, 1]], "labels": ["a"], "planes": [[0], [1]]}, "1 boxes but 2 planes"),
        ({"boxes": [[0, 0, 1, 1]], "labels": ["a"], "labeled_planes": [[0]]}, "no 'planes'"),
        ({"boxes": [[0, 0, 1, 1]], "labels": ["a"], "planes": [[0.5]]}, "must be integers"),
        ({"boxes": [[0, 0, 1, 1]], "labels": ["a"], "planes": [[-1]]}, "must not be negative"),
        ({"boxes": [[0, 0, 1, 1]], "labels": ["a"], "planes": [[[0]]]}, "(N, k)"),
        ({"boxes": [[0, 0, 1, 1]], "labels": ["a"], "planes": [[0]], "labeled_planes": [[0, 1]]}, "leading coordinates"),
        ({"boxes": [], "labels": [], "labeled_planes": "3"}, "must be integers"),
    ],
)
def test_bad_planes_name_the_file_and_the_reason(tmp_path, content, reason):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(content))
    with pytest.raises(AnnotationError) as error:
        load_annotation(path)
    assert str(path) in str(error.value)
    assert reason in str(error.value)


def test_bad_planes_in_pt_name_the_file(tmp_path):
    path = tmp_path / "bad.pt"
    torch.save({"boxes": torch.zeros((1, 4)), "labels": ["a"], "planes": torch.zeros((2, 1), dtype=torch.int64)}, path)
    with pytest.raises(AnnotationError, match="bad.pt.*1 boxes but 2 planes"):
        load_annotation(path)


def test_select_keeps_planes_aligned():
    annotation = stack_annotation()
    kept = annotation.select([1])
    assert kept.planes.tolist() == [[3]]
    assert kept.labeled_planes.tolist() == [[3], [7]]
