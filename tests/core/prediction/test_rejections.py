"""Rejected suggestions kept in a JSON file beside the images: across sessions, same class only,
a corrupt file or a folder that cannot be written tolerated with one warning naming the file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_faster_rcnn.core.data.annotations import Annotation
from napari_faster_rcnn.core.prediction.rejections import REJECTED_FILE, RejectedSuggestions, read_rejected_file
from napari_faster_rcnn.core.prediction.suggestions import COVERED_IOU, shown_suggestions
from napari_faster_rcnn.core.prediction.thresholds import Thresholds

EVERYTHING = Thresholds(score_threshold=0.0, nms_threshold=1.0)


def iou(a, b) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.mark.parametrize("seed", range(4))
def test_a_rejected_box_keeps_away_only_suggestions_of_its_class(seed):
    rng = np.random.default_rng(seed)
    corners = rng.uniform(0, 200, (60, 2))
    boxes = np.concatenate([corners, corners + rng.uniform(10, 40, (60, 2))], axis=1)
    raw = Annotation(boxes, [["a", "b", "c"][k] for k in rng.integers(0, 3, 60)], scores=rng.uniform(0.5, 1, 60))
    rejected = boxes[:30] + rng.uniform(-2, 2, (30, 4))
    rejected_labels = [["a", "b", "c"][k] for k in rng.integers(0, 3, 30)]
    shown = shown_suggestions(raw, EVERYTHING, None, rejected, rejected_labels=rejected_labels)
    expected = [i for i in range(60) if not any(iou(boxes[i], r) >= COVERED_IOU and raw.labels[i] == label
                                                 for r, label in zip(rejected, rejected_labels))]
    assert sorted(map(tuple, shown.boxes.tolist())) == sorted(tuple(boxes[i].tolist()) for i in expected)
    assert 30 < len(shown) < 60  # some covered under their own class, some under another kept


def test_rejections_are_read_back_by_a_new_session(tmp_path):
    image, stack = tmp_path / "001.png", tmp_path / "movie.tif"
    first = RejectedSuggestions(warn=pytest.fail)
    first.add((image, None), [[1, 2, 30, 40]], ["cell"])
    first.add((stack, (3,)), [[5, 5, 9, 9], [10, 10, 20, 20]], ["cell", "debris"])
    first.add((image, None), [[50, 50, 60, 60]], ["debris"])
    first.add(("no file", 2), [[0, 0, 1, 1]], ["cell"])  # an image without a file: memory only
    data = json.loads((tmp_path / REJECTED_FILE).read_text())
    assert data["images"]["001.png"][""]["labels"] == ["cell", "debris"]
    assert data["images"]["movie.tif"]["3"]["boxes"] == [[5, 5, 9, 9], [10, 10, 20, 20]]
    again = RejectedSuggestions(warn=pytest.fail)
    boxes, labels = again.get((image, None))
    assert boxes.tolist() == [[1, 2, 30, 40], [50, 50, 60, 60]] and labels == ["cell", "debris"]
    assert again.get((stack, (3,)))[1] == ["cell", "debris"]
    assert again.get((stack, (2,)))[0].shape == (0, 4) and again.get(("no file", 2))[1] == []
    # two viewers on one folder: each rejection joins what is on disk
    first.add((stack, (0,)), [[1, 1, 5, 5]], ["cell"])
    again.add((image, None), [[70, 70, 80, 80]], ["cell"])
    assert set(read_rejected_file(tmp_path / REJECTED_FILE)["movie.tif"]) == {"0", "3"}
    assert len(read_rejected_file(tmp_path / REJECTED_FILE)["001.png"][""][1]) == 3


@pytest.mark.parametrize("text", ["{not json", json.dumps([1, 2]), json.dumps({"format": "other", "images": {}}),
                                  json.dumps({"format": "napari-faster-rcnn rejected suggestions", "version": 1,
                                              "images": {"a.png": {"": {"boxes": [[1, 2, 3]], "labels": ["x"]}}}})])
def test_a_corrupt_file_is_named_left_alone_and_rejections_kept_in_memory(tmp_path, text):
    path = tmp_path / REJECTED_FILE
    path.parent.mkdir()
    path.write_text(text)
    warnings = []
    store = RejectedSuggestions(warn=warnings.append)
    assert store.get((tmp_path / "a.png", None))[0].shape == (0, 4)
    store.add((tmp_path / "a.png", None), [[1, 1, 9, 9]], ["cell"])
    store.add((tmp_path / "b.png", None), [[1, 1, 9, 9]], ["cell"])
    assert len(warnings) == 1 and str(path) in warnings[0]
    assert path.read_text() == text  # not overwritten
    assert store.get((tmp_path / "a.png", None))[1] == ["cell"] and len(store) == 2


def test_a_folder_that_cannot_be_written_warns_once_and_keeps_them_in_memory(tmp_path, monkeypatch):
    from napari_faster_rcnn.core.data import atomic_files

    def read_only(path, payload):  # as a read-only folder answers (the tests may run as root, which may write)
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(atomic_files, "atomic_write_bytes", read_only)
    warnings = []
    store = RejectedSuggestions(warn=warnings.append)
    store.add((tmp_path / "a.png", None), [[1, 1, 9, 9]], ["cell"])
    store.add((tmp_path / "a.png", None), [[20, 20, 29, 29]], ["cell"])
    assert len(warnings) == 1 and "cannot be written" in warnings[0] and str(tmp_path / REJECTED_FILE) in warnings[0]
    assert store.get((tmp_path / "a.png", None))[0].tolist() == [[1, 1, 9, 9], [20, 20, 29, 29]]
    assert not (tmp_path / REJECTED_FILE).exists()
