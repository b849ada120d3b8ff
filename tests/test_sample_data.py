import numpy as np

from napari_faster_rcnn.core.data.boxes import rectangles_to_boxes
from napari_faster_rcnn.core.data.synthetic import (
    make_synthetic_dataset,
    make_synthetic_sample,
    write_synthetic_dataset,
)


def test_synthetic_sample_data_in_the_viewer(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-faster-rcnn", "synthetic-shapes")
    image, shapes = viewer.layers
    assert image.data.shape == (12, 256, 256, 3) and image.rgb
    assert shapes.ndim == 3 and len(shapes.data) >= 12 * 2
    assert set(shapes.features["label"]) == {"circle", "square", "triangle"}


def test_astronaut_sample_has_labeled_boxes(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-faster-rcnn", "astronaut")
    image, shapes = viewer.layers
    assert image.data.shape == (512, 512, 3)
    assert sorted(shapes.features["label"]) == ["flag", "head", "helmet", "patch", "rocket"]
    boxes, _ = rectangles_to_boxes(shapes.data)
    assert boxes.min() >= 0 and boxes.max() <= 512


def test_synthetic_data_is_deterministic_and_boxes_fit_the_shapes():
    first = make_synthetic_dataset(4, seed=5)
    again = make_synthetic_dataset(6, seed=5)[:4]  # image i does not depend on the dataset size
    other = make_synthetic_dataset(4, seed=6)
    for (a, ann_a), (b, ann_b) in zip(first, again):
        np.testing.assert_array_equal(a, b)
        assert ann_a == ann_b
    assert not all(np.array_equal(a, b) for (a, _), (b, _) in zip(first, other))
    image, annotation = make_synthetic_sample(1, 0, height=96, width=96, objects=(3, 3))
    assert len(annotation) == 3
    for x1, y1, x2, y2 in annotation.boxes.astype(int):
        # the box is tight: the shape reaches every edge of its box
        inside = image[y1:y2, x1:x2].astype(int)
        assert inside.shape[0] > 0 and inside.shape[1] > 0


def test_write_synthetic_dataset(tmp_path):
    folder = write_synthetic_dataset(tmp_path / "d", 3, seed=0)
    assert sorted(p.name for p in (folder / "input").iterdir()) == ["000.png", "001.png", "002.png"]
    assert sorted(p.name for p in (folder / "target").iterdir()) == ["000.pt", "001.pt", "002.pt"]
