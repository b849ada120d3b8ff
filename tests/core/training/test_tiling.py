"""Training on tiles: the windows, the boxes a tile keeps, the datasets and a run on tiles."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from napari_faster_rcnn.core.data.annotations import Annotation
from napari_faster_rcnn.core.data.synthetic import make_synthetic_sample
from napari_faster_rcnn.core.training.data_module import DetectionDataModule
from napari_faster_rcnn.core.training.dataset import DetectionDataset
from napari_faster_rcnn.core.training.run import build_run, run_training
from napari_faster_rcnn.core.training.settings import TrainingSettings
from napari_faster_rcnn.core.training.tile_dataset import TileDataset
from napari_faster_rcnn.core.training.tiling import (
    boxes_in_window,
    check_tile_size,
    grid_windows,
    random_window,
    read_tiff_window,
)
from napari_faster_rcnn.core.training.transforms import AugmentationConfig


def brute_force_tile(boxes, window, min_visible):
    """Per box, by counting the pixels of its mask inside the window (integer boxes and windows)."""
    shift = 50  # a mask grid with the origin at (-50, -50), so that nothing is negative
    x0, y0, x1, y1 = (int(v) + shift for v in window)
    kept, keep = [], []
    for box in boxes:
        left, top, right, bottom = (int(v) + shift for v in box)
        mask = np.zeros((max(bottom, y1) + 1, max(right, x1) + 1), dtype=bool)
        mask[top:bottom, left:right] = True
        inside = mask[y0:y1, x0:x1]
        visible = int(inside.sum())
        ok = visible > 0 and visible >= min_visible * mask.sum()
        keep.append(ok)
        if ok:
            rows, cols = np.nonzero(inside)
            kept.append([cols.min() + x0 - shift, rows.min() + y0 - shift, cols.max() + 1 + x0 - shift,
                         rows.max() + 1 + y0 - shift])
    return np.array(kept, dtype=np.float64).reshape(-1, 4), np.array(keep, dtype=bool)


def random_boxes(rng, count, size):
    corners = rng.integers(-10, size, (count, 2))
    sides = rng.integers(1, 40, (count, 2))
    return np.concatenate([corners, corners + sides], axis=1).astype(np.float64)


@pytest.mark.parametrize("min_visible", [0.0, 0.25, 0.5, 0.9, 1.0])
def test_tile_boxes_equal_a_brute_force_clipping_with_the_visibility_rule(min_visible):
    rng = np.random.default_rng(3)
    boxes = random_boxes(rng, 300, 200)
    for _ in range(20):
        x0, y0 = (int(v) for v in rng.integers(-5, 150, 2))
        window = (x0, y0, x0 + int(rng.integers(20, 80)), y0 + int(rng.integers(20, 80)))
        clipped, keep = boxes_in_window(boxes, window, min_visible)
        expected, expected_keep = brute_force_tile(boxes, window, min_visible)
        np.testing.assert_array_equal(keep, expected_keep)
        np.testing.assert_array_equal(clipped + [x0, y0, x0, y0], expected)


def test_a_box_exactly_half_inside_is_kept_and_less_is_dropped():
    boxes = np.array([[90, 0, 110, 10], [91, 20, 111, 30]], dtype=float)
    clipped, keep = boxes_in_window(boxes, (0, 0, 100, 100), 0.5)
    assert keep.tolist() == [True, False]
    np.testing.assert_array_equal(clipped, [[90, 0, 100, 10]])


@pytest.mark.parametrize(("height", "width", "tile"), [(512, 512, 128), (300, 1000, 128), (100, 90, 128),
                                                        (129, 700, 64), (1000, 1000, 0)])
def test_the_validation_grid_is_fixed_and_covers_the_image(height, width, tile):
    windows = grid_windows(height, width, tile)
    assert windows == grid_windows(height, width, tile)
    covered = np.zeros((height, width), dtype=int)
    for x0, y0, x1, y1 in windows:
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
        assert (x1 - x0, y1 - y0) == ((min(tile, width), min(tile, height)) if tile else (width, height))
        covered[y0:y1, x0:x1] += 1
    assert covered.min() >= 1
    if tile and height % tile == 0 and width % tile == 0:
        assert covered.max() == 1  # a size that divides gives no overlap


def test_random_windows_lie_inside_and_around_a_box_when_asked():
    generator = torch.Generator().manual_seed(0)
    boxes = np.array([[400.0, 300.0, 410.0, 312.0]])
    for _ in range(200):
        x0, y0, x1, y1 = random_window(500, 600, 128, boxes, object_probability=1.0, generator=generator)
        assert 0 <= x0 and x1 <= 600 and 0 <= y0 and y1 <= 500 and (x1 - x0, y1 - y0) == (128, 128)
        assert x0 <= 405 <= x1 and y0 <= 306 <= y1
    corners = {random_window(500, 600, 128, boxes, object_probability=0.0, generator=generator)[:2]
               for _ in range(100)}
    assert len(corners) > 50 and min(x for x, _ in corners) < 300  # anywhere, not only near the box


def test_tile_size_is_checked():
    assert check_tile_size(None) == 0 and check_tile_size(128) == 128
    for bad in (-1, 8, 12.5, True):
        with pytest.raises(ValueError, match="tile_size"):
            check_tile_size(bad)


def coordinate_image(height, width):
    """Pixels that tell where they are: red and green the column, blue the row (both mod 256 / 4)."""
    rows, cols = np.mgrid[0:height, 0:width]
    return np.stack([cols % 256, cols // 256 * 16 + rows // 256, rows % 256], axis=-1).astype(np.uint8)


def where(tile: torch.Tensor) -> tuple[int, int]:
    pixel = (tile[:, 0, 0] * 255).round().int().tolist()
    return pixel[0] + 256 * (pixel[1] // 16), pixel[2] + 256 * (pixel[1] % 16)


@pytest.fixture
def large_sample(tmp_path):
    path = tmp_path / "large.png"
    Image.fromarray(coordinate_image(300, 520)).save(path)
    boxes = random_boxes(np.random.default_rng(1), 120, 500)
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, 520)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, 300)
    boxes = boxes[(boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])]
    return path, Annotation(boxes, ["a"] * len(boxes))


def test_training_tiles_hold_the_pixels_and_boxes_of_their_window(large_sample):
    path, annotation = large_sample
    dataset = DetectionDataset([(path, annotation)], ["a"])
    tiles = TileDataset(dataset, 128, train=True, generator=torch.Generator().manual_seed(2))
    assert len(tiles) == 3 * 5  # as many draws per epoch as the grid has tiles
    for index in range(len(tiles)):
        image, target = tiles[index]
        assert image.shape == (3, 128, 128)
        x0, y0 = where(image)
        expected, _ = brute_force_tile(annotation.boxes, (x0, y0, x0 + 128, y0 + 128), 0.5)
        np.testing.assert_array_equal(target["boxes"].numpy(), expected - [x0, y0, x0, y0])
        assert (target["labels"] == 1).all()


def test_validation_tiles_are_tiled_predictions_grid_every_time(large_sample):
    from napari_faster_rcnn.core.prediction.tiles import DEFAULT_OVERLAP, tile_grid

    path, annotation = large_sample
    tiles = TileDataset(DetectionDataset([(path, annotation)], ["a"]), 128, train=False)
    first = [(where(image), target["boxes"].tolist()) for image, target in tiles]
    second = [(where(image), target["boxes"].tolist()) for image, target in tiles]
    assert first == second
    grid = tile_grid(300, 520, 128, DEFAULT_OVERLAP)  # the tiles predict cuts, overlapping
    assert [corner for corner, _ in first] == [tuple(int(v) for v in rect[:2]) for rect in grid.rects]
    assert tiles.max_boxes_per_tile() == max(len(boxes) for _, boxes in first)
    for position, (image, target) in enumerate(tiles):  # each tile says where it is in its image
        assert (target["source"], target["tile"], target["offset"]) == (0, position, where(image))
        if position == 0:  # the image's own boxes ride on its first tile only, not once a tile
            np.testing.assert_allclose(target["image_boxes"].numpy(), annotation.boxes, rtol=1e-6)
        else:
            assert "image_boxes" not in target and "image_labels" not in target


def test_an_image_smaller_than_a_tile_is_used_whole(tmp_path):
    path = tmp_path / "small.png"
    Image.fromarray(coordinate_image(60, 90)).save(path)
    dataset = DetectionDataset([(path, Annotation([[1, 2, 30, 40]], ["a"]))], ["a"])
    for train in (True, False):
        image, target = TileDataset(dataset, 128, train=train)[0]
        assert image.shape == (3, 60, 90) and target["boxes"].tolist() == [[1, 2, 30, 40]]


def test_a_tiled_tiff_is_read_by_region(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    pytest.importorskip("zarr")
    image = coordinate_image(300, 520)
    path = tmp_path / "tiled.tif"
    tifffile.imwrite(path, image, tile=(64, 64), photometric="rgb")
    region = read_tiff_window(path, (100, 50, 228, 178), (300, 520))
    np.testing.assert_array_equal(region, image[50:178, 100:228])
    assert read_tiff_window(path, (0, 0, 10, 10), (299, 520)) is None  # not the size the dataset expects
    png = tmp_path / "plain.png"
    Image.fromarray(image).save(png)
    assert read_tiff_window(png, (0, 0, 10, 10), (300, 520)) is None
    # uncached, the dataset reads the tile by region and gives the same pixels
    dataset = DetectionDataset([(path, Annotation())], ["a"])
    tile, _ = dataset.window_item(0, (100, 50, 228, 178))
    assert where(tile) == (100, 50)


def write_large_shapes(folder, count, size=512):
    """Synthetic images of ``size`` px with 20-40 shapes of 10-30 px each."""
    from napari_faster_rcnn.core.data.annotations import save_annotation

    (folder / "input").mkdir(parents=True)
    (folder / "target").mkdir()
    for index in range(count):
        image, annotation = make_synthetic_sample(7, index, height=size, width=size, objects=(20, 40), sizes=(10, 30))
        Image.fromarray(image).save(folder / "input" / f"{index:03d}.png")
        save_annotation(folder / "target" / f"{index:03d}.pt", annotation)
    return folder


def test_a_run_on_tiles_trains_on_128_px_samples(tmp_path):
    data = write_large_shapes(tmp_path / "data", 2)
    settings = TrainingSettings(
        data=data, validation_data=data, output=tmp_path / "run", preset="cpu", tile_size=128, epochs=1,
        batch_size=8, num_workers=0, optimizer="adamw", learning_rate=1e-3, warmup_steps=1,
        accelerator="cpu", augmentation=AugmentationConfig.none())
    trainer, module, data_module = build_run(settings)
    data_module.setup("fit")
    images, targets = next(iter(data_module.train_dataloader()))
    assert [tuple(image.shape) for image in images] == [(3, 128, 128)] * 8
    assert len(data_module.train_dataloader().dataset) == 2 * 16  # 512 / 128 = 4 x 4 tiles per image
    result = run_training(settings.__class__(**{**settings.__dict__, "output": tmp_path / "run2"}))
    assert result.steps == 4 and result.best_checkpoint is not None  # 32 tiles in batches of 8, validated
    assert "val/voc_map" in result.metrics


def test_an_image_as_one_tile_keeps_every_box_inside_at_its_size():
    from napari_faster_rcnn.core.training.tiling import boxes_as_tile

    rng = np.random.default_rng(3)
    corner = rng.uniform(0, 900, (300, 2))
    boxes = np.concatenate([corner, corner + rng.uniform(1, 200, (300, 2))], axis=1)
    boxes[0] = [300.5, 10, 428.5, 200]  # as wide as the tile, taller than it
    (height, width), tile = boxes_as_tile((1000, 1100), Annotation(boxes, ["a"] * 300), 128)
    assert (height, width) == (128, 128) and len(tile.boxes) == 300
    assert (tile.boxes >= 0).all() and (tile.boxes <= 128).all()
    for before, after in zip(boxes, tile.boxes):  # one box at a time
        assert np.allclose(after[2:] - after[:2], [min(before[2] - before[0], 128), min(before[3] - before[1], 128)])
    small = Annotation(boxes[:3] / 10, ["a"] * 3)
    assert boxes_as_tile((100, 110), small, 128) == ((100, 110), small)  # no larger than a tile: as it is


def test_auto_sizing_with_tiles_fits_the_model_to_the_tiles(tmp_path):
    """``auto`` with ``tile_size`` 128 on 512 px images: the sizes are fitted to 128 px tiles holding every
    box at its own size, so a resized tile puts the median box at the target. Fitted to the whole
    images (as before), the model enlarged each tile's boxes about 4 times past it."""
    from napari_faster_rcnn.core.model.auto_size import target_size
    from napari_faster_rcnn.core.model.config import preset

    data = write_large_shapes(tmp_path / "data", 2)
    settings = TrainingSettings(data=data, validation_data=data, output=tmp_path / "run", preset="cpu",
                                tile_size=128, auto_size=True, num_workers=0, accelerator="cpu")
    trainer, module, data_module = build_run(settings)
    whole, tiles = data_module.train_dataset.size_items(), data_module.training_items
    assert [size for size, _ in whole] == [(512, 512)] * 2 and [size for size, _ in tiles] == [(128, 128)] * 2
    for (_, image), (_, tile) in zip(whole, tiles):
        assert tile.labels == image.labels and (tile.boxes >= 0).all() and (tile.boxes <= 128).all()
        np.testing.assert_allclose(tile.boxes[:, 2:] - tile.boxes[:, :2], image.boxes[:, 2:] - image.boxes[:, :2])
    boxes = np.concatenate([annotation.boxes for _, annotation in whole])
    median = float(np.median(np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))))
    config = module.config
    assert config.min_size == config.max_size  # square tiles: torchvision enlarges a tile by min_size / 128
    target = target_size(preset("cpu", ["object"]))
    assert target / 1.2 < median * config.min_size / 128 < target * 1.2


def test_the_data_module_takes_the_tile_size_from_the_model_by_default(tmp_path):
    data = write_large_shapes(tmp_path / "data", 1, size=300)
    module = DetectionDataModule(root=str(data), val_root=str(data), num_workers=0, cache=False)
    assert module.tile_size is None and module.used_tile_size == 0  # no model yet: whole images
    settings = TrainingSettings(data=data, validation_data=data, output=tmp_path / "run", preset="cpu",
                                num_workers=0, accelerator="cpu")
    trainer, model, data_module = build_run(settings)
    trainer.strategy.connect(model)
    data_module.trainer = trainer
    data_module.setup("fit")
    assert data_module.used_tile_size == model.config.max_size == 128
    assert data_module.hparams["training_tile_size"] == 128
    whole = DetectionDataModule(root=str(data), val_root=str(data), num_workers=0, cache=False, tile_size=0)
    whole.setup("fit")
    assert whole.train_dataloader().dataset is whole.train_dataset


def test_tiles_of_a_large_zarr_image_are_read_by_region(tmp_path, monkeypatch):
    """Uncached, a Zarr image's tiles hold the pixels and boxes of their window, read chunk by chunk
    (never the whole image); a 16-bit one is scaled by the whole image's percentiles, as the image
    normalized whole (the reference) is."""
    import zarr

    from napari_faster_rcnn.core.data.intensity import normalize
    from napari_faster_rcnn.core.training import sample_images

    image = coordinate_image(300, 520)
    path = tmp_path / "large.zarr"
    zarr.create_array(str(path), shape=image.shape, chunks=(64, 64, 3), dtype=image.dtype)[:] = image
    boxes = random_boxes(np.random.default_rng(1), 120, 500)
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, 520)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, 300)
    boxes = boxes[(boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])]
    annotation = Annotation(boxes, ["a"] * len(boxes))

    def whole(path):
        raise AssertionError(f"{path} was read whole")

    monkeypatch.setattr(sample_images, "read_whole", whole)
    dataset = DetectionDataset([(path, annotation)], ["a"])
    assert dataset.image_sizes == [(300, 520)]
    tiles = TileDataset(dataset, 128, train=True, generator=torch.Generator().manual_seed(2))
    for index in range(len(tiles)):
        tile, target = tiles[index]
        assert tile.shape == (3, 128, 128)
        x0, y0 = where(tile)
        np.testing.assert_array_equal((tile.permute(1, 2, 0).numpy() * 255).round(), image[y0:y0 + 128, x0:x0 + 128])
        expected, _ = brute_force_tile(annotation.boxes, (x0, y0, x0 + 128, y0 + 128), 0.5)
        np.testing.assert_array_equal(target["boxes"].numpy(), expected - [x0, y0, x0, y0])

    rng = np.random.default_rng(5)
    deep = rng.gamma(2.0, 800.0, (2, 700, 900)).clip(0, 65535).astype(np.uint16)  # channels first
    group = zarr.open_group(str(tmp_path / "deep.zarr"), mode="w")
    group.create_array("0", shape=deep.shape, chunks=(1, 128, 128), dtype=deep.dtype)[:] = deep
    dataset = DetectionDataset([(tmp_path / "deep.zarr", Annotation())], ["a"], normalization="auto")
    reference = normalize(np.repeat(deep[0][:, :, None], 3, axis=2), "auto")
    for window in grid_windows(700, 900, 256):
        tile, _ = dataset.window_item(0, window)
        x0, y0, x1, y1 = window
        torch.testing.assert_close(tile, torch.from_numpy(reference[y0:y1, x0:x1]).permute(2, 0, 1), rtol=0, atol=0)
