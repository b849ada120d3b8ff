"""A dataset folder mixing 2-D images and stacks: a stack's planes are pages of the folder's one image and box
layer (issue 13, "Folders mixing stacks and 2-D images work")."""

import json

import numpy as np
import tifffile

from napari_faster_rcnn.core.data.annotations import Annotation, load_annotation, save_annotation
from napari_faster_rcnn.core.data.boxes import rectangles_to_boxes
from napari_faster_rcnn.layers import conventions, labeling
from tests.conftest import layers_by_name, mixed_folder, page_rectangle, write_image

PLUGIN = "napari-faster-rcnn"


def test_a_stacks_planes_are_pages_of_the_folder_labeled_and_saved_to_its_one_file(make_napari_viewer, tmp_path):
    folder, pngs, movie = mixed_folder(tmp_path, 64, 4)
    before = {name: (folder / name).read_bytes() for name in ("a.json",)}
    viewer = make_napari_viewer()
    viewer.open(str(folder), plugin=PLUGIN)
    layers = layers_by_name(viewer)
    assert set(layers) == {"mixed", "mixed boxes"}  # no layers of the stack's own
    image, boxes = layers["mixed"], layers["mixed boxes"]
    assert image.data.shape[0] == 6 and viewer.dims.nsteps[0] == 6  # 2 images + 4 planes
    metadata = boxes.metadata
    assert [p.rsplit("/", 1)[-1] for p in metadata[conventions.SOURCE_IMAGES]] == ["a.png", "b.png"] + ["movie.tif"] * 4
    assert [conventions.source_plane(metadata, i) for i in range(6)] == [None, None, (0,), (1,), (2,), (3,)]
    # page 3 is plane 1: its pixels (gray, repeated to RGB, uint16 kept) and its box
    np.testing.assert_array_equal(np.asarray(image.data[3])[..., 0], movie[1])
    np.testing.assert_array_equal(np.asarray(image.data[0]), pngs["a"])
    # one contrast for all pages: it reaches the stack's 12-bit values, not the PNGs' 8-bit range only
    assert image.contrast_limits == [0.0, float(movie[0].max())]
    viewer.dims.set_current_step(0, 3)
    assert boxes.nshapes == 1 and list(boxes.features["label"]) == ["cell"]
    np.testing.assert_allclose(np.asarray(boxes.data[0])[:, 0], 3)
    viewer.dims.set_current_step(0, 2)
    assert boxes.nshapes == 0

    session = labeling.labeling_session(viewer, boxes, autosave=False)
    assert len(session) == 6
    assert session.image_name(4) == "movie.tif plane 2"
    assert session.unlabeled() == [1, 2, 4, 5]  # b.png (no file), planes 0, 2, 3
    # a box on plane 2 (page 4), "no objects" on plane 3 (page 5)
    viewer.dims.set_current_step(0, 4)
    boxes.add_rectangles([page_rectangle(4, [5, 6, 20, 22])], edge_color="red")
    session.next_image()
    session.key_actions()["0"]()  # "no objects here"
    assert session.unlabeled() == [1, 2]
    report = session.save()
    assert [p.name for p in report.written] == ["movie.pt"]  # the PNGs' files are left as they were
    assert {name: (folder / name).read_bytes() for name in ("a.json",)} == before
    assert sorted(p.name for p in folder.iterdir()) == ["a.json", "a.png", "b.png", "movie.pt", "movie.tif"]
    saved = load_annotation(folder / "movie.pt")
    assert saved.planes.tolist() == [[1], [2]] and saved.labels == ["cell", "cell"]
    np.testing.assert_allclose(saved.boxes, [[4, 4, 10, 9], [5, 6, 20, 22]])
    assert saved.labeled_planes.tolist() == [[1], [2], [3]]  # plane 0 stays unlabeled

    # reopened: the same pages, boxes and labeled pages
    again = make_napari_viewer()
    again.open(str(folder), plugin=PLUGIN)
    boxes = layers_by_name(again)["mixed boxes"]
    again.dims.set_current_step(0, 4)
    shown, page = rectangles_to_boxes(boxes.data)
    np.testing.assert_allclose(shown, [[5, 6, 20, 22]])
    assert page.tolist() == [4]
    session = labeling.labeling_session(again, boxes)
    assert session.unlabeled() == [1, 2]


def test_autosave_writes_a_plane_when_its_page_is_left_and_the_writer_saves_each_file_once(make_napari_viewer,
                                                                                           tmp_path):
    folder, _, _ = mixed_folder(tmp_path, 64, 4)
    viewer = make_napari_viewer()
    viewer.open(str(folder), plugin=PLUGIN)
    boxes = layers_by_name(viewer)["mixed boxes"]
    session = labeling.labeling_session(viewer, boxes)  # autosave on
    viewer.dims.set_current_step(0, 2)
    boxes.add_rectangles([page_rectangle(2, [1, 1, 9, 9])], edge_color="red")
    viewer.dims.set_current_step(0, 1)  # leaves plane 0: the stack's file is written
    assert load_annotation(folder / "movie.pt").labeled_planes.tolist() == [[0], [1]]
    viewer.dims.set_current_step(0, 4)
    session.key_actions()["0"]()  # "no objects here" on plane 2
    viewer.dims.set_current_step(0, 1)  # autosave: the stack's file
    assert load_annotation(folder / "movie.pt").labeled_planes.tolist() == [[0], [1], [2]]
    boxes.add_rectangles([page_rectangle(1, [2, 2, 8, 8])], edge_color="red")  # on b.png
    viewer.layers.selection = {boxes}
    written = viewer.layers.save(str(folder / "boxes.json"), selected=True, plugin=PLUGIN)
    # each 2-D image's file, and the stack's ONE file (in the format asked for), with every plane
    assert sorted(p.rsplit("/", 1)[-1] for p in written) == ["a.json", "b.json", "movie.json"]
    assert "planes" not in json.loads((folder / "b.json").read_text())
    assert load_annotation(folder / "movie.json").labeled_planes.tolist() == [[0], [1], [2]]
    assert session.unlabeled() == [5]


def test_other_code_sees_each_pages_file_and_plane(make_napari_viewer, tmp_path):
    from napari_faster_rcnn.core.prediction.stacks import StackPlane
    from napari_faster_rcnn.core.training.samples import folder_samples
    from napari_faster_rcnn.layers import ranking, training_data
    from napari_faster_rcnn.layers.evaluation_layers import image_names
    from napari_faster_rcnn.layers.prediction_targets import layer_target

    folder, _, movie = mixed_folder(tmp_path, 64, 4)
    viewer = make_napari_viewer()
    viewer.open(str(folder), plugin=PLUGIN)
    image, boxes = layers_by_name(viewer)["mixed"], layers_by_name(viewer)["mixed boxes"]
    # Predict's current image: page 3 is plane 1 of movie.tif, read alone
    viewer.dims.set_current_step(0, 3)
    target = layer_target(viewer, image, whole_stack=False)
    (item,) = target.images
    assert isinstance(item, StackPlane) and item.path == folder / "movie.tif" and item.plane == (1,)
    np.testing.assert_array_equal(item.read()[..., 0], movie[1])
    assert target.metadata[conventions.SOURCE_PLANES] == [[1]]
    # Evaluate and Tune pair pages by file and plane
    assert image_names(boxes) == ["a", "b", "movie[0]", "movie[1]", "movie[2]", "movie[3]"]
    # training from the layer: the labeled pages only, as training from the folder
    data = training_data.layer_training_data(boxes)
    assert [(s.image.name, s.plane) for s in data.samples] == [("a.png", None), ("movie.tif", (1,))]
    assert [(s.image.name, s.plane) for s in folder_samples(folder)] == [("a.png", None), ("movie.tif", (1,))]
    assert data.unlabeled == ["b.png", "movie.tif[0]", "movie.tif[2]", "movie.tif[3]"]
    # statistics and anchors from the layer: the labeled pages only (planes nobody labeled left out)
    from napari_faster_rcnn.layers.anchor_sources import layer_items
    from napari_faster_rcnn.layers.statistics import layer_statistics

    items, names, _ = layer_items(boxes)
    assert names == ["a", "b", "movie[1]"] and [len(annotation) for _, annotation in items] == [1, 0, 1]
    statistics = layer_statistics(boxes)
    assert statistics.names == ["a", "b", "movie[1]"] and statistics.unlabeled_images == 3
    # COCO / VOC / YOLO export: refused, naming the stack (2-D images only there)
    import pytest

    from napari_faster_rcnn.layers.interchange import layer_dataset

    with pytest.raises(ValueError, match=r"planes of 1 stack\(s\) \(movie.tif\)"):
        layer_dataset(boxes)
    # Next most useful ranks the unlabeled pages: b.png's file, the planes not labeled (read alone)
    session = labeling.labeling_session(viewer, boxes, autosave=False)
    found = ranking.unlabeled_images(session)
    assert [index for index, _ in found] == [1, 2, 4, 5]
    assert (found[0][1].image, found[0][1].plane) == (folder / "b.png", None)
    assert [(item.image, item.plane) for _, item in found[1:]] == [(folder / "movie.tif", (p,)) for p in (0, 2, 3)]
    # ... and passes the labeled ones along (a.png's file, the labeled plane 1) for novelty
    known = ranking.labeled_images(session)
    assert [(index, item.image, item.plane) for index, item in known] == [(0, folder / "a.png", None),
                                                                           (3, folder / "movie.tif", (1,))]


def test_a_multichannel_stack_keeps_its_own_layers_and_the_viewer_says_why(make_napari_viewer, tmp_path, monkeypatch):
    import napari.utils.notifications

    said = []
    monkeypatch.setattr(napari.utils.notifications, "show_info", said.append)
    folder = tmp_path / "multi"
    folder.mkdir()
    write_image(folder / "a.png", 32, 32)
    tifffile.imwrite(folder / "cells.ome.tif", np.zeros((3, 2, 32, 32), np.uint16), metadata={"axes": "TCYX"})
    viewer = make_napari_viewer()
    viewer.open(str(folder), plugin=PLUGIN)
    assert "multi boxes" in layers_by_name(viewer) and "cells.ome boxes" in layers_by_name(viewer)
    assert layers_by_name(viewer)["multi"].data.shape[0] == 1
    assert said == ["multi: 1 stack(s) that cannot be pages of the folder opened as their own image and box layers, "
                    "paged plane by plane by the slider and saved to their own file: cells.ome.tif (3 planes; 2 "
                    "channels (C): one layer per channel) (one slider for all, the folder's image at 0: hide the "
                    "layers above a stack to see its planes there)"]


def test_predictions_accepted_on_a_folders_pages_land_on_their_planes_and_label_them(make_napari_viewer, tmp_path):
    from napari_faster_rcnn.core.prediction.run import PredictionRecord
    from napari_faster_rcnn.core.prediction.thresholds import Thresholds
    from napari_faster_rcnn.layers.prediction_labels import accept_as_labels
    from napari_faster_rcnn.layers.prediction_targets import add_folder_predictions, folder_target

    folder, _, _ = mixed_folder(tmp_path, 64, 4)
    viewer = make_napari_viewer()
    viewer.open(str(folder), plugin=PLUGIN)
    boxes = layers_by_name(viewer)["mixed boxes"]
    session = labeling.labeling_session(viewer, boxes, autosave=False)
    target = folder_target(viewer, folder)

    def record(index):
        box = np.array([[10.0, 10, 30, 30]]) if index == 4 else np.zeros((0, 4))
        annotation = Annotation(box, ["cell"] * len(box), np.full(len(box), 0.9), ["cell"])
        return PredictionRecord(index, None, annotation, (64, 64), None, index + 1, 6, len(box), None)

    (predictions,) = add_folder_predictions(viewer, target, [record(i) for i in range(6)], ["cell"],
                                            Thresholds(0.5, 0.5))
    assert accept_as_labels(predictions, boxes) == 1
    assert session.unlabeled() == []  # every page predicted on is labeled, with or without boxes
    session.save()
    saved = load_annotation(folder / "movie.pt")
    assert saved.planes.tolist() == [[1], [2]] and saved.labeled_planes.tolist() == [[0], [1], [2], [3]]
    np.testing.assert_allclose(saved.boxes[1], [10, 10, 30, 30])
    assert len(load_annotation(folder / "b.json" if (folder / "b.json").exists() else folder / "b.pt")) == 0


def test_a_new_box_layer_on_the_folders_image_layer_pages_the_stacks_file(make_napari_viewer, tmp_path):
    from napari_faster_rcnn.layers.box_layers import new_box_layer

    folder, _, _ = mixed_folder(tmp_path, 64, 4)
    viewer = make_napari_viewer()
    viewer.open(str(folder), plugin=PLUGIN)
    viewer.layers.remove("mixed boxes")
    layer = new_box_layer(viewer, viewer.layers["mixed"])
    viewer.dims.set_current_step(0, 3)  # plane 1: its box from movie.pt, not the whole stack's
    shown, page = rectangles_to_boxes(layer.data)
    np.testing.assert_allclose(shown, [[4, 4, 10, 9]])
    assert page.tolist() == [3]
    viewer.dims.set_current_step(0, 0)
    np.testing.assert_allclose(rectangles_to_boxes(layer.data)[0], [[2, 3, 12, 14]])
    session = labeling.labeling_session(viewer, layer, autosave=False)
    assert session.unlabeled() == [1, 2, 4, 5]
    viewer.dims.set_current_step(0, 2)
    session.mark_no_objects()
    session.save()
    saved = load_annotation(folder / "movie.pt")
    assert saved.planes.tolist() == [[1]] and saved.labeled_planes.tolist() == [[0], [1]]


def test_suggestions_on_a_folders_page_predict_its_plane_and_accepting_labels_it(make_napari_viewer, qtbot, tmp_path):
    import torchvision.ops  # noqa: F401  (the score filter needs it)

    from napari_faster_rcnn.core.prediction.stacks import StackPlane
    from napari_faster_rcnn.layers.suggestions import SUGGESTIONS_NAME

    folder, _, _ = mixed_folder(tmp_path, 64, 4)
    calls = []

    def predict(item):
        calls.append((getattr(item, "path", item), getattr(item, "plane", None)))
        plane = item.plane[0] if isinstance(item, StackPlane) else 9
        return Annotation(np.array([[4.0, 4 + plane, 20, 20 + plane]]), ["cell"], np.array([0.9]), ["cell"])

    viewer = make_napari_viewer()
    viewer.open(str(folder), plugin=PLUGIN)
    boxes = layers_by_name(viewer)["mixed boxes"]
    viewer.dims.set_current_step(0, 4)  # plane 2
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Label boxes")
    widget.boxes.set_layer(boxes)
    assert widget.session.has_planes and widget.session.current == 4
    widget.suggestions.use_predictor(predict, "stub")
    layer = viewer.layers[SUGGESTIONS_NAME]
    qtbot.waitUntil(lambda: layer.nshapes == 1, timeout=5000)
    assert (folder / "movie.tif", (2,)) in calls  # the page's plane of the stack's file, read alone
    np.testing.assert_allclose(rectangles_to_boxes([v[:, -2:] for v in layer.data])[0], [[4, 6, 20, 22]])
    widget.suggestions.suggestions.accept()
    assert widget.session.unlabeled() == [1, 2, 5]
    widget.save()
    saved = load_annotation(folder / "movie.pt")
    assert saved.planes.tolist() == [[1], [2]] and saved.labeled_planes.tolist() == [[1], [2]]


def test_without_label_boxes_the_no_objects_key_marks_the_page_and_the_writer_saves_it(make_napari_viewer, tmp_path):
    folder, _, _ = mixed_folder(tmp_path, 64, 4)
    viewer = make_napari_viewer()
    viewer.open(str(folder), plugin=PLUGIN)
    boxes = layers_by_name(viewer)["mixed boxes"]
    viewer.dims.set_current_step(0, 5)
    keys = {str(key): function for key, function in boxes.keymap.items()}
    keys["0"](boxes)  # "no objects here" on plane 3 (no labeling session), as napari dispatches the key
    viewer.dims.set_current_step(0, 0)
    viewer.layers.selection = {boxes}
    written = viewer.layers.save(str(folder / "boxes.pt"), selected=True, plugin=PLUGIN)
    assert sorted(p.rsplit("/", 1)[-1] for p in written) == ["a.pt", "b.pt", "movie.pt"]
    assert load_annotation(folder / "movie.pt").labeled_planes.tolist() == [[1], [3]]


def test_a_zarr_stack_with_t_and_z_in_a_folder_is_pages_in_file_order(tmp_path):
    from napari_faster_rcnn._reader import get_reader
    from tests.core.data.test_zarr_stacks import write_zarr

    folder = tmp_path / "z"
    folder.mkdir()
    data = write_zarr(folder / "embryo.zarr", shape=(2, 3, 24, 32))
    write_image(folder / "flat.png", 24, 32)
    save_annotation(folder / "embryo.pt", Annotation(boxes=[[1, 2, 9, 12]], labels=["cell"], planes=[[1, 2]],
                                                     labeled_planes=[[0, 0]]))
    (image, _, _), (_, options, _) = get_reader(str(folder))(str(folder))
    metadata = options["metadata"]
    assert image.shape[0] == 7 and metadata[conventions.SOURCE_PLANES] == [
        [0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2], None]
    np.testing.assert_array_equal(np.asarray(image[5])[:24, :32, 0], data[1, 2])  # page 5: plane (1, 2), lazily
    from napari_faster_rcnn.layers.paging_registry import metadata_model

    store = metadata_model(metadata).store
    assert store.unlabeled() == [1, 2, 3, 4, 6]  # (0, 0) marked, (1, 2) with its box; flat.png without a file
    assert len(store.annotations[5]) == 1


def test_a_suggestion_rejected_on_a_folders_page_is_kept_under_its_stack_and_plane(make_napari_viewer, qtbot, tmp_path):
    from napari_faster_rcnn.core.prediction.rejections import REJECTED_FILE, read_rejected_file
    from napari_faster_rcnn.layers.suggestions import SUGGESTIONS_NAME

    folder, _, _ = mixed_folder(tmp_path, 64, 4)

    def predict(item):
        return Annotation(np.array([[4.0, 4.0, 20.0, 20.0]]), ["cell"], np.array([0.9]), ["cell"])

    viewer = make_napari_viewer()
    viewer.open(str(folder), plugin=PLUGIN)
    viewer.dims.set_current_step(0, 4)  # the page of movie.tif's plane 2
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Label boxes")
    widget.boxes.set_layer(layers_by_name(viewer)["mixed boxes"])
    widget.suggestions.use_predictor(predict, "stub")
    layer = viewer.layers[SUGGESTIONS_NAME]
    qtbot.waitUntil(lambda: layer.nshapes == 1, timeout=5000)
    assert widget.suggestions.suggestions.reject() == 1
    # under the stack's file and the page's plane, not under the folder's first image
    rejected = read_rejected_file(folder / REJECTED_FILE)
    assert list(rejected) == ["movie.tif"] and list(rejected["movie.tif"]) == ["2"]
    np.testing.assert_allclose(rejected["movie.tif"]["2"][0], [[4, 4, 20, 20]], atol=1e-6)
