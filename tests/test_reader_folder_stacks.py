"""A dataset folder mixing 2-D images and stacks (issue 13): a stack's planes are pages of the folder's
image and box layer (a stack that cannot be, as a microscope's channels, opens as its own layers); each
stack is saved to its one file."""


import numpy as np
import tifffile

from napari_faster_rcnn.core.data.annotations import Annotation, load_annotation, save_annotation
from napari_faster_rcnn.layers import conventions
from tests.conftest import layers_by_name, mixed_folder, page_rectangle, write_image

PLUGIN = "napari-faster-rcnn"


def test_a_stacks_planes_are_pages_of_the_folder_and_the_viewer_says_so(make_napari_viewer, tmp_path, monkeypatch):
    import napari.utils.notifications

    said = []
    monkeypatch.setattr(napari.utils.notifications, "show_info", said.append)
    monkeypatch.setattr(napari.utils.notifications, "show_warning", said.append)
    folder, pngs, movie = mixed_folder(tmp_path, 32, 5)
    viewer = make_napari_viewer()
    viewer.open(str(folder), plugin=PLUGIN)
    layers = layers_by_name(viewer)
    assert set(layers) == {"mixed", "mixed boxes"}  # no layers of the stack's own: one slider, one page at a time
    assert said == ["mixed: 7 pages; the planes of 1 stack(s) are pages of the folder, each stack saved to its one "
                    "file: movie.tif: pages 2 to 6 (5 planes)"]
    image, boxes = layers["mixed"], layers["mixed boxes"]
    assert image.data.shape[:3] == (7, 32, 32)
    np.testing.assert_array_equal(np.asarray(image.data[1]), pngs["b"])
    np.testing.assert_array_equal(np.asarray(image.data[5])[..., 0], movie[3])  # page 5: plane 3, read lazily
    viewer.dims.set_current_step(0, 3)  # plane 1: its box
    assert list(boxes.features["label"]) == ["cell"]
    assert boxes.metadata[conventions.ANNOTATION_FILES][2:] == [str(folder / "movie.pt")] * 5
    # the whole layer saved through napari's writer: each PNG's file, the stack's one file
    viewer.dims.set_current_step(0, 5)
    boxes.add_rectangles([page_rectangle(5, [5, 6, 20, 22])])
    boxes.add_rectangles([page_rectangle(5, [1, 1, 3, 3])])
    boxes.selected_data = {1}
    boxes.remove_selected()
    viewer.dims.set_current_step(0, 1)
    boxes.add_rectangles([page_rectangle(1, [1, 2, 9, 8])])
    viewer.layers.selection = {boxes}
    written = viewer.layers.save(str(folder / "boxes.pt"), selected=True, plugin=PLUGIN)
    assert sorted(p.rsplit("/", 1)[-1] for p in written) == ["a.pt", "b.pt", "movie.pt"]
    saved = load_annotation(folder / "movie.pt")
    assert saved.planes.tolist() == [[1], [3]] and saved.labeled_planes.tolist() == [[1], [3]]
    np.testing.assert_allclose(saved.boxes, [[4, 4, 10, 9], [5, 6, 20, 22]])
    for name, box in (("a", [2, 3, 12, 14]), ("b", [1, 2, 9, 8])):
        assert load_annotation(folder / f"{name}.pt").planes is None  # 2-D files stay 2-D
        np.testing.assert_allclose(load_annotation(folder / f"{name}.pt").boxes, [box])


def test_a_folder_of_stacks_alone_is_their_planes(make_napari_viewer, tmp_path):
    folder = tmp_path / "only"
    folder.mkdir()
    tifffile.imwrite(folder / "t1.tif", np.zeros((3, 16, 16), np.uint8), photometric="minisblack")
    viewer = make_napari_viewer()
    viewer.open(str(folder), plugin=PLUGIN)
    assert [layer.name for layer in viewer.layers] == ["only", "only boxes"]
    assert viewer.layers["only"].data.shape == (3, 16, 16, 3)


def test_two_leading_dimensions_are_pages_in_file_order(make_napari_viewer, tmp_path):
    folder = tmp_path / "tz"
    folder.mkdir()
    write_image(folder / "a.png", 16, 16)
    volume = np.arange(2 * 3 * 16 * 16, dtype=np.uint16).reshape(2, 3, 16, 16)
    tifffile.imwrite(folder / "v.tif", volume, photometric="minisblack", metadata={"axes": "TZYX"})
    viewer = make_napari_viewer()
    viewer.open(str(folder), plugin=PLUGIN)
    image, boxes = layers_by_name(viewer)["tz"], layers_by_name(viewer)["tz boxes"]
    assert image.data.shape[0] == 7
    planes = [conventions.source_plane(boxes.metadata, i) for i in range(7)]
    assert planes == [None, (0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    for page, (t, z) in enumerate(planes[1:], start=1):
        np.testing.assert_array_equal(np.asarray(image.data[page])[..., 0], volume[t, z])
    from napari_faster_rcnn.layers import labeling

    session = labeling.labeling_session(viewer, boxes, autosave=False)
    viewer.dims.set_current_step(0, 5)
    session.mark_no_objects()  # plane (1, 1)
    session.save()
    saved = load_annotation(folder / "v.pt")
    assert saved.labeled_planes.tolist() == [[1, 1]] and len(saved) == 0


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
    layers = layers_by_name(folder)
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
    assert names == ["data", "data boxes"]  # the stack's planes are pages of the folder
    assert layers[1][1]["metadata"][conventions.ANNOTATION_FILES] == [str(root / "target" / "a.pt")] + [
        str(root / "target" / "movie.pt")] * 4
    assert len(warned) == 1 and "broken.pt: boxes without 'planes', but broken.tif is a stack" in warned[0]


def test_label_boxes_labels_a_stack_of_an_input_and_target_folder_into_its_one_target_file(make_napari_viewer, tmp_path):
    root = tmp_path / "data"
    (root / "input").mkdir(parents=True)
    write_image(root / "input" / "a.png", 32, 32)
    tifffile.imwrite(root / "input" / "movie.tif", np.zeros((4, 32, 32), np.uint8), photometric="minisblack")
    viewer = make_napari_viewer()
    viewer.open(str(root), plugin=PLUGIN)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Label boxes")
    boxes = viewer.layers["data boxes"]
    widget.boxes.set_layer(boxes)
    assert widget.unlabeled.text().startswith("0 of 5 labeled")
    viewer.dims.set_current_step(0, 3)  # plane 2
    assert widget.position.text() == "image 4 of 5: movie.tif plane 2"
    boxes.add_rectangles([page_rectangle(3, [3, 4, 12, 15])])
    assert widget.unlabeled.text().startswith("1 of 5 labeled")
    widget.next_unlabeled()
    assert viewer.dims.current_step[0] == 4
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
    from napari_faster_rcnn.core.prediction.stacks import StackPlane
    from napari_faster_rcnn.core.prediction.thresholds import Thresholds
    from napari_faster_rcnn.layers.prediction_targets import add_folder_predictions, folder_target
    from napari_faster_rcnn.layers.predictions import prediction_pages

    folder, _, _ = mixed_folder(tmp_path, 32, 5)
    viewer = make_napari_viewer()
    target = folder_target(viewer, folder)  # a.png, b.png, then the stack's 5 planes: pages of one target
    assert len(target) == 7 and target.parts is None
    assert [getattr(item, "plane", None) for item in target.images] == [None, None, (0,), (1,), (2,), (3,), (4,)]
    assert all(isinstance(item, StackPlane) for item in target.images[2:])

    def record(index, x):
        annotation = Annotation(np.array([[x, x, x + 5, x + 5]]), ["cell"], np.array([0.9]), ["cell"])
        return PredictionRecord(index, None, annotation, (32, 32), None, index + 1, 7, 1, None)

    records = [record(i, float(i)) for i in range(4)]  # cancelled after plane 1 of the stack
    (layer,) = add_folder_predictions(viewer, target, records, ["cell"], Thresholds(0.5, 0.5), count=4)
    assert layer.name == "mixed predictions"
    assert [a.boxes[0, 0] for a in prediction_pages(layer).raw] == [0.0, 1.0, 2.0, 3.0]
    assert [conventions.source_plane(layer.metadata, i) for i in range(4)] == [None, None, (0,), (1,)]


def test_the_folders_contrast_is_its_first_pages_values_not_their_padding(make_napari_viewer, tmp_path):
    from PIL import Image

    folder = tmp_path / "padded"
    folder.mkdir()
    png = np.random.default_rng(1).integers(50, 200, (20, 30, 3), dtype=np.uint8)  # smaller: padded as a page
    Image.fromarray(png).save(folder / "a.png")
    movie = np.random.default_rng(2).integers(300, 3000, (3, 40, 48), dtype=np.uint16)
    tifffile.imwrite(folder / "movie.tif", movie, photometric="minisblack")
    viewer = make_napari_viewer()
    image, _ = viewer.open(folder, plugin=PLUGIN)
    assert image.data.shape == (4, 40, 48, 3)
    # the reference: the values of the first page and of the stack's first plane, read independently
    assert image.contrast_limits == [float(png.min()), float(movie[0].max())]
