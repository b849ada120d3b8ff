"""Dataset statistics: the numbers against a direct computation, the transform against torchvision,
and folders with files that cannot be read."""

import json
import math
import statistics as pystats

import numpy as np
import pytest
import torch

from napari_faster_rcnn.core.data.annotations import Annotation, save_annotation
from napari_faster_rcnn.core.data.folders import DatasetError
from napari_faster_rcnn.core.data.synthetic import write_synthetic_dataset
from napari_faster_rcnn.core.progress import collect
from napari_faster_rcnn.core.statistics.folders import folder_statistics, iter_folder_statistics
from napari_faster_rcnn.core.statistics.measures import QUANTITIES, dataset_statistics, transformed_sizes
from tests.conftest import write_image

# three images: two classes in the first, none in the second, a box reaching outside the third
ITEMS = [
    ((100, 200), Annotation([[10, 20, 50, 60], [0, 0, 200, 100]], ["cat", "dog"])),
    ((50, 40), Annotation()),
    ((300, 120), Annotation([[5, 5, 25, 45], [100, 250, 130, 320], [1, 2, 3, 4]], ["cat", "cat", "bird"])),
]


def direct(items, min_size=800, max_size=1333):
    """Plain loops over boxes: what every number should be."""
    rows = []
    for (height, width), annotation in items:
        scale = min(min_size / min(height, width), max_size / max(height, width))
        new_height, new_width = math.floor(height * scale), math.floor(width * scale)
        for (x1, y1, x2, y2), label in zip(annotation.boxes.tolist(), annotation.labels):
            x1, x2 = min(max(x1, 0), width), min(max(x2, 0), width)
            y1, y2 = min(max(y1, 0), height), min(max(y2, 0), height)
            w, h = x2 - x1, y2 - y1
            tw, th = w * new_width / width, h * new_height / height
            rows.append({"class": label, "box_width": (w, tw), "box_height": (h, th), "box_area": (w * h, tw * th)})
    return rows


def test_numbers_match_a_direct_computation():
    stats = dataset_statistics(ITEMS, names=["a", "b", "c"])
    assert stats.names == ["a", "b", "c"] and stats.classes == ["cat", "dog", "bird"]
    assert stats.images == 3 and stats.boxes == 5
    assert stats.boxes_per_image.tolist() == [2, 0, 3]
    assert stats.images_without_boxes == 1
    assert stats.class_counts == {"cat": 3, "dog": 1, "bird": 1}
    assert stats.class_image_counts == {"cat": 2, "dog": 1, "bird": 1}
    assert stats.clipped_boxes == 1  # (100, 250, 130, 320) reaches below the 300-px image
    assert stats.values("image_height").tolist() == [100, 50, 300]
    # short side to 800 unless the long side would pass 1333
    assert stats.values("image_height", transformed=True).tolist() == [666, 1000, 1333]
    assert stats.values("image_width", transformed=True).tolist() == [1333, 800, 533]

    rows = direct(ITEMS)
    for quantity in ("box_width", "box_height", "box_area"):
        for transformed in (False, True):
            expected = [row[quantity][transformed] for row in rows]
            np.testing.assert_allclose(stats.values(quantity, transformed), expected, rtol=1e-12)
            cats = [row[quantity][transformed] for row in rows if row["class"] == "cat"]
            np.testing.assert_allclose(stats.values(quantity, transformed, "cat"), cats, rtol=1e-12)
    assert stats.values("boxes_per_image", classes="cat").tolist() == [1, 0, 2]
    assert stats.values("boxes_per_image", classes=["dog", "bird"]).tolist() == [1, 0, 1]

    summary = {(r.quantity, r.class_name, r.transformed): r for r in stats.summary()}
    for quantity in QUANTITIES:
        for transformed in (False, True):
            assert (quantity, None, transformed) in summary
    area = [row["box_area"][1] for row in rows]
    row = summary[("box_area", None, True)]
    assert row.count == 5
    assert row.minimum == pytest.approx(min(area)) and row.maximum == pytest.approx(max(area))
    assert row.median == pytest.approx(pystats.median(area)) and row.mean == pytest.approx(pystats.mean(area))
    per_image = summary[("boxes_per_image", None, False)]
    assert (per_image.minimum, per_image.median, per_image.mean, per_image.maximum) == (0, 2, 5 / 3, 3)
    dog = summary[("box_width", "dog", False)]
    assert dog.count == 1 and dog.minimum == dog.maximum == 200
    assert ("image_height", "cat", False) not in summary  # image sizes are not split by class


def test_known_classes_come_first_and_count_without_boxes():
    stats = dataset_statistics(ITEMS, classes=["dog", "fish"])
    assert stats.classes == ["dog", "fish", "cat", "bird"]
    assert stats.class_counts["fish"] == 0 and stats.class_image_counts["fish"] == 0
    fish = [r for r in stats.summary() if r.class_name == "fish" and r.quantity == "box_area"]
    assert all(r.count == 0 and math.isnan(r.median) for r in fish)
    data = json.loads(json.dumps(stats.to_dict()))  # plain JSON: no NaN, no numpy types
    assert data["per_class"]["fish"]["box_area"]["before"] == {
        "count": 0, "minimum": None, "median": None, "mean": None, "maximum": None}
    assert data["classes"]["cat"] == {"boxes": 3, "images": 2}
    assert data["summary"]["box_width"]["before"]["maximum"] == 200
    assert {"images", "boxes", "min_size", "max_size", "images_without_boxes", "classes", "summary", "per_class",
            "skipped"} <= set(data)


def test_no_images_and_no_boxes():
    stats = dataset_statistics([])
    assert stats.images == 0 and stats.boxes == 0 and stats.classes == []
    assert all(math.isnan(row.mean) for row in stats.summary())
    empty = dataset_statistics([((10, 10), Annotation())])
    assert empty.images_without_boxes == 1 and empty.values("box_area").shape == (0,)


def test_bad_sizes_and_settings_say_why():
    with pytest.raises(ValueError, match="must be positive"):
        dataset_statistics([((0, 10), Annotation())])
    with pytest.raises(ValueError, match="min_size and max_size must be positive"):
        dataset_statistics(ITEMS, min_size=0)
    with pytest.raises(ValueError, match="unknown class 'horse'"):
        dataset_statistics(ITEMS).values("box_area", classes="horse")
    with pytest.raises(ValueError, match="unknown quantity"):
        dataset_statistics(ITEMS).values("aspect")


def test_with_transform_changes_only_the_transformed_values():
    stats = dataset_statistics(ITEMS)
    smaller = stats.with_transform(400, 600)
    assert smaller.min_size == 400 and smaller.max_size == 600
    np.testing.assert_array_equal(smaller.values("box_area"), stats.values("box_area"))
    assert smaller.values("image_width", True).tolist() == [600, 400, 240]
    np.testing.assert_allclose(smaller.values("box_width", True), [r["box_width"][1] for r in direct(ITEMS, 400, 600)])


# --- torchvision's transform --------------------------------------------------

# (97, 120): 800 / 97 * 97 is 799.99..., so torchvision makes the short side 799, not 800
SIZES = [(97, 120), (120, 97), (194, 300), (49, 800), (768, 1024), (1000, 3000), (33, 100), (800, 1333), (64, 64)]


@pytest.mark.parametrize("min_size,max_size", [(800, 1333), (600, 1000), (512, 512)])
def test_transform_matches_torchvision(min_size, max_size):
    from torchvision.models.detection.transform import GeneralizedRCNNTransform

    transform = GeneralizedRCNNTransform(min_size, max_size, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]).eval()
    rng = np.random.default_rng(0)
    items = []
    for height, width in SIZES:
        x1, y1 = rng.uniform(0, width * 0.5, 3), rng.uniform(0, height * 0.5, 3)
        boxes = np.stack([x1, y1, x1 + rng.uniform(1, width * 0.5, 3), y1 + rng.uniform(1, height * 0.5, 3)], 1)
        items.append(((height, width), Annotation(boxes, ["a", "b", "a"])))
    stats = dataset_statistics(items, min_size, max_size)
    for index, ((height, width), annotation) in enumerate(items):
        target = {"boxes": torch.as_tensor(annotation.boxes, dtype=torch.float32), "labels": torch.tensor([1, 2, 1])}
        with torch.no_grad():
            image_list, targets = transform([torch.zeros(3, height, width)], [target])
        resized = image_list.image_sizes[0]
        assert (stats.transformed_height[index], stats.transformed_width[index]) == tuple(resized), (height, width)
        assert (stats.padded_height[index], stats.padded_width[index]) == tuple(image_list.tensors.shape[-2:])
        boxes = targets[0]["boxes"].double().numpy()
        mask = stats.box_image == index
        np.testing.assert_allclose(stats.transformed_box_width[mask], boxes[:, 2] - boxes[:, 0], rtol=1e-5)
        np.testing.assert_allclose(stats.transformed_box_height[mask], boxes[:, 3] - boxes[:, 1], rtol=1e-5)
    assert transformed_sizes(97, 120)[0] == 799


# --- folders ------------------------------------------------------------------


def test_folder_statistics_equal_those_of_the_files_read_directly(tutorial_dataset):
    from napari_faster_rcnn.core.data.annotations import load_annotation
    from napari_faster_rcnn.core.data.images import read_image

    stats = folder_statistics(tutorial_dataset, 600, 1000)
    paths = sorted((tutorial_dataset / "input").iterdir())
    items = [(read_image(p).shape[:2], load_annotation(tutorial_dataset / "target" / f"{p.stem}.pt")) for p in paths]
    expected = dataset_statistics(items, 600, 1000)
    assert stats.names == [p.stem for p in paths] and stats.skipped == []
    assert stats.classes == expected.classes and stats.class_counts == expected.class_counts
    for quantity in QUANTITIES:
        for transformed in (False, True):
            np.testing.assert_array_equal(stats.values(quantity, transformed), expected.values(quantity, transformed))


def test_unreadable_files_are_skipped_with_their_reasons(tmp_path):
    folder = write_synthetic_dataset(tmp_path / "d", n_images=5, seed=1, height=48, width=64)
    (folder / "target" / "001.pt").write_bytes(b"not a torch file")
    (folder / "input" / "002.png").write_bytes(b"not an image")
    (folder / "target" / "003.pt").unlink()  # not labeled yet: an image without boxes
    save_annotation(folder / "target" / "orphan.json", Annotation())
    write_image(folder / "input" / "005.png", 30, 20)
    save_annotation(folder / "target" / "005.json", Annotation([[-5, 0, 10, 40]], ["square"]))  # reaches outside

    steps, stats = collect(iter_folder_statistics(folder, report_every=2))
    assert steps[0] == (0, 6) and steps[-1] == (6, 6)
    assert [done for done, _ in steps] == sorted(done for done, _ in steps)

    assert stats.names == ["000", "003", "004", "005"]
    reasons = {path.rsplit("/", 1)[-1]: reason for path, reason in stats.skipped}
    assert "not a readable PyTorch file" in reasons["001.pt"]
    assert reasons["001.png"] == "skipped with its unreadable annotation"
    assert "not a readable image" in reasons["002.png"]
    assert reasons["orphan.json"] == "no image with this name"
    assert stats.unlabeled_images == 1 and stats.boxes_per_image[1] == 0
    assert stats.clipped_boxes == 1
    assert stats.image_height[-1] == 30 and stats.box_width[-1] == 10 and stats.box_height[-1] == 30


def test_not_a_dataset_folder(tmp_path):
    with pytest.raises(DatasetError, match="not a folder"):
        folder_statistics(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images"):
        folder_statistics(tmp_path / "empty")
