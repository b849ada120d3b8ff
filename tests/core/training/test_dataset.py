import logging
import pickle
import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image

from napari_faster_rcnn.core.data.annotations import Annotation, AnnotationError, load_annotation, save_annotation
from napari_faster_rcnn.core.data.folders import DatasetError, discover_dataset
from napari_faster_rcnn.core.data.image_files import ImageReadError
from napari_faster_rcnn.core.data.image_tensors import image_to_unit_float
from napari_faster_rcnn.core.data.images import read_image
from napari_faster_rcnn.core.data.synthetic import SHAPE_CLASSES
from napari_faster_rcnn.core.training import sample_images
from napari_faster_rcnn.core.training.dataset import DetectionDataset, collate_detections, split_datasets
from napari_faster_rcnn.core.training.samples import TrainingDataError, TrainingSample, dataset_classes
from napari_faster_rcnn.core.training.transforms import AugmentationConfig, build_transform
from tests.conftest import write_image

FLIP = AugmentationConfig(
    horizontal_flip_probability=0.5, scale_probability=0.0, brightness_contrast_probability=0.0
)


def check_item(item, height, width):
    image, target = item
    assert image.dtype == torch.float32 and image.shape == (3, height, width)
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    assert target["boxes"].dtype == torch.float32 and target["boxes"].shape[1:] == (4,)
    assert target["labels"].dtype == torch.int64 and target["labels"].shape == (len(target["boxes"]),)
    assert target["image_id"].dtype == torch.int64
    assert target["iscrowd"].shape == (len(target["boxes"]),)
    return image, target


# --- folders and samples ---------------------------------------------------


def test_input_target_folder_gives_torchvision_targets(tutorial_dataset):
    dataset = DetectionDataset.from_folder(tutorial_dataset)
    assert len(dataset) == 6 and dataset.classes == list(SHAPE_CLASSES) and dataset.num_classes == 4
    for index in range(len(dataset)):
        image, target = check_item(dataset[index], 64, 80)
        name = f"{index:03d}"
        pixels = read_image(tutorial_dataset / "input" / f"{name}.png")
        assert torch.equal(image, torch.from_numpy(pixels.copy()).permute(2, 0, 1).float() / 255)
        annotation = load_annotation(tutorial_dataset / "target" / f"{name}.pt")
        assert torch.equal(target["boxes"], torch.tensor(annotation.boxes, dtype=torch.float32))
        assert target["labels"].tolist() == [SHAPE_CLASSES.index(label) + 1 for label in annotation.labels]
        assert int(target["image_id"]) == index
        x1, y1, x2, y2 = annotation.boxes.T
        assert target["area"].tolist() == pytest.approx(((x2 - x1) * (y2 - y1)).tolist())
    assert dataset[-1][1]["image_id"] == 5
    with pytest.raises(IndexError):
        dataset[6]
    assert dataset.dropped_boxes == 0 and "6 images (0 without boxes)" in dataset.report()


def test_side_by_side_folder_leaves_unlabeled_images_out_unless_asked(side_by_side_dataset, caplog):
    with caplog.at_level(logging.INFO, logger="napari_faster_rcnn"):
        dataset = DetectionDataset.from_folder(side_by_side_dataset)
    assert [s.image.name for s in dataset.samples] == ["a.png", "b.jpg"]
    assert "include_unlabeled" in caplog.text and "c.png" in caplog.text
    assert dataset.classes == ["cat", "dog"]
    check_item(dataset[0], 40, 60)
    assert dataset[1][1]["labels"].tolist() == [2]

    assert dataset.image_sizes == [(40, 60), (50, 30)]
    found = DetectionDataset(discover_dataset(side_by_side_dataset).samples[:2])  # the foundation's Sample
    assert found.classes == ["cat", "dog"] and torch.equal(found[0][0], dataset[0][0])

    everything = DetectionDataset.from_folder(side_by_side_dataset, include_unlabeled=True)
    image, target = check_item(everything[2], 20, 20)
    assert target["boxes"].shape == (0, 4) and target["labels"].shape == (0,)


def test_images_without_boxes_and_samples_held_in_memory(tmp_path):
    write_image(tmp_path / "x.png", 32, 48)
    write_image(tmp_path / "y.png", 32, 48, seed=1)
    write_image(tmp_path / "z.png", 32, 48, seed=2)
    save_annotation(tmp_path / "z.json", Annotation([[1, 1, 9, 9]], ["cell"]))
    samples = [
        TrainingSample(tmp_path / "x.png", Annotation([[2, 3, 20, 30]], ["nucleus"])),
        (str(tmp_path / "y.png"), None),
        TrainingSample(tmp_path / "z.png", str(tmp_path / "z.json")),
        TrainingSample(tmp_path / "x.png", Annotation()),
    ]
    dataset = DetectionDataset(samples)
    assert dataset.classes == ["nucleus", "cell"]
    assert [dataset[i][1]["labels"].tolist() for i in range(4)] == [[1], [], [2], []]
    assert dataset[1][1]["boxes"].shape == (0, 4)
    assert dataset.class_counts() == {"nucleus": 1, "cell": 1}
    assert "4 images (2 without boxes), 2 boxes of 2 classes" in dataset.report()
    with pytest.raises(TypeError, match="Annotation"):
        TrainingSample(tmp_path / "x.png", {"boxes": []})
    with pytest.raises(ValueError, match="single string"):
        DetectionDataset(samples, classes="nucleus")


def test_the_size_record_checkpoints_keep_for_tiling(tmp_path):
    """Median image height and width, and the 95th percentile of the boxes' longer side (clipped to the image)."""
    sizes = [(32, 48), (40, 60), (100, 20)]
    boxes = [[[2, 3, 20, 30], [0, 0, 5, 5]], [[10, 10, 70, 12]], [[1, 1, 4, 90]]]  # 70 is clipped to 60
    samples = []
    for index, ((height, width), image_boxes) in enumerate(zip(sizes, boxes)):
        write_image(tmp_path / f"{index}.png", height, width, seed=index)
        samples.append(TrainingSample(tmp_path / f"{index}.png", Annotation(image_boxes, ["cell"] * len(image_boxes))))
    record = DetectionDataset(samples).size_record()
    sides = [27, 5, 50, 89]
    assert record == {"height": 40.0, "width": 48.0, "box_side": pytest.approx(float(np.percentile(sides, 95)))}
    assert DetectionDataset([]).size_record() is None


def test_a_folder_without_labeled_images_is_an_error(tmp_path):
    write_image(tmp_path / "only.png")
    with pytest.raises(DatasetError, match="no labeled images"):
        DetectionDataset.from_folder(tmp_path)


# --- pixels ----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "I;16"])
def test_every_image_mode_gives_three_channels_in_unit_range(tmp_path, mode):
    stored = write_image(tmp_path / "image.png", 24, 36, mode=mode, seed=4)
    # "none": the type's own scale (the default, "auto", differs for 16 bits: see test_intensity.py)
    image, _ = check_item(DetectionDataset([(tmp_path / "image.png", None)], normalization="none")[0], 24, 36)
    top = 65535.0 if mode == "I;16" else 255.0
    expected = stored.astype(np.float64) / top
    expected = np.repeat(expected[:, :, None], 3, axis=2) if expected.ndim == 2 else expected[:, :, :3]
    np.testing.assert_allclose(image.permute(1, 2, 0).numpy(), expected, atol=1e-6)
    if mode == "I;16":
        assert float(image.max()) > 0.9  # scaled by 65535, not clipped at 255


def test_other_integer_and_float_images_are_scaled_sensibly():
    sixteen_bits_in_int32 = np.array([[0, 65535]], dtype=np.int32)
    assert image_to_unit_float(sixteen_bits_in_int32).tolist() == [[0.0, 1.0]]
    assert image_to_unit_float(np.array([[-10, 30]], dtype=np.int32)).tolist() == [[0.0, 1.0]]
    assert image_to_unit_float(np.array([[0.25, 0.5]], dtype=np.float32)).tolist() == [[0.25, 0.5]]
    assert image_to_unit_float(np.array([[100.0, 300.0, 200.0]], dtype=np.float32)).tolist() == [[0.0, 1.0, 0.5]]


def test_a_float_tiff_trains_and_augments(tmp_path):
    Image.fromarray(np.linspace(0, 1000, 20 * 30, dtype=np.float32).reshape(20, 30)).save(tmp_path / "f.tif")
    transform = build_transform(AugmentationConfig(), train=True, seed=0)
    dataset = DetectionDataset([(tmp_path / "f.tif", Annotation([[1, 1, 10, 10]], ["a"]))], transform=transform)
    for _ in range(3):
        check_item(dataset[0], 20, 30)


# --- labels ----------------------------------------------------------------


def test_labels_count_from_one_in_the_order_of_the_classes(side_by_side_dataset):
    dataset = DetectionDataset.from_folder(side_by_side_dataset, classes=["dog", "cat", "bird"])
    assert dataset[0][1]["labels"].tolist() == [2, 1]
    assert dataset.num_classes == 4


def test_integer_labels_are_class_numbers(tmp_path):
    write_image(tmp_path / "a.png")
    numbers = Annotation([[0, 0, 5, 5], [5, 5, 9, 9]], ["1", "3"])
    dataset = DetectionDataset([(tmp_path / "a.png", numbers)])
    assert dataset.classes == ["1", "2", "3"]  # no names anywhere: the numbers stay the ids
    assert dataset[0][1]["labels"].tolist() == [1, 3]
    mixed = DetectionDataset([(tmp_path / "a.png", numbers)], classes=["cat", "dog", "fox"])
    assert mixed[0][1]["labels"].tolist() == [1, 3]
    named = Annotation([[0, 0, 5, 5], [5, 5, 9, 9]], ["dog", "1"], classes=["cat", "dog"])
    assert DetectionDataset([(tmp_path / "a.png", named)])[0][1]["labels"].tolist() == [2, 1]


@pytest.mark.parametrize(("label", "message"), [("bird", "'bird'"), ("7", "'7'"), ("0", "background")])
def test_a_label_that_is_no_class_names_the_file(tmp_path, label, message):
    write_image(tmp_path / "a.png")
    save_annotation(tmp_path / "a.json", Annotation([[0, 0, 5, 5]], [label]))
    with pytest.raises(TrainingDataError, match=message) as error:
        DetectionDataset.from_folder(tmp_path, classes=["cat", "dog"])
    assert error.value.path == tmp_path / "a.json" and "cat, dog" in str(error.value)


# --- boxes at and over the border ------------------------------------------


def test_boxes_outside_the_image_are_clipped_or_dropped_and_counted(tmp_path, caplog):
    write_image(tmp_path / "a.png", 40, 60)
    write_image(tmp_path / "b.png", 40, 60)
    save_annotation(tmp_path / "a.json", Annotation(
        [[-5, -3, 10, 12], [70, 5, 90, 20], [5, 5, 5, 9], [0, 0, 60, 40]], ["a", "b", "a", "b"]
    ))
    save_annotation(tmp_path / "b.json", Annotation([[50, 30, 75, 52]], ["a"]))
    with caplog.at_level(logging.WARNING, logger="napari_faster_rcnn"):
        dataset = DetectionDataset.from_folder(tmp_path)
    assert dataset.dropped_per_item == (2, 0) and dataset.dropped_boxes == 2
    assert dataset.clipped_per_item == (1, 1) and dataset.clipped_boxes == 2
    assert "a.json: 2 boxes with no area inside the image dropped and 1 box reaching outside it clipped" in caplog.text
    assert "b.json: 1 box reaching outside it clipped (image 60 x 40)" in caplog.text
    assert "2 boxes outside their image dropped, 2 clipped (in 2 images)" in dataset.report()
    _, target = dataset[0]
    assert target["boxes"].tolist() == [[0, 0, 10, 12], [0, 0, 60, 40]]
    assert target["labels"].tolist() == [1, 2]
    assert dataset[1][1]["boxes"].tolist() == [[50, 30, 60, 40]]
    # augmentation on top of clipped boxes still never crashes
    transform = build_transform(AugmentationConfig(scale_probability=1.0, scale_range=(1.5, 2.0)), True, seed=0)
    augmented = DetectionDataset.from_folder(tmp_path, transform=transform)
    for _ in range(10):
        for index in range(2):
            _, target = check_item(augmented[index], 40, 60)
            boxes = target["boxes"]
            assert (boxes[:, 2:] > boxes[:, :2]).all() and (boxes >= 0).all()
            assert (boxes[:, 2] <= 60).all() and (boxes[:, 3] <= 40).all()


# --- unreadable files ------------------------------------------------------


def test_unreadable_files_raise_errors_that_name_them(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ImageReadError, match="bad.png") as error:
        DetectionDataset([(tmp_path / "bad.png", None)])
    assert isinstance(error.value, ValueError)
    write_image(tmp_path / "good.png")
    (tmp_path / "good.json").write_text("{")
    with pytest.raises(AnnotationError, match="good.json"):
        DetectionDataset([(tmp_path / "good.png", tmp_path / "good.json")])

    dataset = DetectionDataset([(tmp_path / "good.png", None)])
    write_image(tmp_path / "good.png", 10, 10)
    with pytest.raises(TrainingDataError, match="changed on disk"):
        dataset[0]
    (tmp_path / "good.png").write_bytes(b"damaged")
    with pytest.raises(ImageReadError, match="good.png"):
        dataset[0]


# --- cache -----------------------------------------------------------------


def test_the_cache_gives_the_same_items_and_is_filled_by_several_threads(tutorial_dataset, monkeypatch):
    plain = DetectionDataset.from_folder(tutorial_dataset)
    plain_items = [plain[index] for index in range(6)]
    threads = set()
    original = sample_images.read_image

    def recording_read(path):
        threads.add(threading.get_ident())
        time.sleep(0.02)  # long enough for the pool to hand work to every thread
        return original(path)

    monkeypatch.setattr(sample_images, "read_image", recording_read)
    cached = DetectionDataset.from_folder(tutorial_dataset, cache=True, cache_workers=3)
    assert len(threads) > 1 and threading.get_ident() not in threads
    assert cached.cached_images == 6 and cached.cache_bytes == 6 * 64 * 80 * 3
    assert "cache: 6 images" in cached.report()
    monkeypatch.setattr(sample_images, "read_image", lambda path: pytest.fail("read from disk"))
    for index in range(6):
        (a_image, a_target), (b_image, b_target) = plain_items[index], cached[index]
        assert torch.equal(a_image, b_image) and torch.equal(a_target["boxes"], b_target["boxes"])

    # augmentation still runs on every access, and gives what it gives without the cache
    monkeypatch.setattr(sample_images, "read_image", original)
    cached.transform, plain.transform = build_transform(FLIP, True, seed=3), build_transform(FLIP, True, seed=3)
    draws = [cached[0] for _ in range(8)]
    for image, target in draws:
        other_image, other_target = plain[0]
        assert torch.equal(image, other_image) and torch.equal(target["boxes"], other_target["boxes"])
    assert len({tuple(target["boxes"][0].tolist()) for _, target in draws}) == 2


def test_the_cache_stays_within_its_limit(tutorial_dataset, caplog):
    one_image = 64 * 80 * 3
    with caplog.at_level(logging.WARNING, logger="napari_faster_rcnn"):
        dataset = DetectionDataset.from_folder(tutorial_dataset, cache=True, cache_limit_bytes=2 * one_image + 10)
    assert dataset.cached_images == 2 and dataset.cache_bytes == 2 * one_image
    assert "4 of 6 images are read from disk" in caplog.text
    check_item(dataset[5], 64, 80)
    dataset.clear_cache()
    assert dataset.cached_images == 0


# --- workers ---------------------------------------------------------------


def flips_seen_by_workers(dataset, seed):
    torch.manual_seed(seed)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=1, num_workers=2, collate_fn=collate_detections, timeout=60  # fail, never hang
    )
    flipped = [float(targets[0]["boxes"][0, 0]) != 2.0 for _, targets in loader]
    return flipped[0::2], flipped[1::2]  # the items of worker 0 and of worker 1


def test_each_dataloader_worker_draws_its_own_augmentations(tmp_path):
    write_image(tmp_path / "a.png", 16, 24)
    samples = [(tmp_path / "a.png", Annotation([[2, 2, 8, 8]], ["a"]))] * 24
    dataset = DetectionDataset(samples, transform=build_transform(FLIP, train=True, seed=0))
    first, second = flips_seen_by_workers(dataset, seed=0)
    assert first != second  # without reseeding, both workers would repeat one sequence
    assert flips_seen_by_workers(dataset, seed=0) == (first, second)


def test_workers_zoom_with_opencv_after_the_main_process_did(tutorial_dataset):
    # OpenCV's thread pool and fork: calling cv2.setNumThreads in a forked worker
    # once hung here; warpAffine itself must keep working
    transform = build_transform(AugmentationConfig(scale_probability=1.0), train=True, seed=0)
    dataset = DetectionDataset.from_folder(tutorial_dataset, transform=transform)
    check_item(dataset[0], 64, 80)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=3, num_workers=2, collate_fn=collate_detections, timeout=60
    )
    assert sum(len(images) for images, _ in loader) == 6


def test_a_dataset_survives_pickling(tutorial_dataset):
    dataset = DetectionDataset.from_folder(tutorial_dataset, transform=build_transform(FLIP, True, seed=1))
    copy = pickle.loads(pickle.dumps(dataset))
    assert torch.equal(copy[2][0], dataset[2][0]) and copy.classes == dataset.classes


# --- splits and separate folders -------------------------------------------


def test_split_datasets_share_classes_and_only_train_is_augmented(tmp_path):
    from napari_faster_rcnn.core.data.synthetic import write_synthetic_dataset

    folder = write_synthetic_dataset(tmp_path / "s", n_images=10, seed=1, height=32, width=32)
    transform = build_transform(FLIP, train=True, seed=0)
    train, validation, test = split_datasets(folder, seed=4, train_transform=transform, cache=True)
    assert (len(train), len(validation), len(test)) == (8, 1, 1)
    names = [s.image.name for part in (train, validation, test) for s in part.samples]
    assert sorted(names) == [f"{i:03d}.png" for i in range(10)]
    assert train.classes == validation.classes == test.classes == list(SHAPE_CLASSES)
    assert train.transform is transform and validation.transform is None and test.transform is None
    assert validation.cached_images == 1 and int(validation[0][1]["image_id"]) == 0
    again = split_datasets(folder, seed=4)
    assert [s.image for s in again[1].samples] == [s.image for s in validation.samples]


def test_separate_folders_share_one_class_list(tmp_path):
    for folder, label in [("train", "cat"), ("val", "dog")]:
        write_image(tmp_path / folder / "a.png")
        save_annotation(tmp_path / folder / "a.json", Annotation([[0, 0, 5, 5]], [label]))
    classes = dataset_classes([tmp_path / "train", tmp_path / "val"])
    assert classes == ["cat", "dog"]
    validation = DetectionDataset.from_folder(tmp_path / "val", classes=classes)
    assert validation[0][1]["labels"].tolist() == [2]


# --- the model -------------------------------------------------------------


def test_collated_batches_train_a_torchvision_detector(tmp_path):
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_fpn

    write_image(tmp_path / "a.png", 64, 80)
    write_image(tmp_path / "b.png", 48, 64, seed=1)
    samples = [(tmp_path / "a.png", Annotation([[4, 4, 40, 30], [50, 20, 79, 63]], ["x", "y"])),
               (tmp_path / "b.png", None)]
    transform = build_transform(AugmentationConfig(), train=True, seed=0)
    dataset = DetectionDataset(samples, classes=["x", "y", "z"], transform=transform)
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, collate_fn=collate_detections)
    images, targets = next(iter(loader))
    assert isinstance(images, list) and isinstance(targets, list) and len(images) == 2

    torch.manual_seed(0)
    model = fasterrcnn_mobilenet_v3_large_fpn(
        weights=None, weights_backbone=None, num_classes=dataset.num_classes, min_size=64, max_size=96,
        rpn_pre_nms_top_n_train=64, rpn_post_nms_top_n_train=32, box_batch_size_per_image=32,  # fast
    )
    model.train()
    losses = model(images, targets)
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    assert all(torch.isfinite(value) for value in losses.values())
    sum(losses.values()).backward()


def test_16_bit_samples_are_scaled_by_their_percentiles_and_tiles_by_the_whole_image(tmp_path):
    rng = np.random.default_rng(3)
    base = rng.normal(100, 10, (40, 60))
    base[5:15, 5:15] += 2000
    for name, factor in (("dim", 1), ("bright", 4)):
        Image.fromarray(np.clip(base * factor, 0, 65535).astype(np.uint16)).save(tmp_path / f"{name}.png")
    labeled = Annotation([[5, 5, 15, 15]], ["a"])
    dataset = DetectionDataset([(tmp_path / "dim.png", labeled), (tmp_path / "bright.png", labeled)])
    assert dataset.normalization == "auto"
    dim, bright = dataset[0][0], dataset[1][0]
    torch.testing.assert_close(dim, bright, atol=2e-3, rtol=0)
    assert float(dim[:, 6:14, 6:14].mean()) > 0.9  # the object: not the 0.03 of /65535
    # a tile without the bright object is scaled as the whole image (as tiled prediction scales it)
    tile, _ = dataset.window_item(0, (30, 20, 60, 40))
    torch.testing.assert_close(tile, dim[:, 20:40, 30:60], atol=1e-6, rtol=0)


def test_the_data_module_applies_the_models_normalization(tmp_path):
    from types import SimpleNamespace

    from napari_faster_rcnn.core.data.synthetic import write_synthetic_dataset
    from napari_faster_rcnn.core.training.data_module import DetectionDataModule
    from napari_faster_rcnn.core.training.module import DetectorModule

    write_synthetic_dataset(tmp_path / "data", 4, seed=1, height=64, width=64)
    data = DetectionDataModule(tmp_path / "data", ratios=[0.5, 0.5], num_workers=0, tile_size=0,
                               cache=False)
    model = DetectorModule(config={"min_size": 64, "max_size": 64}, preset="cpu", classes=data.classes,
                           normalization="range:0,1000")
    data.trainer = SimpleNamespace(global_rank=0, lightning_module=model)
    data.setup("fit")
    assert model.config.normalization == "range:0,1000"
    assert data.train_dataset.normalization == data.val_dataset.normalization == "range:0,1000"
    assert float(data.val_dataset[0][0].max()) <= 255 / 1000 + 1e-6  # 8-bit values over 0..1000
