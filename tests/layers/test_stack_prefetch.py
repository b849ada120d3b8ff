"""Planes next to the one shown are built in the background; turning to one shows exactly the store's
boxes, as the public path shows them, and never a stale prefetch (issue 13: paging a stack)."""

import numpy as np
import tifffile

from napari_faster_rcnn.core.data.annotations import Annotation, save_annotation
from napari_faster_rcnn.core.data.boxes import boxes_to_rectangles, rectangles_to_boxes
from napari_faster_rcnn.layers import page_boxes, page_prefetch, paging_registry, stack_labeling

PLUGIN = "napari-faster-rcnn"


def write_movie(folder, planes=6, per_plane=5):
    path = folder / "movie.tif"
    tifffile.imwrite(path, np.zeros((planes, 48, 64), np.uint16), photometric="minisblack")
    rng = np.random.default_rng(3)
    where = np.repeat(np.arange(planes), per_plane)
    corner = rng.uniform(0, 30, (len(where), 2))
    boxes = np.concatenate([corner, corner + rng.uniform(3, 12, corner.shape)], axis=1)
    labels = [["cell", "debris"][i % 3 == 0] for i in range(len(where))]
    save_annotation(folder / "movie.pt", Annotation(boxes, labels, classes=["cell", "debris"], planes=where[:, None],
                                                    labeled_planes=np.arange(planes)[:, None]))
    return path


def open_paged(viewer, folder):
    _, shapes = viewer.open(write_movie(folder), plugin=PLUGIN)
    shapes.text.visible = False  # (labels drawn: nothing is built in the background, see prefetch_around)
    model = paging_registry.paging_model(shapes)
    assert isinstance(model, stack_labeling.StackPages)
    model.prefetch_around(model.current)  # (the first plane's neighbours: requested while labels were on)
    return shapes, model


def turn(viewer, model, plane, prefetched=True):
    """Wait for the background builds, then move the slider to ``plane``."""
    assert model.prefetcher.wait()
    used = model.prefetcher.used
    viewer.dims.set_current_step(0, plane)
    assert model.prefetcher.used == used + int(prefetched)


def state(layer):
    """What a person sees and edits in a Shapes layer: vertices, types, colours, widths, order, labels,
    and the triangles napari draws for the slice shown."""
    mesh = layer._data_view._mesh
    return {
        "data": np.array(layer.data), "types": list(layer.shape_type), "edge": np.asarray(layer.edge_color),
        "face": np.asarray(layer.face_color), "width": list(layer.edge_width), "z": list(layer.z_index),
        "labels": list(layer.features["label"]), "shown": np.flatnonzero(layer._data_view._displayed),
        "triangles": np.asarray(mesh.displayed_triangles), "triangle_colors": np.asarray(mesh.displayed_triangles_colors),
        "vertices": np.asarray(mesh.vertices),
    }


def assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], np.ndarray):
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        else:
            assert a[key] == b[key], key


def store_boxes(model, plane):
    annotation = model.store.annotations[plane]
    return annotation.boxes, list(annotation.labels)


def layer_boxes(shapes):
    boxes, _ = rectangles_to_boxes(shapes.data)
    return boxes, list(shapes.features["label"])


def test_a_prefetched_plane_shows_as_the_public_path_does(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    shapes, model = open_paged(viewer, tmp_path)
    turn(viewer, model, 1)
    fast = state(shapes)
    reference = viewer.add_shapes(ndim=3, name="reference", features=shapes.features.iloc[:0],
                                  feature_defaults=shapes.feature_defaults, edge_width=shapes.current_edge_width,
                                  face_color=shapes.current_face_color)
    page_boxes.show_boxes(reference, model.store.annotations[1], (1,), model.colors)  # the public path
    assert_same(fast, state(reference))
    boxes, labels = layer_boxes(shapes)
    np.testing.assert_allclose(boxes, store_boxes(model, 1)[0], atol=1e-4)
    assert labels == store_boxes(model, 1)[1]
    assert shapes.nshapes == 5 and np.flatnonzero(shapes._data_view._displayed).tolist() == [0, 1, 2, 3, 4]  # every box of the plane is on screen


def test_a_plane_far_from_the_one_shown_shows_as_the_public_path_does(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    shapes, model = open_paged(viewer, tmp_path)
    turn(viewer, model, 4, prefetched=False)  # not a neighbour of plane 0: built at once (filled in)
    reference = viewer.add_shapes(ndim=3, name="reference", features=shapes.features.iloc[:0],
                                  feature_defaults=shapes.feature_defaults, edge_width=shapes.current_edge_width,
                                  face_color=shapes.current_face_color)
    page_boxes.show_boxes(reference, model.store.annotations[4], (4,), model.colors)
    assert_same(state(shapes), state(reference))


def test_a_stale_prefetch_never_shows_after_edits_on_neighbouring_planes(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    shapes, model = open_paged(viewer, tmp_path)
    turn(viewer, model, 1)  # planes 0 and 2 built in the background
    assert model.prefetcher.wait()
    # a box put on plane 2 by code while plane 1 is shown goes to plane 2 in the store
    (rectangle,) = boxes_to_rectangles(np.array([[1.0, 2.0, 9.0, 12.0]]))
    shapes.add_rectangles([np.concatenate([np.full((4, 1), 2.0), rectangle], axis=1)])
    assert len(model.store.annotations[2]) == 6
    turn(viewer, model, 2, prefetched=False)  # the prefetch of plane 2 was built before: not used
    np.testing.assert_allclose(layer_boxes(shapes)[0], store_boxes(model, 2)[0], atol=1e-4)
    assert shapes.nshapes == 6
    # delete a box on plane 2 (its neighbours 1 and 3 prefetched), go to 3 and back to 2
    shapes.selected_data = {0}
    shapes.remove_selected()
    turn(viewer, model, 3)
    assert len(model.store.annotations[2]) == 5 and stack_labeling.labeled_planes(shapes) >= {(2,)}
    turn(viewer, model, 2)  # built from the store after the edit was taken in
    boxes, labels = layer_boxes(shapes)
    np.testing.assert_allclose(boxes, store_boxes(model, 2)[0], atol=1e-4)
    assert labels == store_boxes(model, 2)[1] and shapes.nshapes == 5
    # the store changed behind the prefetch (another plane's boxes replaced by code): the new boxes show
    model.store.set(3, Annotation(np.array([[4.0, 4, 20, 20]]), ["debris"]))
    turn(viewer, model, 3, prefetched=False)
    assert shapes.nshapes == 1 and list(shapes.features["label"]) == ["debris"]


def test_drawing_and_deleting_on_a_prefetched_plane_goes_to_the_store(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    shapes, model = open_paged(viewer, tmp_path)
    turn(viewer, model, 1)
    turn(viewer, model, 2)
    (rectangle,) = boxes_to_rectangles(np.array([[30.0, 20.0, 40.0, 30.0]]))
    shapes.add_rectangles([np.concatenate([np.full((4, 1), 2.0), rectangle], axis=1)])  # drawn on plane 2
    shapes.selected_data = {1}
    shapes.remove_selected()
    expected = layer_boxes(shapes)
    turn(viewer, model, 3)
    boxes, labels = store_boxes(model, 2)
    np.testing.assert_allclose(boxes, expected[0], atol=1e-4)
    assert labels == expected[1] and len(labels) == 5
    assert model.store.dirty  # unsaved: autosave and the counts see it
    saved = stack_labeling.stack_annotation(shapes).on_plane([2])
    np.testing.assert_allclose(saved.boxes, expected[0], atol=1e-4)


def test_without_napari_internals_the_public_path_pages(make_napari_viewer, tmp_path, monkeypatch):
    monkeypatch.setattr(page_prefetch, "shape_internals", lambda: None)
    viewer = make_napari_viewer()
    shapes, model = open_paged(viewer, tmp_path)
    for plane in (1, 2, 1):
        turn(viewer, model, plane, prefetched=False)
        boxes, labels = layer_boxes(shapes)
        np.testing.assert_allclose(boxes, store_boxes(model, plane)[0], atol=1e-4)
        assert labels == store_boxes(model, plane)[1]


def test_the_box_layer_keeps_its_shaders_across_page_turns(make_napari_viewer, tmp_path, monkeypatch):
    from vispy.visuals.shaders import program

    viewer = make_napari_viewer()
    shapes, model = open_paged(viewer, tmp_path)
    canvas = viewer.window._qt_viewer.canvas._scene_canvas
    canvas.render()
    builds = []
    build = program.ModularProgram._build
    monkeypatch.setattr(program.ModularProgram, "_build", lambda self: (builds.append(self), build(self))[1])
    for plane in (1, 2, 4, 3):
        viewer.dims.set_current_step(0, plane)
        canvas.render()
    assert builds == []  # no shader compiled and linked again (vispy's meshes: twice per turn)
    assert shapes.nshapes == 5 and set(np.asarray(shapes.data)[:, 0, 0]) == {3.0}


def test_the_labeling_session_pages_a_stack_the_same_way(make_napari_viewer, tmp_path):
    from napari_faster_rcnn.layers.labeling import labeling_session

    viewer = make_napari_viewer()
    shapes, _ = open_paged(viewer, tmp_path)
    session = labeling_session(viewer, shapes, autosave=False)
    assert isinstance(session, page_prefetch.PlanePaging) and session.is_stack
    turn(viewer, session, 1)
    (rectangle,) = boxes_to_rectangles(np.array([[30.0, 20.0, 40.0, 30.0]]))
    shapes.add_rectangles([np.concatenate([np.full((4, 1), 1.0), rectangle], axis=1)])  # drawn on plane 1
    expected = layer_boxes(shapes)
    turn(viewer, session, 2)
    boxes, labels = store_boxes(session, 1)
    np.testing.assert_allclose(boxes, expected[0], atol=1e-4)
    assert labels == expected[1] and len(labels) == 6 and 1 in session.store.dirty
    turn(viewer, session, 1)  # built after the edit was taken in: the drawn box shows
    np.testing.assert_allclose(layer_boxes(shapes)[0], expected[0], atol=1e-4)
    session.close()
    assert session.prefetcher.stopped


def test_nothing_is_built_in_the_background_while_labels_are_drawn(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    _, shapes = viewer.open(write_movie(tmp_path), plugin=PLUGIN)
    model = paging_registry.paging_model(shapes)
    assert shapes.text.visible  # 5 boxes a plane: labels drawn
    for plane in (1, 2, 3):
        turn(viewer, model, plane, prefetched=False)
        np.testing.assert_allclose(layer_boxes(shapes)[0], store_boxes(model, plane)[0], atol=1e-4)
