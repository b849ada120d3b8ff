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
        assert {"image", "score", "uncertainty", "confusion", "disagreement", "novelty", "redundancy"} <= set(item)
    assert [item["rank"] for item in ranking] == [1, 2, 3]
    assert [item["score"] for item in ranking] == sorted((item["score"] for item in ranking), reverse=True)
    assert "3 unlabeled images ranked (3 labeled left out; novelty against them)" in captured.err
    assert all(item["novelty"] > 0 for item in ranking)  # measured against the 3 labeled images


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


def test_json_lists_the_unlabeled_planes_of_a_stack_and_the_image(checkpoint, tmp_path, capsys):
    """A folder with one PNG and one (4, 64, 64) uint16 stack whose planes 0 and 2 are labeled (plane 0
    with a box, plane 2 marked empty): the ranking holds the PNG and planes 1 and 3, nothing else."""
    import numpy as np
    import tifffile
    from PIL import Image

    from napari_faster_rcnn.core.data.annotations import Annotation, save_annotation

    folder = tmp_path / "mixed"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(folder / "cells.png")
    tifffile.imwrite(folder / "movie.tif", rng.integers(0, 4096, (4, 64, 64), dtype=np.uint16),
                     photometric="minisblack")
    save_annotation(folder / "movie.json", Annotation([[4, 4, 20, 20]], ["cell"], planes=[[0]],
                                                      labeled_planes=[[0], [2]]))
    assert main(["rank", str(checkpoint), str(folder), "--json"]) == 0
    captured = capsys.readouterr()
    ranking = json.loads(captured.out)
    entries = sorted((item["image"].rsplit("/", 1)[-1], tuple(item.get("plane", ()))) for item in ranking)
    assert entries == [("cells.png", ()), ("movie.tif", (1,)), ("movie.tif", (3,))]
    assert [item["rank"] for item in ranking] == [1, 2, 3]
    for item in ranking:
        assert {"image", "score", "uncertainty", "confusion", "disagreement", "novelty", "redundancy"} <= set(item)
    assert "1 unlabeled images and 2 unlabeled planes ranked (2 labeled left out; novelty against them)" in captured.err
    # the same scores as the core ranking of the pixels read independently (tifffile, Pillow)
    from napari_faster_rcnn.core.model.checkpoints import load_checkpoint
    from napari_faster_rcnn.core.prediction.ranking import rank_images

    stack = tifffile.imread(folder / "movie.tif")
    pixels = [np.asarray(Image.open(folder / "cells.png")), stack[1], stack[3]]
    reference = {("cells.png", ()): 0, ("movie.tif", (1,)): 1, ("movie.tif", (3,)): 2}
    # rank passes the labeled planes 0 and 2 along: they make the novelty and start the redundancy
    model = load_checkpoint(checkpoint).model
    expected = {int(score.image.split()[-1]): score.score
                for score in rank_images(model, pixels, labeled=[stack[0], stack[2]])}
    unaware = {int(score.image.split()[-1]): score.score for score in rank_images(model, pixels)}
    assert max(abs(expected[k] - unaware[k]) for k in expected) > 1e-3  # the labeled planes change the scores
    for item in ranking:
        key = (item["image"].rsplit("/", 1)[-1], tuple(item.get("plane", ())))
        assert item["score"] == pytest.approx(expected[reference[key]], abs=1e-5)
    # the table names a plane as training does: movie.tif[3]
    assert main(["rank", str(checkpoint), str(folder), "--quiet"]) == 0
    names = sorted(line.split()[-1].rsplit("/", 1)[-1] for line in capsys.readouterr().out.splitlines()[1:])
    assert names == ["cells.png", "movie.tif[1]", "movie.tif[3]"]


def test_tile_scores_an_image_through_its_tiles_and_zero_scores_it_whole(checkpoint, tmp_path, capsys):
    import numpy as np
    from PIL import Image

    folder = tmp_path / "wide"
    folder.mkdir()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (200, 300, 3), dtype=np.uint8)).save(folder / "a.png")
    Image.fromarray(np.random.default_rng(2).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(folder / "b.png")
    import tifffile

    tifffile.imwrite(folder / "movie.tif", np.random.default_rng(3).integers(0, 4096, (2, 200, 300), dtype=np.uint16),
                     photometric="minisblack")
    assert main(["rank", str(checkpoint), str(folder), "--json", "--quiet", "--tile", "128", "--overlap", "0.25"]) == 0
    captured = capsys.readouterr()
    ranking = {item["image"].rsplit("/", 1)[-1] + str(item.get("plane", "")): item for item in json.loads(captured.out)}
    # one entry per image and per plane, its most useful tile for a.png and for each plane of the stack
    assert set(ranking) == {"a.png", "b.png", "movie.tif[0]", "movie.tif[1]"}
    for name in ("a.png", "movie.tif[0]", "movie.tif[1]"):
        x0, y0, x1, y1 = ranking[name]["tile"]
        assert 0 <= x0 < x1 <= 300 and 0 <= y0 < y1 <= 200 and (x1 - x0, y1 - y0) == (128, 128)
    assert "tile" not in ranking["b.png"]  # smaller than a tile: whole
    assert "1 unlabeled images and 1 large images and 2 large planes in" in captured.err
    assert main(["rank", str(checkpoint), str(folder), "--json", "--quiet", "--tile", "0"]) == 0
    assert all("tile" not in item for item in json.loads(capsys.readouterr().out))
    assert main(["rank", str(checkpoint), str(folder), "--json", "--quiet"]) == 0  # default: 300 x 200 is not large
    assert all("tile" not in item for item in json.loads(capsys.readouterr().out))
    assert main(["rank", str(checkpoint), str(folder), "--tile", "8"]) == 2
    assert "--tile must be 0" in capsys.readouterr().err
    assert main(["rank", str(checkpoint), str(folder), "--overlap", "0.95"]) == 2
    assert "--overlap must be" in capsys.readouterr().err
