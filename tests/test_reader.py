"""The reader, driven through a real viewer."""

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from napari_faster_rcnn._reader import get_reader
from napari_faster_rcnn.core.data.annotations import Annotation, load_annotation, save_annotation
from napari_faster_rcnn.core.data.boxes import rectangles_to_boxes
from napari_faster_rcnn.layers import conventions
from tests.conftest import write_image
from tests.large_images import HUGE_SIDE, lower_pillow_limit, write_blank_png

PLUGIN = "napari-faster-rcnn"


def layer_boxes(layer):
    boxes, index = rectangles_to_boxes(layer.data)
    return boxes, index


def test_image_with_annotation_beside_it(make_napari_viewer, tmp_path):
    pixels = write_image(tmp_path / "cells.png", 40, 60)
    save_annotation(tmp_path / "cells.pt", Annotation([[1.5, 2, 30, 20], [0, 0, 60, 40]], ["cell", "debris"]))
    viewer = make_napari_viewer()
    viewer.open(tmp_path / "cells.png", plugin=PLUGIN)
    image, shapes = viewer.layers
    np.testing.assert_array_equal(image.data, pixels)
    assert image.rgb
    boxes, index = layer_boxes(shapes)
    np.testing.assert_allclose(boxes, [[1.5, 2, 30, 20], [0, 0, 60, 40]], atol=1e-4)
    assert index is None
    assert list(shapes.features["label"]) == ["cell", "debris"]
    assert shapes.metadata[conventions.CLASSES] == ["cell", "debris"]
    assert shapes.metadata[conventions.ANNOTATION_FILES] == [str(tmp_path / "cells.pt")]
    # each class has its own colour, shown on the box edge
    assert not np.allclose(shapes.edge_color[0], shapes.edge_color[1])


def test_image_in_input_finds_its_annotation_in_target(make_napari_viewer, tutorial_dataset):
    viewer = make_napari_viewer()
    viewer.open(tutorial_dataset / "input" / "002.png", plugin=PLUGIN)
    expected = load_annotation(tutorial_dataset / "target" / "002.pt")
    boxes, _ = layer_boxes(viewer.layers[1])
    np.testing.assert_allclose(boxes, expected.boxes, atol=1e-4)
    assert list(viewer.layers[1].features["label"]) == expected.labels


def test_image_without_annotation_gets_an_empty_box_layer(make_napari_viewer, tmp_path):
    write_image(tmp_path / "input" / "new.png", 30, 30)
    viewer = make_napari_viewer()
    viewer.open(tmp_path / "input" / "new.png", plugin=PLUGIN)
    image, shapes = viewer.layers
    assert len(shapes.data) == 0 and shapes.ndim == 2
    assert "label" in shapes.features
    assert shapes.metadata[conventions.ANNOTATION_FILES] == [str(tmp_path / "target" / "new.pt")]
    # ready for labeling: a rectangle drawn now gets a label
    shapes.add_rectangles(np.array([[2, 2], [10, 12]]))
    assert len(shapes.features) == 1


@pytest.mark.parametrize("mode", ["RGBA", "L", "I;16"])
def test_gray_and_rgba_images_are_made_rgb(make_napari_viewer, tmp_path, mode):
    pixels = write_image(tmp_path / f"x.{'tif' if mode == 'I;16' else 'png'}", 20, 30, mode=mode)
    viewer = make_napari_viewer()
    viewer.open(next(tmp_path.iterdir()), plugin=PLUGIN)
    data = viewer.layers[0].data
    assert data.shape == (20, 30, 3)
    expected = pixels[..., :3] if mode == "RGBA" else np.repeat(pixels[..., None], 3, axis=2)
    np.testing.assert_array_equal(data, expected)


def test_annotation_file_opens_with_its_image(make_napari_viewer, tutorial_dataset):
    viewer = make_napari_viewer()
    viewer.open(tutorial_dataset / "target" / "001.pt", plugin=PLUGIN)
    assert [layer.name for layer in viewer.layers] == ["001", "001 boxes"]
    assert viewer.layers[0].data.shape == (64, 80, 3)


@pytest.mark.parametrize("image_reader", [PLUGIN, "napari"])
def test_predictions_of_an_open_image_add_their_boxes_only(make_napari_viewer, tutorial_dataset, image_reader,
                                                          monkeypatch):
    """Predictions written beside the images (``predict ... --out predictions``) opened over their open
    image: one predictions layer on top, no second copy of the image hiding the labels below it.
    Opened alone, they come with their image."""
    predictions = tutorial_dataset / "predictions"
    predictions.mkdir()
    save_annotation(predictions / "001.pt", Annotation([[2, 3, 20, 30]], ["circle"], scores=[0.9]))
    viewer = make_napari_viewer()
    viewer.open(tutorial_dataset / "input" / "001.png", plugin=image_reader)
    before = [layer.name for layer in viewer.layers]
    from napari_faster_rcnn.layers import reading

    with monkeypatch.context() as patch:  # the image shown already is not read again, only its header
        patch.setattr(reading, "read_image", lambda *args, **kwargs: pytest.fail("the open image was decoded"))
        viewer.open(predictions / "001.pt", plugin=PLUGIN)
    assert [layer.name for layer in viewer.layers] == [*before, "001 predictions"]
    assert sum(layer.data.shape == (64, 80, 3) for layer in viewer.layers if layer.ndim == 2 and
               getattr(layer, "rgb", False)) == 1
    assert list(viewer.layers[-1].features["score"]) == [0.9]
    alone = make_napari_viewer()
    alone.open(predictions / "001.pt", plugin=PLUGIN)
    assert [layer.name for layer in alone.layers] == ["001", "001 predictions"]


def test_json_annotation_without_image(make_napari_viewer, tmp_path):
    path = tmp_path / "lonely.json"
    path.write_text(json.dumps({"boxes": [[1, 1, 5, 5]], "labels": ["x"], "scores": [0.3]}))
    viewer = make_napari_viewer()
    viewer.open(path, plugin=PLUGIN)
    (shapes,) = viewer.layers
    assert shapes.name == "lonely predictions"
    assert list(shapes.features["score"]) == [0.3]


def test_input_target_folder_is_one_lazy_stack(make_napari_viewer, tutorial_dataset):
    import dask.array as da

    viewer = make_napari_viewer()
    viewer.open(tutorial_dataset, plugin=PLUGIN)
    image, shapes = viewer.layers
    assert isinstance(image.data, da.Array)
    assert image.data.shape == (6, 64, 80, 3)
    assert shapes.ndim == 3
    boxes, index = layer_boxes(shapes)
    for i in range(6):
        expected = load_annotation(tutorial_dataset / "target" / f"{i:03d}.pt")
        np.testing.assert_allclose(boxes[index == i], expected.boxes, atol=1e-4)
        assert list(shapes.features["label"][index == i]) == expected.labels
    assert shapes.metadata[conventions.SOURCE_IMAGES][4] == str(tutorial_dataset / "input" / "004.png")
    assert image.metadata[conventions.SOURCE_IMAGES] == shapes.metadata[conventions.SOURCE_IMAGES]
    assert set(shapes.metadata[conventions.CLASSES]) <= {"circle", "square", "triangle"}
    # the dims slider walks through the images
    viewer.dims.set_current_step(0, 4)
    assert int(shapes._data_view._displayed.sum()) == int((index == 4).sum())


def test_images_of_different_sizes_are_padded_bottom_right(make_napari_viewer, side_by_side_dataset):
    from PIL import Image

    viewer = make_napari_viewer()
    viewer.open(side_by_side_dataset, plugin=PLUGIN)
    image, shapes = viewer.layers
    stack = np.asarray(image.data)
    assert stack.shape == (3, 50, 60, 3)
    b = np.asarray(Image.open(side_by_side_dataset / "b.jpg"))
    np.testing.assert_array_equal(stack[1, :50, :30], b)
    assert not stack[1, :, 30:].any()
    assert image.metadata[conventions.IMAGE_SIZES] == [[40, 60], [50, 30], [20, 20]]
    # boxes stay in each image's own coordinates; the unlabeled image has none
    boxes, index = layer_boxes(shapes)
    np.testing.assert_allclose(boxes[index == 1], [[0, 0, 29.5, 49.5]], atol=1e-4)
    assert (index == 2).sum() == 0
    assert shapes.metadata[conventions.ANNOTATION_FILES][2] == str(side_by_side_dataset / "c.json")


def test_predictions_folder_has_scores(make_napari_viewer, tmp_path):
    for name in ["a", "b"]:
        write_image(tmp_path / "test" / f"{name}.png", 20, 20)
        save_annotation(tmp_path / "predictions" / f"{name}.pt", Annotation([[1, 1, 9, 9]], ["1"], scores=[0.8]))
    viewer = make_napari_viewer()
    viewer.open(tmp_path / "predictions", plugin=PLUGIN)
    image, shapes = viewer.layers
    assert image.data.shape == (2, 20, 20, 3)
    assert shapes.metadata[conventions.LAYER_ROLE] == conventions.PREDICTIONS
    assert list(shapes.features["score"]) == [0.8, 0.8]


def test_folder_with_unreadable_files_opens_the_rest_and_says_why(make_napari_viewer, tutorial_dataset, caplog):
    (tutorial_dataset / "input" / "001.png").write_bytes(b"not a png")
    (tutorial_dataset / "target" / "003.pt").write_bytes(b"\x00" * 10)
    viewer = make_napari_viewer()
    with caplog.at_level("WARNING"):
        viewer.open(tutorial_dataset, plugin=PLUGIN)
    image, shapes = viewer.layers
    assert image.data.shape[0] == 4
    assert [p.rsplit("/", 1)[1] for p in shapes.metadata[conventions.SOURCE_IMAGES]] == ["000.png", "002.png", "004.png", "005.png"]
    message = caplog.text
    assert "001.png: not a readable image" in message
    assert "003.pt: not a readable PyTorch file" in message
    # the unreadable annotation is not in the save list, so a save cannot overwrite it
    assert str(tutorial_dataset / "target" / "003.pt") not in shapes.metadata[conventions.ANNOTATION_FILES]


def test_what_is_not_ours_is_left_to_napari(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    torch.save({"state_dict": {"w": torch.zeros(2)}}, tmp_path / "model.pt")
    (tmp_path / "coco.json").write_text(json.dumps({"images": [], "annotations": []}))
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "empty").mkdir()
    for name in ["notes.txt", "model.pt", "coco.json", "list.json", "empty"]:
        assert get_reader(str(tmp_path / name)) is None, name
    assert get_reader([str(tmp_path / "notes.txt"), str(tmp_path / "model.pt")]) is None


def test_corrupt_annotation_dropped_on_its_own_raises_a_clear_error(tmp_path):
    path = tmp_path / "broken.pt"
    path.write_bytes(b"PK\x03\x04 truncated zip")
    reader = get_reader(str(path))
    assert reader is not None  # ours, even if damaged: the user sees why it fails
    with pytest.raises(ValueError, match="broken.pt: not a readable PyTorch file"):
        reader(str(path))


def test_numpy_1x_and_malicious_files_in_a_folder(make_napari_viewer, tmp_path):
    """Old numpy pickles open; a pickle that would run code is skipped and runs nothing."""
    from tests.core.data.test_annotations import RunsCode, torch_save_as_numpy1

    folder = tmp_path / "mixed"
    for name in ["a", "b", "c"]:
        write_image(folder / "input" / f"{name}.png", 30, 40)
    (folder / "target").mkdir()
    torch_save_as_numpy1(
        folder / "target" / "a.pt", {"labels": np.array(["head"]), "boxes": [np.array([1.0, 2.0, 11.0, 12.0])]}
    )
    torch_save_as_numpy1(folder / "target" / "b.pt", {"labels": np.array([], dtype=float), "boxes": []})
    marker = tmp_path / "pwned"
    torch.save({"boxes": [], "labels": RunsCode(marker)}, folder / "target" / "c.pt")
    viewer = make_napari_viewer()
    viewer.open(folder, plugin=PLUGIN)
    image, shapes = viewer.layers
    assert not marker.exists()
    assert image.data.shape[0] == 2  # c.png is skipped with its refused annotation
    boxes, index = layer_boxes(shapes)
    np.testing.assert_allclose(boxes, [[1, 2, 11, 12]], atol=1e-4)
    assert list(shapes.features["label"]) == ["head"]
    with pytest.raises(ValueError, match="c.pt: refused to load"):
        viewer.open(folder / "target" / "c.pt", plugin=PLUGIN)
    assert not marker.exists()


# --- huge images and stacks -----------------------------------------------------


def test_a_folder_with_an_image_above_pillows_limit_opens_whole(tmp_path):
    folder = tmp_path / "slides"
    write_blank_png(folder / "huge.png")
    write_image(folder / "small.png", 40, 60)
    save_annotation(folder / "huge.json", Annotation([[100, 200, 1100, 1700]], ["cell"]))
    (image_data, image_kwargs, _), (_, shapes_kwargs, _) = get_reader(str(folder))(str(folder))
    assert image_kwargs["multiscale"]  # above LARGE_IMAGE_SIDE: levels read by region, lazy
    assert image_data[0].shape == (2, HUGE_SIDE, HUGE_SIDE, 3)  # nothing decoded here
    assert shapes_kwargs["metadata"][conventions.IMAGE_SIZES] == [[HUGE_SIDE, HUGE_SIDE], [40, 60]]


def test_the_slices_of_images_above_pillows_limit_show_their_pixels(tutorial_dataset, monkeypatch):
    expected = np.asarray(Image.open(tutorial_dataset / "input" / "002.png").convert("RGB"))
    lower_pillow_limit(monkeypatch)  # the 64 x 80 images are above it
    (image_data, _, _), _ = get_reader(str(tutorial_dataset))(str(tutorial_dataset))
    np.testing.assert_array_equal(np.asarray(image_data[2]), expected)


def test_an_rgb_stacks_pages_in_a_folder_are_its_planes_and_the_viewer_says_so(tmp_path, monkeypatch):
    import napari.utils.notifications

    shown = []
    monkeypatch.setattr(napari.utils.notifications, "show_warning", shown.append)
    monkeypatch.setattr(napari.utils.notifications, "show_info", shown.append)
    folder = tmp_path / "stacks"
    pages = np.random.default_rng(0).integers(0, 256, (4, 40, 60, 3), dtype=np.uint8)
    folder.mkdir()
    tifffile.imwrite(folder / "cells.tif", pages, photometric="rgb")
    flat = write_image(folder / "flat.png", 40, 60)
    (image_data, image_kwargs, _), (_, boxes, _) = get_reader(str(folder))(str(folder))
    assert image_data.shape == (5, 40, 60, 3) and image_kwargs["rgb"]
    np.testing.assert_array_equal(np.asarray(image_data[:4]), pages)  # every page, not the first one
    np.testing.assert_array_equal(np.asarray(image_data[4]), flat)
    assert [Path(p).name for p in boxes["metadata"][conventions.SOURCE_IMAGES]] == ["cells.tif"] * 4 + ["flat.png"]
    assert boxes["metadata"][conventions.SOURCE_PLANES] == [[0], [1], [2], [3], None]
    assert shown == ["stacks: 5 pages; the planes of 1 stack(s) are pages of the folder, each stack saved to its one "
                     "file: cells.tif: pages 0 to 3 (4 planes)"]
    shown.clear()
    # opened alone, the stack is a stack (issue 13): all its pages, lazily, and no warning
    (single, options, _), (_, box_options, _) = get_reader(str(folder / "cells.tif"))(str(folder / "cells.tif"))
    assert single.shape == (4, 40, 60, 3) and options["rgb"]
    np.testing.assert_array_equal(np.asarray(single), pages)
    assert box_options["ndim"] == 3
    assert shown == []
