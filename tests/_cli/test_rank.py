"""``napari-faster-rcnn rank``: the unlabeled images of a folder, most useful first, as a table or JSON."""

from __future__ import annotations

import json

import pytest

from napari_faster_rcnn.cli import main
from tests.checkpoint_data import tiny_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory)


@pytest.fixture
def folder(tutorial_dataset):
    """Six images, three of them unlabeled (their annotation files removed)."""
    for name in ("000", "002", "005"):
        (tutorial_dataset / "target" / f"{name}.pt").unlink()
    return tutorial_dataset


def test_json_lists_the_unlabeled_images_with_score_and_parts(checkpoint, folder, capsys):
    assert main(["rank", str(checkpoint), str(folder), "--json"]) == 0
    captured = capsys.readouterr()
    ranking = json.loads(captured.out)  # stdout holds the JSON alone; progress went to stderr
    assert sorted(item["image"].rsplit("/", 1)[-1] for item in ranking) == ["000.png", "002.png", "005.png"]
    for item in ranking:
        assert {"image", "score", "uncertainty", "confusion", "disagreement", "redundancy"} <= set(item)
    assert [item["rank"] for item in ranking] == [1, 2, 3]
    assert [item["score"] for item in ranking] == sorted((item["score"] for item in ranking), reverse=True)
    assert "3 unlabeled images ranked (3 labeled left out)" in captured.err


def test_top_keeps_the_first_k_of_the_same_ranking(checkpoint, folder, capsys):
    assert main(["rank", str(checkpoint), str(folder), "--json", "--quiet"]) == 0
    full = json.loads(capsys.readouterr().out)
    assert main(["rank", str(checkpoint), str(folder), "--json", "--quiet", "--top", "2"]) == 0
    top = json.loads(capsys.readouterr().out)
    assert [item["image"] for item in top] == [item["image"] for item in full[:2]]
    assert main(["rank", str(checkpoint), str(folder), "--quiet", "--top", "1"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["rank", "score", "uncertainty"] and len(table) == 2
    assert table[1].split()[-1] == full[0]["image"]


def test_a_fully_labeled_folder_and_bad_flags_are_refused(checkpoint, tutorial_dataset, capsys):
    assert main(["rank", str(checkpoint), str(tutorial_dataset), "--quiet"]) == 2
    assert "no unlabeled images (6 labeled)" in capsys.readouterr().err
    assert main(["rank", str(checkpoint), str(tutorial_dataset), "--top", "0"]) == 2
    assert "--top must be at least 1" in capsys.readouterr().err
