"""What ``rank`` ranks: unlabeled images, unlabeled planes of stacks, and large images through their tiles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from napari_faster_rcnn.core.data.annotations import save_annotation
from napari_faster_rcnn.core.data.synthetic import make_synthetic_dataset
from napari_faster_rcnn.core.model.checkpoints import load_checkpoint
from napari_faster_rcnn.core.prediction import rank_targets
from napari_faster_rcnn.core.prediction.rank_targets import (
    RankTarget,
    TileRegion,
    find_rank_targets,
    find_unlabeled_images,
    iter_target_ranking,
    tile_targets,
)
from napari_faster_rcnn.core.prediction.tiles import Tiling
from napari_faster_rcnn.core.progress import run_to_end
from tests.checkpoint_data import tiny_checkpoint


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return load_checkpoint(tiny_checkpoint(tmp_path_factory)).model


def test_tiles_cover_a_large_image_and_read_its_pixels(tmp_path):
    pixels = np.random.default_rng(1).integers(0, 255, (70, 90, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "big.png")
    tiling = Tiling(tile=32, overlap=0.2)
    assert tile_targets(tmp_path / "big.png", (70, 90), tiling, large_pixels=70 * 90) == [RankTarget(tmp_path / "big.png")]
    tiles = tile_targets(tmp_path / "big.png", (70, 90), tiling, large_pixels=100)
    covered = np.zeros((70, 90), bool)
    for tile in tiles:
        x0, y0, x1, y1 = tile.region
        assert x1 - x0 == 32 and y1 - y0 == 32
        np.testing.assert_array_equal(np.asarray(tile.item()), pixels[y0:y1, x0:x1])
        covered[y0:y1, x0:x1] = True
    assert covered.all() and isinstance(tiles[0].item(), TileRegion)


def test_a_large_image_takes_the_place_of_its_most_useful_tile(model, tmp_path):
    rng = np.random.default_rng(2)
    Image.fromarray(rng.integers(0, 255, (60, 90, 3), dtype=np.uint8)).save(tmp_path / "big.png")
    Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(tmp_path / "small.png")
    tiling = Tiling(tile=48, overlap=0.2)
    targets, skipped, labeled = find_rank_targets(tmp_path, tiling, large_pixels=2000)
    tiles = [t for t in targets if t.region is not None]
    assert len(tiles) == len(tiling.grid((60, 90))) == 6 and {t.image.name for t in tiles} == {"big.png"}
    assert not skipped and labeled == []
    assert [t for t in targets if t.region is None] == [RankTarget(tmp_path / "small.png")]
    steps = []
    ranking = run_to_end(iter_target_ranking(model, targets, batch_size=7), steps.append)
    assert steps[-1].total == 7  # every tile measured
    assert sorted(entry.target.image.name for entry in ranking) == ["big.png", "small.png"]
    assert [entry.score.rank for entry in ranking] == [1, 2]
    big = next(entry for entry in ranking if entry.target.image.name == "big.png")
    # its place is that of its most useful tile: the first of its tiles in the ranking of every target
    full = run_to_end(iter_ranking_all(model, targets))
    first_tile = next(entry for entry in full if entry.target.region is not None)
    assert big.target == first_tile.target and big.score.score == pytest.approx(first_tile.score.score)
    assert big.to_dict()["tile"] == list(first_tile.target.region) and "plane" not in big.to_dict()
    assert [entry.target.image for entry in ranking] == list(dict.fromkeys(entry.target.image for entry in full))


def iter_ranking_all(model, targets):
    """The core ranking of every target (tiles one by one), as the reference."""
    from napari_faster_rcnn.core.prediction.ranking import iter_ranking

    items = [np.asarray(t.item()) if t.region is not None else t.image for t in targets]
    scores = yield from iter_ranking(model, items, batch_size=7)
    by_name = {str(item) if not isinstance(item, np.ndarray) else f"image {i}": t
               for i, (item, t) in enumerate(zip(items, targets))}
    return [type("Entry", (), {"target": by_name[s.image], "score": s})() for s in scores]


def test_the_planes_of_a_stack_are_read_one_batch_at_a_time(model, tmp_path, monkeypatch):
    import tifffile

    from napari_faster_rcnn.core.prediction.stacks import StackPlane

    tifffile.imwrite(tmp_path / "movie.tif", np.random.default_rng(3).integers(0, 4096, (6, 64, 64), dtype=np.uint16),
                     photometric="minisblack")
    targets, _, labeled = find_rank_targets(tmp_path)
    assert [t.plane for t in targets] == [(p,) for p in range(6)] and labeled == []
    assert [t.name.rsplit("/", 1)[-1] for t in targets[:2]] == ["movie.tif[0]", "movie.tif[1]"]
    read = []
    original = StackPlane.read
    monkeypatch.setattr(StackPlane, "read", lambda self, channels=None: read.append(self.plane) or original(self, channels))
    ranking = iter_target_ranking(model, targets, batch_size=2)
    first = next(ranking)
    assert first.done == 2 and read == [(0,), (1,)]  # nothing read ahead of the batch scored
    result = run_to_end(ranking)
    assert sorted(read) == [(p,) for p in range(6)] and len(result) == 6


def test_the_unlabeled_planes_of_a_large_stack_are_scored_through_their_tiles(model, tmp_path):
    """A stack of 70 x 90 planes (plane 1 labeled), tiles of 48: each unlabeled plane's tiles read exactly
    those pixels of that plane, each plane comes back once, at the place of its most useful tile."""
    import tifffile

    from napari_faster_rcnn.core.data.annotations import Annotation, save_annotation

    stack = np.random.default_rng(6).integers(0, 4096, (3, 70, 90), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "movie.tif", stack, photometric="minisblack")
    save_annotation(tmp_path / "movie.pt", Annotation(np.zeros((0, 4)), [], planes=np.zeros((0, 1), int),
                                                      labeled_planes=np.array([[1]])))
    tiling = Tiling(tile=48, overlap=0.2)
    targets, skipped, labeled = find_rank_targets(tmp_path, tiling, large_pixels=2000)
    grid = [tuple(r) for r in tiling.grid((70, 90)).rects.tolist()]
    assert [(t.plane, t.region) for t in targets] == [((p,), r) for p in (0, 2) for r in grid]
    assert [(t.plane, t.region) for t in labeled] == [((1,), r) for r in grid] and not skipped
    for target in targets[:len(grid) + 1]:  # a tile reads that region of that plane, as tifffile reads it
        x0, y0, x1, y1 = target.region
        np.testing.assert_array_equal(np.asarray(target.item().read())[..., 0], stack[target.plane[0], y0:y1, x0:x1])
    whole, _, _ = find_rank_targets(tmp_path, Tiling(tile=48, overlap=0.2), large_pixels=70 * 90)
    assert [(t.plane, t.region) for t in whole] == [((0,), None), ((2,), None)]  # small planes: whole

    ranking = run_to_end(iter_target_ranking(model, targets, batch_size=6, labeled=labeled))
    assert [entry.target.plane for entry in sorted(ranking, key=lambda e: e.target.plane)] == [(0,), (2,)]
    assert [entry.score.rank for entry in ranking] == [1, 2]
    full = run_to_end(iter_target_ranking(model, targets[:len(grid)], batch_size=6, labeled=labeled))
    assert len(full) == 1 and full[0].to_dict()["plane"] == [0] and full[0].to_dict()["tile"] in [list(r) for r in grid]


def test_target_parts_tiles_a_large_plane_or_image_as_next_most_useful_ranks_them(tmp_path):
    import tifffile

    from napari_faster_rcnn.core.prediction.rank_targets import target_parts

    tifffile.imwrite(tmp_path / "movie.tif", np.zeros((3, 70, 90), np.uint16), photometric="minisblack")
    Image.fromarray(np.zeros((70, 90, 3), np.uint8)).save(tmp_path / "big.png")
    tiling = Tiling(tile=48, overlap=0.2)
    grid = [tuple(r) for r in tiling.grid((70, 90)).rects.tolist()]
    plane = RankTarget(tmp_path / "movie.tif", (2,))
    assert [(t.plane, t.region) for t in target_parts(plane, tiling, large_pixels=2000)] == [((2,), r) for r in grid]
    assert [t.region for t in target_parts(RankTarget(tmp_path / "big.png"), tiling, large_pixels=2000)] == grid
    assert target_parts(plane, tiling) == [plane]  # 70 x 90 is not large by default
    assert target_parts(plane, None, large_pixels=2000) == [plane]
    tile = RankTarget(tmp_path / "movie.tif", (2,), grid[0])
    assert target_parts(tile, tiling, large_pixels=2000) == [tile]


def test_a_very_large_grid_is_thinned_to_rows_and_columns_spread_over_the_image():
    tiling = Tiling(tile=32, overlap=0.2)
    grid = tiling.grid((1000, 1500))
    tiles = tile_targets(Path("huge.tif"), (1000, 1500), tiling, large_pixels=100, max_tiles=16)
    rects = [t.region for t in tiles]
    assert 9 <= len(rects) <= 16 and len(set(rects)) == len(rects)
    assert set(rects) <= {tuple(r) for r in grid.rects.tolist()}
    assert rects[0] == (0, 0, 32, 32) and rects[-1] == (1500 - 32, 1000 - 32, 1500, 1000)  # both corners
    assert len({r[0] for r in rects}) >= 3 and len({r[1] for r in rects}) >= 3


def test_the_labeled_images_and_planes_come_back_and_go_along_to_the_ranking(model, tmp_path, monkeypatch):
    """A stack with planes 0 and 2 labeled and a labeled PNG beside an unlabeled one: the labeled ones
    come back as targets, and ranking with them gives the core ranking of the pixels with them as labeled."""
    import tifffile

    from napari_faster_rcnn.core.data.annotations import Annotation, save_annotation
    from napari_faster_rcnn.core.prediction.ranking import rank_images

    rng = np.random.default_rng(4)
    stack = rng.integers(0, 4096, (4, 64, 64), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "movie.tif", stack, photometric="minisblack")
    save_annotation(tmp_path / "movie.json", Annotation([[4, 4, 20, 20]], ["cell"], planes=[[0]],
                                                        labeled_planes=[[0], [2]]))
    pngs = [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(2)]
    for name, pixels in zip(("a.png", "b.png"), pngs):
        Image.fromarray(pixels).save(tmp_path / name)
    save_annotation(tmp_path / "a.json", Annotation([[4, 4, 20, 20]], ["cell"]))
    targets, skipped, labeled = find_rank_targets(tmp_path)
    assert [(t.image.name, t.plane) for t in targets] == [("b.png", None), ("movie.tif", (1,)), ("movie.tif", (3,))]
    assert [(t.image.name, t.plane) for t in labeled] == [("a.png", None), ("movie.tif", (0,)), ("movie.tif", (2,))]
    assert [reason for _, reason in skipped] == ["labeled (a.json)"]
    ranking = run_to_end(iter_target_ranking(model, targets, labeled=labeled, batch_size=2))
    expected = rank_images(model, [pngs[1], stack[1], stack[3]], labeled=[pngs[0], stack[0], stack[2]], batch_size=2)
    names = {"image 0": ("b.png", None), "image 1": ("movie.tif", (1,)), "image 2": ("movie.tif", (3,))}
    assert [(e.target.image.name, e.target.plane) for e in ranking] == [names[s.image] for s in expected]
    assert [e.score.novelty for e in ranking] == pytest.approx([s.novelty for s in expected], abs=1e-4)
    assert all(e.to_dict()["novelty"] > 0 for e in ranking)
    # at most MAX_LABELED labeled ones are measured, spread over them: the first and the last of three
    monkeypatch.setattr(rank_targets, "MAX_LABELED", 2)
    capped = run_to_end(iter_target_ranking(model, targets, labeled=labeled, batch_size=2))
    expected = rank_images(model, [pngs[1], stack[1], stack[3]], labeled=[pngs[0], stack[2]], batch_size=2)
    assert [e.score.novelty for e in capped] == pytest.approx([s.novelty for s in expected], abs=1e-4)


def test_unlabeled_images_are_those_without_an_annotation_file(tutorial_dataset, side_by_side_dataset):
    for name in ("001", "004"):
        (tutorial_dataset / "target" / f"{name}.pt").unlink()
    found, skipped = find_unlabeled_images(tutorial_dataset)
    assert [p.name for p in found] == ["001.png", "004.png"]
    assert sum(reason.startswith("labeled") for _, reason in skipped) == 4
    found, _ = find_unlabeled_images([side_by_side_dataset / "a.png", side_by_side_dataset / "c.png"])
    assert [p.name for p in found] == ["c.png"]
    found, _ = find_unlabeled_images([tutorial_dataset / "input" / "000.png", tutorial_dataset / "input" / "001.png"])
    assert [p.name for p in found] == ["001.png"]
    save_annotation(side_by_side_dataset / "c.pt", make_synthetic_dataset(1)[0][1])
    assert find_unlabeled_images(side_by_side_dataset)[0] == []
