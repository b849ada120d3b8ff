"""Tiled prediction: the grid covers the image, cut objects end as one box, the oracle scene
comes back as its ground truth, and the thresholds still apply to merged raw detections."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from napari_faster_rcnn.core.model.config import ModelConfig
from napari_faster_rcnn.core.prediction.run import TileProgress, iter_predictions, predict_images
from napari_faster_rcnn.core.prediction.thresholds import DetectionSet, Thresholds, apply_thresholds
from napari_faster_rcnn.core.prediction.tile_merge import TileMerger, merge_tile_detections
from napari_faster_rcnn.core.prediction.tiles import MIN_TILE, Tiling, default_tiling, tile_grid

CLASSES = ["cell", "star", "blob"]


# --- references written here ------------------------------------------------------------


def pairwise_iou(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    low = np.maximum(first[:, None, :2], second[None, :, :2])
    high = np.minimum(first[:, None, 2:], second[None, :, 2:])
    inter = np.prod(np.clip(high - low, 0, None), axis=2)
    areas = [np.prod(boxes[:, 2:] - boxes[:, :2], axis=1) for boxes in (first, second)]
    return inter / (areas[0][:, None] + areas[1][None, :] - inter)


def assert_same_objects(merged_boxes, merged_labels, truth, truth_labels, iou: float = 0.9):
    """Every true object is exactly one merged box (IoU >= ``iou``, same class), and nothing else is there."""
    assert len(merged_boxes) == len(truth)
    overlap = pairwise_iou(np.asarray(truth, float), np.asarray(merged_boxes, float))
    good = overlap >= iou
    assert good.sum(axis=1).tolist() == [1] * len(truth), "an object with no box or with two"
    assert good.sum(axis=0).tolist() == [1] * len(truth), "a box for no object or for two"
    assert list(np.asarray(merged_labels)[good.argmax(axis=1)]) == list(truth_labels)


def scene(size: int, count: int, grid, seed: int, on_borders: float = 0.2, gap: int = 4):
    """``count`` objects of 8 to 24 px that do not touch (``gap`` apart), ``on_borders`` of them cut by a tile edge."""
    rng = np.random.default_rng(seed)
    lines = []
    for starts, side in ((grid.x_starts, grid.tile_size[1]), (grid.y_starts, grid.tile_size[0])):
        edges = np.unique(np.concatenate([starts, starts + side]))
        lines.append(edges[(edges > 0) & (edges < size)])
    boxes: list[tuple[int, int, int, int]] = []
    while len(boxes) < count:
        width, height = (int(v) for v in rng.integers(8, 25, 2))
        x0, y0 = (int(v) for v in rng.integers(0, size - 24, 2))
        if len(boxes) < on_borders * count and len(lines[0]) and len(lines[1]):
            kind = int(rng.integers(3))  # a vertical edge, a horizontal one, a corner
            if kind in (0, 2):
                x0 = int(rng.choice(lines[0])) - int(rng.integers(1, width))
            if kind in (1, 2):
                y0 = int(rng.choice(lines[1])) - int(rng.integers(1, height))
        box = (x0, y0, x0 + width, y0 + height)
        if x0 < 0 or y0 < 0 or box[2] > size or box[3] > size:
            continue
        if any(not (box[2] + gap <= o[0] or o[2] + gap <= box[0] or box[3] + gap <= o[1] or o[3] + gap <= box[1])
               for o in boxes):
            continue
        boxes.append(box)
    return np.array(boxes, dtype=np.float64), rng.integers(0, len(CLASSES), count)


def oracle(grid, truth, labels):
    """Each tile's true boxes clipped to the tile (pieces with an area), with their tile."""
    pieces, piece_labels, tiles = [], [], []
    for index, (x0, y0, x1, y1) in enumerate(grid.rects):
        clipped = truth.copy()
        clipped[:, [0, 2]] = np.clip(clipped[:, [0, 2]], x0, x1)
        clipped[:, [1, 3]] = np.clip(clipped[:, [1, 3]], y0, y1)
        seen = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
        pieces.append(clipped[seen])
        piece_labels.append(labels[seen])
        tiles.append(np.full(int(seen.sum()), index))
    return np.concatenate(pieces), np.concatenate(piece_labels), np.concatenate(tiles)


# --- the grid --------------------------------------------------------------------------


@pytest.mark.parametrize(("height", "width", "tile", "overlap"), [
    (100, 100, 32, 0.25), (97, 203, 32, 0.0), (1000, 37, 128, 0.2), (513, 512, 512, 0.1), (64, 64, 64, 0.5),
    (300, 301, 50, 0.9), (20, 5000, 16, 0.33),
])
def test_the_grid_covers_the_image_exactly(height, width, tile, overlap):
    grid = tile_grid(height, width, tile, overlap)
    rects = grid.rects
    coverage = np.zeros((height, width), dtype=np.int64)
    for x0, y0, x1, y1 in rects:
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height  # inside the image: nothing padded
        assert (x1 - x0, y1 - y0) == (min(tile, width), min(tile, height))
        coverage[y0:y1, x0:x1] += 1
    assert coverage.min() >= 1  # every pixel
    for starts, side, length in ((grid.x_starts, min(tile, width), width), (grid.y_starts, min(tile, height), height)):
        assert starts[0] == 0 and starts[-1] + side == length  # the last one ends on the border
        steps = np.diff(starts)
        assert (steps > 0).all()
        assert (side - steps >= overlap * tile - 1).all()  # neighbours overlap by at least the fraction (rounded)
    owner = grid.owner(np.arange(width)[None, :] + 0.5, np.arange(height)[:, None] + 0.5)
    for index, (x0, y0, x1, y1) in enumerate(rects):  # a point's owner tile holds it
        mine = owner == index
        assert not mine[:y0].any() and not mine[y1:].any() and not mine[:, :x0].any() and not mine[:, x1:].any()


def test_tiling_settings_and_defaults():
    assert not Tiling(0).enabled and Tiling(0).tiles_image((10_000, 10_000)) is False
    assert Tiling(64).tiles_image((64, 65)) and not Tiling(64).tiles_image((64, 64))
    with pytest.raises(ValueError, match="0 .the whole image in one pass. or at least 16"):
        Tiling(MIN_TILE - 1)
    with pytest.raises(ValueError, match="overlap must be a fraction from 0 to 0.9, got 1.5"):
        Tiling(64, 1.5)
    config = ModelConfig(classes=CLASSES, min_size=800, max_size=1333)
    # trained on 218 x 250 images: the model saw them at 800 / 218; a 218 px tile is resized alike
    assert default_tiling(config, {"height": 218, "width": 250, "box_side": 12.0}) == Tiling(218, 0.1)
    assert default_tiling(config, {"height": 400, "width": 3000, "box_side": 100.0}) == Tiling(1800, 0.1)
    assert default_tiling(config, {"height": 200, "width": 200, "box_side": 80.0}) == Tiling(200, 0.4)
    assert default_tiling(config, None) == Tiling(800, 0.2)  # no record: the model's own scale
    assert default_tiling(None, {"height": "?"}) == Tiling(800, 0.2)


# --- the merge -------------------------------------------------------------------------


def pieces_of(grid, box, label=1, score=0.9):
    truth = np.array([box], dtype=np.float64)
    boxes, labels, tiles = oracle(grid, truth, np.array([label]))
    return boxes, np.full(len(boxes), score), labels, tiles


@pytest.mark.parametrize("overlap", [0.0, 0.1])
@pytest.mark.parametrize(("box", "pieces"), [((90, 30, 130, 60), 2), ((30, 90, 60, 130), 2),
                                             ((80, 80, 140, 150), 4)])
def test_an_object_cut_into_two_or_four_pieces_ends_as_one_box_equal_to_it(overlap, box, pieces):
    grid = tile_grid(200, 200, 100 if overlap == 0 else 110, overlap)  # tiles meet at 100 or overlap 11 px
    boxes, scores, labels, tiles = pieces_of(grid, box)
    assert len(np.unique(tiles)) == pieces and len(boxes) == pieces
    merged = merge_tile_detections(grid, boxes, scores, labels, tiles)
    np.testing.assert_array_equal(merged.boxes, [box])
    assert merged.labels.tolist() == [1] and merged.scores.tolist() == [0.9] and merged.pieces.tolist() == [pieces]


def test_an_object_seen_whole_in_another_tile_wins_over_its_cut_pieces():
    grid = tile_grid(200, 200, 120, 0.4)  # tiles at 0 and 80: they share 80 to 120
    box = (100, 30, 118, 50)  # whole in both tiles
    cut = (110, 30, 130, 50)  # cut by the first tile's edge at 120, whole in the second
    for truth in (box, cut):
        boxes, scores, labels, tiles = pieces_of(grid, truth)
        merged = merge_tile_detections(grid, boxes, scores, labels, tiles)
        np.testing.assert_array_equal(merged.boxes, [truth])


@pytest.mark.parametrize("overlap", [0.0, 0.1])
def test_two_adjacent_objects_cut_by_a_border_stay_two(overlap):
    grid = tile_grid(200, 200, 100 if overlap == 0 else 110, overlap)
    # side by side across nothing: both cut by the vertical edge, touching each other along y = 50
    truth = np.array([[90, 20, 130, 50], [90, 50, 130, 80]], dtype=np.float64)
    for labels in ([0, 1], [2, 2]):  # of different classes, and of one class
        boxes, piece_labels, tiles = oracle(grid, truth, np.array(labels))
        merged = merge_tile_detections(grid, boxes, np.full(len(boxes), 0.8), piece_labels, tiles)
        assert_same_objects(merged.boxes, merged.labels, truth, labels, iou=0.999)
    # one over the other, different classes: the same place, two objects
    truth = np.array([[90, 20, 130, 50], [92, 22, 128, 48]], dtype=np.float64)
    boxes, piece_labels, tiles = oracle(grid, truth, np.array([0, 1]))
    merged = merge_tile_detections(grid, boxes, np.full(len(boxes), 0.8), piece_labels, tiles)
    assert sorted(map(tuple, merged.boxes.tolist())) == sorted(map(tuple, truth.tolist()))


@pytest.mark.parametrize(("tile", "overlap"), [(256, 0.2), (256, 0.0), (200, 0.02), (300, 0.5)])
def test_the_oracle_scene_merges_to_its_ground_truth(tile, overlap):
    """2048 x 2048, 300 objects of 8 to 24 px, a fifth of them on tile edges, each tile's true boxes clipped."""
    grid = tile_grid(2048, 2048, tile, overlap)
    truth, labels = scene(2048, 300, grid, seed=tile + int(overlap * 100))
    boxes, piece_labels, tiles = oracle(grid, truth, labels)
    assert len(boxes) > len(truth) * 1.1  # many objects come in pieces, or twice
    scores = np.random.default_rng(1).uniform(0.5, 1.0, len(boxes))
    merged = merge_tile_detections(grid, boxes, scores, piece_labels, tiles)
    assert_same_objects(merged.boxes, merged.labels, truth, labels)
    np.testing.assert_allclose(np.sort(merged.boxes, axis=0), np.sort(truth, axis=0))  # exactly, in fact


def test_one_tile_or_no_boxes_pass_through():
    grid = tile_grid(50, 50, 64, 0.2)
    boxes = np.array([[0, 0, 50, 50], [1, 1, 49, 49]], float)
    merged = merge_tile_detections(grid, boxes, [0.5, 0.4], [1, 1], [0, 0])
    np.testing.assert_array_equal(merged.boxes, boxes)
    grid = tile_grid(500, 500, 64, 0.2)
    assert len(merge_tile_detections(grid, np.zeros((0, 4)), [], [], [])) == 0
    with pytest.raises(ValueError, match="tile ids must be from 0 to 99, got 0 to 100"):
        merge_tile_detections(grid, boxes, [0.5, 0.4], [1, 1], [0, 100])


# --- the incremental merge equals the one-shot merge ---------------------------------------


def raw_tile_detections(grid, count: int, seed: int):
    """Per tile, raw-looking detections in the tile's coordinates (float32): each visible piece of
    ``count`` random objects (6 to 30 px, overlapping freely) one to three times, half of them jittered,
    of two classes, with scores rounded to 0.1 (many ties)."""
    rng = np.random.default_rng(seed)
    height, width = grid.image_size
    corners = np.column_stack([rng.uniform(0, width - 30, count), rng.uniform(0, height - 30, count)])
    truth = np.concatenate([corners, corners + rng.uniform(6, 30, (count, 2))], axis=1)
    per_tile = []
    for x0, y0, x1, y1 in grid.rects.tolist():
        boxes = truth.copy()
        boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], x0, x1)
        boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], y0, y1)
        boxes = boxes[(boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])]
        copies = rng.integers(1, 4, len(boxes))
        boxes = np.repeat(boxes, copies, axis=0)
        boxes += rng.normal(0, 1, boxes.shape) * (rng.random((len(boxes), 1)) < 0.5)
        boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], x0, x1)
        boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], y0, y1)
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 0.5)
        per_tile.append(((boxes - [x0, y0, x0, y0]).astype(np.float32),
                         np.round(rng.random(len(boxes)), 1).astype(np.float32), rng.integers(1, 3, len(boxes))))
    return per_tile


@pytest.mark.parametrize(("height", "width", "tile", "overlap"), [
    (700, 900, 128, 0.2), (500, 500, 100, 0.0), (600, 400, 100, 0.6), (300, 1000, 64, 0.1), (100, 90, 128, 0.2)])
def test_the_merge_tile_by_tile_equals_the_merge_of_everything_at_once(height, width, tile, overlap):
    grid = tile_grid(height, width, tile, overlap)
    per_tile = raw_tile_detections(grid, 300, seed=tile)
    rects = grid.rects
    boxes = np.concatenate([local.astype(np.float64) + rects[k][[0, 1, 0, 1]]
                            for k, (local, _, _) in enumerate(per_tile)])
    scores = np.concatenate([tile_scores for _, tile_scores, _ in per_tile]).astype(np.float64)
    labels = np.concatenate([tile_labels for _, _, tile_labels in per_tile])
    tiles = np.repeat(np.arange(len(per_tile)), [len(tile_scores) for _, tile_scores, _ in per_tile])
    at_once = merge_tile_detections(grid, boxes, scores, labels, tiles)
    merger = TileMerger(grid)
    most_held = 0
    for number, detections in enumerate(per_tile):
        merger.add(number, *detections)
        most_held = max(most_held, merger.held)
    by_tile = merger.result()
    for field in ("boxes", "scores", "labels", "sources", "pieces"):
        np.testing.assert_array_equal(getattr(by_tile, field), getattr(at_once, field), err_msg=field)
    if len(grid) > 1:
        assert (at_once.pieces > 1).sum() > 10  # the comparison includes objects merged across tiles
    if grid.rows > 3 and overlap < 0.5:  # held: about two rows of tiles, not the image
        assert most_held <= len(boxes) * 3 / grid.rows


def test_the_tile_merger_wants_the_tiles_in_order_and_all_of_them():
    grid = tile_grid(200, 200, 100, 0.0)
    merger = TileMerger(grid)
    with pytest.raises(ValueError, match="expected tile 0 of 4, got 1"):
        merger.add(1, np.zeros((0, 4)), [], [])
    merger.add(0, [[10, 10, 20, 20]], [0.5], [1])
    with pytest.raises(ValueError, match="1 of the 4 tiles"):
        merger.result()
    for number in (1, 2, 3):
        merger.add(number, np.zeros((0, 4)), [], [])
    np.testing.assert_array_equal(merger.result().boxes, [[10, 10, 20, 20]])


# --- through iter_predictions, with a model that sees painted objects ---------------------


class PaintedObjects(torch.nn.Module):
    """A stand-in detector that finds the objects painted into an image: object ``k`` is where
    red * 256 + green is ``k`` (from 1), its class (from 1) in blue. Per object it returns its
    box clipped to the input, scored 0.9, and, with ``echo``, the same box again, scored 0.3
    (as a raw detection beside the good one)."""

    def __init__(self, echo: bool = False):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.roi_heads = SimpleNamespace(score_thresh=0.05, nms_thresh=0.5, detections_per_img=100)
        self.echo = echo
        self.inputs: list[tuple[int, int]] = []

    def forward(self, images):
        outputs = []
        for image in images:
            self.inputs.append((int(image.shape[1]), int(image.shape[2])))
            pixels = (image * 255).round().to(torch.int64).numpy()
            ids = pixels[0] * 256 + pixels[1]
            rows, columns = np.nonzero(ids)
            found = ids[rows, columns]
            if len(found):
                known = np.unique(found)
                where = np.searchsorted(known, found)
                low = np.full((len(known), 2), np.iinfo(np.int64).max)
                high = np.full((len(known), 2), -1)
                for axis, values in enumerate((columns, rows)):
                    np.minimum.at(low[:, axis], where, values)
                    np.maximum.at(high[:, axis], where, values + 1)
                boxes = np.concatenate([low, high], axis=1).astype(np.float32)
                first = np.unique(where, return_index=True)[1]  # a pixel of each object
                labels = pixels[2][rows[first], columns[first]]
            else:
                boxes, labels = np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
            scores = np.full(len(boxes), 0.9, np.float32)
            if self.echo and len(boxes):
                boxes = np.concatenate([boxes, boxes])
                labels = np.concatenate([labels, labels])
                scores = np.concatenate([scores, np.full(len(scores), 0.3, np.float32)])
            outputs.append({"boxes": torch.from_numpy(boxes), "scores": torch.from_numpy(scores),
                            "labels": torch.from_numpy(np.asarray(labels, np.int64))})
        return outputs


def painted_image(height: int, width: int, count: int, seed: int, tile: int, overlap: float):
    grid = tile_grid(height, width, tile, overlap)
    size = min(height, width)
    truth, labels = scene(size, count, grid, seed)
    image = np.zeros((height, width, 3), dtype=np.uint8)
    for number, ((x0, y0, x1, y1), label) in enumerate(zip(truth.astype(int), labels), start=1):
        image[y0:y1, x0:x1] = (number // 256, number % 256, label + 1)
    return image, truth, [CLASSES[label] for label in labels]


def test_tiled_prediction_finds_each_painted_object_once():
    tiling = Tiling(96, 0.25)
    first, truth, names = painted_image(400, 520, 60, seed=3, tile=96, overlap=0.25)
    small, small_truth, small_names = painted_image(80, 90, 3, seed=4, tile=96, overlap=0.25)
    model = PaintedObjects()
    records, summary = predict_images(model, [first, small, first], CLASSES, batch_size=5, tiling=tiling)
    grid = tiling.grid((400, 520))
    assert [record.index for record in records] == [0, 1, 2] and [r.tiles for r in records] == [len(grid), 1, len(grid)]
    assert summary.tiles == 2 * len(grid) + 1 and len(model.inputs) == summary.tiles
    assert set(model.inputs) == {(96, 96), (80, 90)}  # tiles of the tile's size; the small image whole
    for record, (boxes, labels) in zip(records, [(truth, names), (small_truth, small_names), (truth, names)]):
        annotation = record.annotation
        assert record.image_size == ((80, 90) if record.index == 1 else (400, 520))
        assert_same_objects(annotation.boxes, annotation.labels, boxes, labels, iou=0.999)
        assert annotation.classes == CLASSES

    # one pass: the same objects (the painted model is not fooled by size), the image whole
    model = PaintedObjects()
    whole, _ = predict_images(model, [first], CLASSES, tiling=Tiling(0))
    assert model.inputs == [(400, 520)] and whole[0].tiles == 1
    assert_same_objects(whole[0].annotation.boxes, whole[0].annotation.labels, truth, names, iou=0.999)


def test_reading_inline_gives_the_same_and_closing_midway_restores_the_model():
    import threading

    tiling = Tiling(64, 0.1)
    image, truth, names = painted_image(200, 260, 20, seed=8, tile=64, overlap=0.1)
    ahead, _ = predict_images(PaintedObjects(), [image, image], CLASSES, tiling=tiling, batch_size=3)
    inline, _ = predict_images(PaintedObjects(), [image, image], CLASSES, tiling=tiling, batch_size=3, read_ahead=0)
    for first, second in zip(ahead, inline):
        assert first.annotation == second.annotation
    assert_same_objects(inline[1].annotation.boxes, inline[1].annotation.labels, truth, names, iou=0.999)

    model = PaintedObjects()
    generator = iter_predictions(model, [image] * 3, CLASSES, tiling=tiling, batch_size=2, tile_progress=True)
    first = next(generator)
    assert isinstance(first, TileProgress) and first.done == 2 and model.roi_heads.score_thresh == 0.01
    generator.close()  # a cancel in the middle of an image's tiles
    assert model.roi_heads.score_thresh == 0.05 and model.roi_heads.nms_thresh == 0.5  # restored
    assert not [thread for thread in threading.enumerate() if thread.name == "napari-faster-rcnn-read-ahead"]


def test_tile_progress_is_yielded_per_batch_of_tiles():
    image, _, _ = painted_image(200, 200, 10, seed=5, tile=64, overlap=0.0)
    items = list(iter_predictions(PaintedObjects(), [image], CLASSES, batch_size=4, tiling=Tiling(64, 0.0),
                                  tile_progress=True))
    progress = [item for item in items if isinstance(item, TileProgress)]
    assert [p.done for p in progress] == [4, 8, 12, 16] and {p.tiles for p in progress} == {16}
    assert not isinstance(items[-1], TileProgress) and items[-1].tiles == 16


def test_thresholds_apply_to_merged_raw_detections():
    """Raw detections stay raw: the good box and its echo both come back per object, and the
    score and NMS thresholds of Tune predictions then give the objects, as for a whole image."""
    tiling = Tiling(96, 0.25)
    image, truth, names = painted_image(400, 400, 40, seed=6, tile=96, overlap=0.25)
    records, _ = predict_images(PaintedObjects(echo=True), [image, image], CLASSES, tiling=tiling)
    raw = records[0].annotation
    assert len(raw) == 2 * len(truth)  # one good box and one echo per object, not one box per tile
    assert sorted(np.round(raw.scores, 3).tolist()) == [0.3] * len(truth) + [0.9] * len(truth)
    by_score = apply_thresholds(raw, Thresholds(score_threshold=0.5, nms_threshold=1.0))
    assert_same_objects(by_score.boxes, by_score.labels, truth, names, iou=0.999)
    by_nms = apply_thresholds(raw, Thresholds(score_threshold=0.0, nms_threshold=0.5))
    assert_same_objects(by_nms.boxes, by_nms.labels, truth, names, iou=0.999)
    detections = DetectionSet([record.annotation for record in records])  # the sliders' set over both images
    for thresholds in (Thresholds(0.5, 1.0), Thresholds(0.0, 0.5), Thresholds(0.2, 0.5, ("cell",))):
        for filtered, record in zip(detections.filtered(thresholds), records):
            assert filtered == apply_thresholds(record.annotation, thresholds)
    only_cells = detections.filtered(Thresholds(0.5, 0.5, ("cell",)))[0]
    assert set(only_cells.labels) == {"cell"} and len(only_cells) == names.count("cell")


def test_a_tiled_tiff_is_predicted_tile_by_tile_without_decoding_it_whole(tmp_path, monkeypatch):
    import tifffile

    from napari_faster_rcnn.core.data import images as image_module

    tiling = Tiling(96, 0.25)
    image, truth, names = painted_image(400, 520, 60, seed=5, tile=96, overlap=0.25)
    path = tmp_path / "painted.tif"
    tifffile.imwrite(path, image, tile=(64, 64), photometric="rgb", compression="zlib")
    png = tmp_path / "painted.png"
    from PIL import Image

    Image.fromarray(image).save(png)

    def whole(item, *args, **kwargs):
        raise AssertionError(f"{item} was decoded whole")

    # the reader decodes a whole image with images.read_image, looked up there at each call
    monkeypatch.setattr(image_module, "read_image", whole)
    records, _ = predict_images(PaintedObjects(), [path], CLASSES, tiling=tiling, batch_size=4)
    assert_same_objects(records[0].annotation.boxes, records[0].annotation.labels, truth, names, iou=0.999)
    assert records[0].tiles == len(tiling.grid((400, 520)))
    monkeypatch.undo()
    # a PNG cannot be read by region: decoded once, then the same tiles and the same result
    decoded, _ = predict_images(PaintedObjects(), [png], CLASSES, tiling=tiling, batch_size=4)
    assert decoded[0].annotation == records[0].annotation


class RecordingModel(torch.nn.Module):
    """A stand-in detector that keeps every input and finds nothing."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.roi_heads = SimpleNamespace(score_thresh=0.05, nms_thresh=0.5, detections_per_img=100)
        self.inputs: list[torch.Tensor] = []

    def forward(self, images):
        self.inputs.extend(image.clone() for image in images)
        empty = {"boxes": torch.zeros((0, 4)), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.int64)}
        return [dict(empty) for _ in images]


@pytest.mark.parametrize("normalization", ["auto", "percentiles:2,98", "none"])
def test_a_16_bit_tiled_tiff_is_tiled_by_region_scaled_as_the_whole_image(tmp_path, monkeypatch, normalization):
    """Each tile the model gets equals the same tile of the whole image normalized at once (the
    reference), and the image is never decoded whole."""
    import tifffile

    from napari_faster_rcnn.core.data import images as image_module
    from napari_faster_rcnn.core.data.image_tensors import image_to_tensor
    from napari_faster_rcnn.core.prediction.reading import read_image_array

    rng = np.random.default_rng(4)
    image = rng.gamma(2.0, 700.0, (700, 900)).clip(0, 65535).astype(np.uint16)  # a subsample stride of 2
    path = tmp_path / "large16.tif"
    tifffile.imwrite(path, image, tile=(128, 128), photometric="minisblack", compression="zlib")
    tiling = Tiling(256, 0.2)
    reference = read_image_array(path, normalization)
    expected = [image_to_tensor(reference[y0:y1, x0:x1]) for x0, y0, x1, y1 in tiling.grid((700, 900)).rects.tolist()]

    def whole(*args, **kwargs):
        raise AssertionError("the image was decoded whole")

    monkeypatch.setattr(image_module, "read_image", whole)
    model = RecordingModel()
    model.config = SimpleNamespace(normalization=normalization)
    records, summary = predict_images(model, [path], CLASSES, tiling=tiling, batch_size=3)
    assert records[0].error is None and summary.tiles == len(expected)
    assert len(model.inputs) == len(expected)
    for got, want in zip(model.inputs, expected):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
