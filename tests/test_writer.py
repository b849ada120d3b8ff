"""The writer, driven through a real viewer's save."""

import numpy as np
import pytest

from napari_faster_rcnn.core.data.annotations import Annotation, load_annotation
from napari_faster_rcnn.core.data.boxes import boxes_to_rectangles, clip_boxes
from napari_faster_rcnn.core.data.images import image_size
from napari_faster_rcnn.layers import conventions
from tests.conftest import write_image

PLUGIN = "napari-faster-rcnn"


def save_layer(viewer, layer, path):
    viewer.layers.selection = {layer}
    return viewer.layers.save(str(path), selected=True, plugin=PLUGIN)


@pytest.mark.parametrize("suffix", [".pt", ".json"])
def test_single_image_boxes_save_and_reopen(make_napari_viewer, tmp_path, suffix):
    write_image(tmp_path / "a.png", 40, 60)
    viewer = make_napari_viewer()
    viewer.open(tmp_path / "a.png", plugin=PLUGIN)
    shapes = viewer.layers[1]
    shapes.feature_defaults = {"label": "cell"}
    shapes.add_rectangles(boxes_to_rectangles(np.array([[5.0, 6.0, 20.0, 30.0]])))
    # a rectangle drawn past the image border is cut at the border
    shapes.feature_defaults = {"label": "edge"}
    shapes.add_rectangles(boxes_to_rectangles(np.array([[50.0, -4.0, 70.0, 10.0]])))
    written = save_layer(viewer, shapes, tmp_path / f"a{suffix}")
    assert written == [str(tmp_path / f"a{suffix}")]
    annotation = load_annotation(tmp_path / f"a{suffix}")
    np.testing.assert_allclose(annotation.boxes, [[5, 6, 20, 30], [50, 0, 60, 10]], atol=1e-4)
    assert annotation.labels == ["cell", "edge"]


def test_stack_saves_one_file_per_image_into_the_dataset(make_napari_viewer, tutorial_dataset):
    viewer = make_napari_viewer()
    viewer.open(tutorial_dataset, plugin=PLUGIN)
    shapes = viewer.layers[1]
    index = np.array([int(round(v[0, 0])) for v in shapes.data])
    assert (index == 2).any()
    # delete every box of image 2, add one to image 5
    shapes.selected_data = set(np.flatnonzero(index == 2).tolist())
    shapes.remove_selected()
    shapes.feature_defaults = {"label": "square"}
    shapes.add_rectangles(boxes_to_rectangles(np.array([[1.0, 2.0, 11.0, 12.0]]), image_index=5))
    written = save_layer(viewer, shapes, tutorial_dataset / "target" / "anything.pt")
    assert sorted(written) == [str(tutorial_dataset / "target" / f"{i:03d}.pt") for i in range(6)]
    assert not (tutorial_dataset / "target" / "anything.pt").exists()
    assert len(load_annotation(tutorial_dataset / "target" / "002.pt")) == 0  # empty, not stale
    last = load_annotation(tutorial_dataset / "target" / "005.pt")
    np.testing.assert_allclose(last.boxes[-1], [1, 2, 11, 12], atol=1e-4)
    assert last.labels[-1] == "square"


def test_stack_saved_as_json_into_a_new_folder(make_napari_viewer, tutorial_dataset, tmp_path):
    viewer = make_napari_viewer()
    viewer.open(tutorial_dataset, plugin=PLUGIN)
    out = tmp_path / "exported"
    from napari_faster_rcnn._writer import write_boxes

    data, meta, _ = viewer.layers[1].as_layer_data_tuple()
    written = write_boxes(str(out), data, meta)
    assert sorted(p.rsplit("/", 1)[1] for p in written) == [f"{i:03d}.pt" for i in range(6)]
    written = save_layer(viewer, viewer.layers[1], tutorial_dataset / "target" / "x.json")
    assert all(p.endswith(".json") for p in written) and len(written) == 6
    for i in range(6):
        assert load_annotation(out / f"{i:03d}.pt") == load_annotation(tutorial_dataset / "target" / f"{i:03d}.json")


def make_tutorial_like_dataset(folder):
    """A tutorial-format dataset with boxes reaching outside their images, as in the heads data."""
    rng = np.random.default_rng(7)
    for i in range(5):
        height, width = 50 + 10 * i, 80 - 5 * i
        write_image(folder / "input" / f"{i:03d}.jpg", height, width, seed=i)
        n = i  # image 0 has no boxes
        x1 = rng.uniform(-8, width - 10, n)
        y1 = rng.uniform(-8, height - 10, n)
        boxes = [np.array([a, b, a + rng.uniform(3, 30), b + rng.uniform(3, 30)]) for a, b in zip(x1, y1)]
        # numpy arrays and a list of arrays, as the tutorial wrote them
        import torch

        torch.save({"labels": np.array(["head"] * n), "boxes": boxes}, folder / "target" / f"{i:03d}.pt")


def test_open_change_nothing_save_reopen_gives_the_same_boxes(make_napari_viewer, tmp_path):
    folder = tmp_path / "heads"
    (folder / "target").mkdir(parents=True)
    make_tutorial_like_dataset(folder)
    originals = [load_annotation(folder / "target" / f"{i:03d}.pt") for i in range(5)]
    viewer = make_napari_viewer()
    viewer.open(folder, plugin=PLUGIN)
    first = viewer.layers[1]
    save_layer(viewer, first, folder / "target" / "x.pt")
    viewer.open(folder, plugin=PLUGIN)
    second = viewer.layers[3]
    assert len(first.data) == len(second.data) == sum(len(a) for a in originals)
    for a, b in zip(first.data, second.data):
        np.testing.assert_allclose(a, b, atol=1e-3)
    assert list(first.features["label"]) == list(second.features["label"])
    for i, original in enumerate(originals):
        saved = load_annotation(folder / "target" / f"{i:03d}.pt")
        size = image_size(folder / "input" / f"{i:03d}.jpg")
        np.testing.assert_allclose(saved.boxes, clip_boxes(original.boxes, *size), atol=1e-3)
        assert saved.labels == original.labels


def test_layer_without_our_metadata_still_saves(tmp_path):
    from napari_faster_rcnn._writer import write_boxes

    data = list(boxes_to_rectangles(np.array([[1.0, 1.0, 4.0, 4.0], [2.0, 2.0, 3.0, 3.0]]), image_index=[0, 2]))
    written = write_boxes(str(tmp_path / "any.json"), data, {"ndim": 3, "metadata": {}, "features": None})
    assert [p.rsplit("/", 1)[1] for p in written] == ["000.json", "001.json", "002.json"]
    assert load_annotation(tmp_path / "001.json") == Annotation(classes=["object"])
    assert load_annotation(tmp_path / "002.json").labels == ["object"]


def test_shapes_layer_data_and_back_round_trip():
    annotations = [Annotation([[0, 0, 5, 5]], ["a"]), Annotation(), Annotation([[1, 1, 2, 3], [2, 2, 4, 4]], ["b", "a"])]
    data, kwargs, kind = conventions.shapes_layer_data(annotations, stacked=True, name="x", classes=["a", "b"])
    assert kind == "shapes" and kwargs["metadata"][conventions.CLASSES] == ["a", "b"]
    back = conventions.annotations_from_shapes(data, kwargs["features"], kwargs["metadata"], n_images=3)
    for before, after in zip(annotations, back):
        np.testing.assert_allclose(after.boxes, before.boxes)
        assert after.labels == before.labels
