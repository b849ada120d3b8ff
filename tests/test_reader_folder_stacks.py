"""A dataset folder mixing 2-D images and stacks (issue 13): each stack opens as its own layers,
paged plane by plane and saved to its one file; the folder's layers hold its 2-D images."""

import json

import numpy as np
import tifffile

from napari_faster_rcnn.core.data.annotations import Annotation, load_annotation, save_annotation
from napari_faster_rcnn.core.data.boxes import boxes_to_rectangles
from napari_faster_rcnn.layers import conventions, stack_labeling
from tests.conftest import write_image

PLUGIN = "napari-faster-rcnn"


def mixed_folder(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    pngs = {name: write_image(folder / f"{name}.png", 32, 32, seed=seed) for seed, name in enumerate(("a", "b"))}
    movie = np.random.default_rng(3).integers(0, 4096, (5, 32, 32), dtype=np.uint16)
    tifffile.imwrite(folder / "movie.tif", movie, photometric="minisblack")
    save_annotation(folder / "a.json", Annotation(np.array([[2.0, 3, 12, 14]]), ["cell"]))
    save_annotation(folder / "movie.pt", Annotation(np.array([[4.0, 4, 10, 9]]), ["cell"], planes=np.array([[1]]),
                                                    labeled_planes=np.array([[1]])))
    return folder, pngs, movie


def by_name(viewer):
    return {layer.name: layer for layer in viewer.layers}


def lead(plane, box):
    (rectangle,) = boxes_to_rectangles(np.array([box], dtype=float))
    return np.concatenate([np.full((4, 1), float(plane)), rectangle], axis=1)


def test_a_stack_in_a_folder_is_its_own_stack_layers_paged_by_plane_and_saved_to_its_file(make_napari_viewer, tmp_path,
                                                                                          monkeypatch):
    import napari.utils.notifications

    said = []
    monkeypatch.setattr(napari.utils.notifications, "show_info", said.append)
    monkeypatch.setattr(napari.utils.notifications, "show_warning", said.append)
    folder, pngs, movie = mixed_folder(tmp_path)
    viewer = make_napari_viewer()
    viewer.open(str(folder), plugin=PLUGIN)
    layers = by_name(viewer)
    assert set(layers) == {"movie", "movie boxes", "mixed", "mixed boxes"}
    assert viewer.layers[-1] is layers["mixed boxes"]  # the folder's box layer on top, as without stacks
    assert said == ["mixed: 1 stack(s) opened as their own image and box layers, paged plane by plane by the slider "
                    "and saved to their own file: movie.tif (5 planes) (one slider for all, the folder's images at 0 to 1: "
                    "hide the layers above a stack to see its planes there)"]
    # the folder's layers: its two 2-D images only, at their own pixels
    folder_image, folder_boxes = layers["mixed"], layers["mixed boxes"]
    assert [p and p.rsplit("/", 1)[-1] for p in folder_boxes.metadata[conventions.SOURCE_IMAGES]] == ["a.png", "b.png"]
    np.testing.assert_array_equal(np.asarray(folder_image.data[1]), pngs["b"])
    # the stack: every plane, paged into its box layer
    stack_image, stack_boxes = layers["movie"], layers["movie boxes"]
    assert stack_image.data.shape == (5, 32, 32) and stack_boxes.metadata[conventions.PLANE_DIMS] == 1
    viewer.dims.set_current_step(0, 3)
    np.testing.assert_array_equal(np.asarray(stack_image.data[3]), movie[3])
    assert stack_boxes.nshapes == 0
    viewer.dims.set_current_step(0, 1)
    assert list(stack_boxes.features["label"]) == ["cell"]

    # a box put on plane 3 of the stack and one on b.png, then both layers saved
    viewer.dims.set_current_step(0, 3)
    stack_boxes.add_rectangles([lead(3, [5, 6, 20, 22])])
    folder_boxes.add_rectangles([lead(1, [1, 2, 9, 8])])
    viewer.dims.set_current_step(0, 0)  # leaves plane 3 (its box into the stack's store)
    viewer.layers.selection = {stack_boxes}
    assert viewer.layers.save(str(folder / "movie.pt"), selected=True, plugin=PLUGIN) == [str(folder / "movie.pt")]
    viewer.layers.selection = {folder_boxes}
    written = viewer.layers.save(str(folder / "boxes.json"), selected=True, plugin=PLUGIN)
    assert sorted(written) == [str(folder / "a.json"), str(folder / "b.json")]

    saved = load_annotation(folder / "movie.pt")
    assert saved.planes.tolist() == [[1], [3]] and saved.labels == ["cell", "cell"]
    np.testing.assert_allclose(saved.boxes, [[4, 4, 10, 9], [5, 6, 20, 22]])
    assert saved.labeled_planes.tolist() == [[1], [3]]  # planes 0, 2 and 4 stay unlabeled
    for name, box in (("a", [2, 3, 12, 14]), ("b", [1, 2, 9, 8])):
        raw = json.loads((folder / f"{name}.json").read_text())
        assert "planes" not in raw and "labeled_planes" not in raw  # 2-D files stay 2-D
        np.testing.assert_allclose(load_annotation(folder / f"{name}.json").boxes, [box])
    assert sorted(p.name for p in folder.iterdir()) == ["a.json", "a.png", "b.json", "b.png", "movie.pt", "movie.tif"]

    # reopened: the same
    again = make_napari_viewer()
    again.open(str(folder), plugin=PLUGIN)
    layers = by_name(again)
    again.dims.set_current_step(0, 3)
    assert list(layers["movie boxes"].features["label"]) == ["cell"]
    assert stack_labeling.labeled_planes(layers["movie boxes"]) == {(1,), (3,)}
    boxes = conventions.annotations_from_shapes(layers["mixed boxes"].data, layers["mixed boxes"].features,
                                                dict(layers["mixed boxes"].metadata))
    assert [len(a) for a in boxes] == [1, 1]


def test_a_folder_of_stacks_alone_opens_its_stacks(make_napari_viewer, tmp_path):
    folder = tmp_path / "only"
    folder.mkdir()
    tifffile.imwrite(folder / "t1.tif", np.zeros((3, 16, 16), np.uint8), photometric="minisblack")
    viewer = make_napari_viewer()
    viewer.open(str(folder), plugin=PLUGIN)
    assert [layer.name for layer in viewer.layers] == ["t1", "t1 boxes"]
    assert viewer.layers["t1"].data.shape == (3, 16, 16)


def predictions_out(tmp_path):
    """A ``predict --out`` folder: a stack's file (planes, scores) and a 2-D image's, no images."""
    out = tmp_path / "out"
    out.mkdir()
    stack = Annotation(np.array([[1.0, 1, 5, 5], [2, 2, 8, 8], [3, 3, 9, 9]]), ["a", "b", "a"], np.array([0.9, 0.5, 0.7]),
                       ["a", "b"], planes=np.array([[0], [3], [3]]))
    save_annotation(out / "movie.pt", stack, labeled_planes=False)
    save_annotation(out / "a.pt", Annotation(np.array([[1.0, 1, 5, 5]]), ["a"], np.array([0.8]), ["a", "b"]))
    return out, stack


def test_a_stack_prediction_file_without_its_stack_shows_its_boxes_per_plane(make_napari_viewer, tmp_path, monkeypatch):
    import napari.utils.notifications

    said = []
    monkeypatch.setattr(napari.utils.notifications, "show_info", said.append)
    out, stack = predictions_out(tmp_path)
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(out / "movie.pt"), plugin=PLUGIN)
    assert layer.name == "movie predictions" and layer.ndim == 3 and conventions.is_predictions(layer)
    assert [int(np.asarray(v)[0, 0]) for v in layer.data] == [0, 3, 3]  # each box on its plane, not one 2-D picture
    assert viewer.dims.range[0][1] >= 3  # the slider reaches the last plane with a box
    assert said == ["movie.pt: the boxes of a stack (3 boxes on 2 planes), shown plane by plane; its stack (movie.tif "
                    "or another image named movie) is not beside it nor in ../input: open the stack to see its pixels"]
    viewer.layers.selection = {layer}
    viewer.layers.save(str(tmp_path / "again.pt"), selected=True, plugin=PLUGIN)
    saved = load_annotation(tmp_path / "again.pt")
    assert saved.planes.tolist() == stack.planes.tolist() and saved.labels == stack.labels
    np.testing.assert_allclose(saved.scores, stack.scores)

    # the --out folder opened whole: the stack's file its own stack box layer, the 2-D file in the folder's layer
    said.clear()
    folder = make_napari_viewer()
    folder.open(str(out), plugin=PLUGIN)
    layers = by_name(folder)
    assert set(layers) == {"movie predictions", "out predictions"}
    assert layers["movie predictions"].ndim == 3 and layers["out predictions"].nshapes == 1
    assert said == ["out: 1 stack annotation file(s) without their stack shown plane by plane, each as its own box "
                    "layer: movie.pt"]


def test_in_an_input_and_target_folder_a_stacks_new_file_goes_to_target_and_a_bad_one_is_skipped(tmp_path, monkeypatch):
    import napari.utils.notifications

    from napari_faster_rcnn._reader import get_reader

    warned = []
    monkeypatch.setattr(napari.utils.notifications, "show_warning", warned.append)
    monkeypatch.setattr(napari.utils.notifications, "show_info", lambda message: None)
    root = tmp_path / "data"
    (root / "input").mkdir(parents=True)
    (root / "target").mkdir()
    write_image(root / "input" / "a.png", 32, 32)
    save_annotation(root / "target" / "a.pt", Annotation(np.array([[2.0, 3, 12, 14]]), ["cell"]))
    for name in ("movie", "broken"):
        tifffile.imwrite(root / "input" / f"{name}.tif", np.zeros((4, 32, 32), np.uint8), photometric="minisblack")
    # a 2-D annotation with boxes beside a stack: refused, naming the file; nothing overwrites it
    save_annotation(root / "target" / "broken.pt", Annotation(np.array([[1.0, 1, 4, 4]]), ["cell"]))
    layers = get_reader(str(root))(str(root))
    names = [kwargs["name"] for _, kwargs, _ in layers]
    assert names == ["movie", "movie boxes", "data", "data boxes"]
    assert layers[1][1]["metadata"][conventions.ANNOTATION_FILES] == [str(root / "target" / "movie.pt")]
    assert layers[2][1]["metadata"][conventions.FOLDER_STACKS] == [str(root / "input" / "movie.tif")]
    assert len(warned) == 1 and "broken.pt: boxes without 'planes', but broken.tif is a stack" in warned[0]


def test_label_boxes_labels_a_stack_of_an_input_and_target_folder_into_its_one_target_file(make_napari_viewer, tmp_path):
    root = tmp_path / "data"
    (root / "input").mkdir(parents=True)
    write_image(root / "input" / "a.png", 32, 32)
    tifffile.imwrite(root / "input" / "movie.tif", np.zeros((4, 32, 32), np.uint8), photometric="minisblack")
    viewer = make_napari_viewer()
    viewer.open(str(root), plugin=PLUGIN)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Label boxes")
    stack_boxes = viewer.layers["movie boxes"]
    widget.boxes.set_layer(stack_boxes)
    assert widget.stack_layer is stack_boxes and widget.unlabeled.text().startswith("0 of 4 planes labeled")
    viewer.dims.set_current_step(0, 2)
    stack_boxes.add_rectangles([lead(2, [3, 4, 12, 15])])
    assert widget.unlabeled.text().startswith("1 of 4 planes labeled")
    widget.save()
    saved = load_annotation(root / "target" / "movie.pt")
    assert saved.planes.tolist() == [[2]] and saved.labeled_planes.tolist() == [[2]]
    assert sorted(p.name for p in (root / "target").iterdir()) == ["movie.pt"]  # the PNG's file not written


def test_a_multichannel_stack_in_a_folder_is_one_layer_per_channel_and_one_stack_to_predict(make_napari_viewer, tmp_path):
    from napari_faster_rcnn.layers.prediction_targets import folder_target

    folder = tmp_path / "multi"
    folder.mkdir()
    write_image(folder / "a.png", 32, 32)
    tifffile.imwrite(folder / "cells.ome.tif", np.zeros((3, 2, 32, 32), np.uint16), metadata={"axes": "TCYX"})
    viewer = make_napari_viewer()
    viewer.open(str(folder), plugin=PLUGIN)
    assert [layer.name for layer in viewer.layers] == [
        "cells.ome [channel 0]", "cells.ome [channel 1]", "cells.ome boxes", "multi", "multi boxes"]
    target = folder_target(viewer, folder)
    assert [len(part) for part in target.parts] == [1, 3]  # the PNG, and the stack's 3 planes once (not per channel)
    assert target.parts[1].planes == [(0,), (1,), (2,)]


def test_a_folder_run_cancelled_in_a_stack_keeps_the_images_and_the_planes_predicted(make_napari_viewer, tmp_path):
    from napari_faster_rcnn.core.prediction.run import PredictionRecord
    from napari_faster_rcnn.core.prediction.thresholds import Thresholds
    from napari_faster_rcnn.layers.prediction_targets import add_folder_predictions, folder_target
    from napari_faster_rcnn.layers.predictions import prediction_pages

    folder, _, _ = mixed_folder(tmp_path)
    viewer = make_napari_viewer()
    target = folder_target(viewer, folder)  # a.png, b.png, then the stack's 5 planes
    assert len(target) == 7 and [len(part) for part in target.parts] == [2, 5]

    def record(index, x):
        plane = target.parts[1].planes[index - 2] if index >= 2 else None
        annotation = Annotation(np.array([[x, x, x + 5, x + 5]]), ["cell"], np.array([0.9]), ["cell"],
                                planes=None if plane is None else np.array([plane]))
        return PredictionRecord(index, None, annotation, (32, 32), None, index + 1, 7, 1, plane)

    records = [record(i, float(i)) for i in range(4)]  # cancelled after plane 1 of the stack
    layers = add_folder_predictions(viewer, target, records, ["cell"], Thresholds(0.5, 0.5), count=4)
    assert [layer.name for layer in layers] == ["mixed predictions", "movie predictions"]
    assert [a.boxes[0, 0] for a in prediction_pages(layers[0]).raw] == [0.0, 1.0]
    stack = prediction_pages(layers[1])
    assert stack.planes == [(0,), (1,)] and [a.boxes[0, 0] for a in stack.raw] == [2.0, 3.0]
    assert [layer.name for layer in add_folder_predictions(viewer, target, records[:1], ["cell"], Thresholds(0.5, 0.5),
                                                          count=1)] == ["mixed predictions [1]"]
