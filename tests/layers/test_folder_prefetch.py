"""A folder's pages turn as a stack's planes do (issue 13: "paging ... under 50 ms, as for folders"):
the page next to the one shown is built in the background, any other page's rectangles are filled in
at once, and either shows exactly the store's boxes, as napari's public path (``Shapes.add``) shows them."""

import numpy as np
import tifffile

from napari_faster_rcnn.core.data.annotations import Annotation, save_annotation
from napari_faster_rcnn.core.data.boxes import boxes_to_rectangles
from napari_faster_rcnn.layers import page_boxes, page_prefetch, paging_registry
from napari_faster_rcnn.layers.folder_pages import FolderPages
from tests.conftest import write_image
from tests.layers.test_stack_prefetch import assert_same, layer_boxes, state, turn

PLUGIN = "napari-faster-rcnn"


def random_boxes(rng, count, size=40):
    corner = rng.uniform(0, size - 14, (count, 2))
    return np.concatenate([corner, corner + rng.uniform(3, 12, corner.shape)], axis=1)


def mixed_folder(tmp_path, per_page=5):
    """a.png, b.png (48 x 64, labeled) and movie.tif (4 planes, all labeled), ``per_page`` boxes everywhere."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    rng = np.random.default_rng(5)
    for seed, name in enumerate(("a", "b")):
        write_image(folder / f"{name}.png", 48, 64, seed=seed)
        save_annotation(folder / f"{name}.json", Annotation(random_boxes(rng, per_page), ["cell"] * per_page))
    tifffile.imwrite(folder / "movie.tif", np.zeros((4, 48, 64), np.uint16), photometric="minisblack")
    where = np.repeat(np.arange(4), per_page)
    labels = [["cell", "debris"][i % 3 == 0] for i in range(len(where))]
    save_annotation(folder / "movie.pt", Annotation(random_boxes(rng, len(where)), labels, planes=where[:, None],
                                                    labeled_planes=np.arange(4)[:, None]))
    return folder


def reference_of(viewer, shapes, annotation, page, colors):
    """The same page shown through napari's public path, in a layer of the same settings."""
    reference = viewer.add_shapes(ndim=3, name="reference", features=shapes.features.iloc[:0],
                                  feature_defaults=shapes.feature_defaults, edge_width=shapes.current_edge_width,
                                  face_color=shapes.current_face_color)
    page_boxes.show_boxes(reference, annotation, page, colors)
    return reference


def test_a_folders_next_page_is_prebuilt_and_shows_as_the_public_path_does(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    _, shapes = viewer.open(mixed_folder(tmp_path), plugin=PLUGIN)
    shapes.text.visible = False  # (labels drawn: nothing is built in the background)
    model = paging_registry.paging_model(shapes)
    assert isinstance(model, FolderPages) and isinstance(model, page_prefetch.PlanePaging)
    viewer.dims.set_current_step(0, 0)
    model.prefetch_around(model.current)
    for page in (1, 2, 3):  # b.png, then the stack's planes 0 and 1: each the page after the one shown
        turn(viewer, model, page)
        expected = model.store.annotations[page]
        boxes, labels = layer_boxes(shapes)
        np.testing.assert_allclose(boxes, expected.boxes, atol=1e-4)
        assert labels == list(expected.labels) and len(labels) == 5
        fast = state(shapes)
        reference = reference_of(viewer, shapes, expected, page, model.colors)
        assert_same(fast, state(reference))
        viewer.layers.remove(reference)
    turn(viewer, model, 0, prefetched=False)  # three pages back: filled in at once, the same boxes
    np.testing.assert_allclose(layer_boxes(shapes)[0], model.store.annotations[0].boxes, atol=1e-4)
    model.disconnect()
    assert model.prefetcher.stopped


def test_an_edit_on_a_prebuilt_folder_page_goes_to_its_file_and_a_stale_build_never_shows(make_napari_viewer,
                                                                                        tmp_path):
    from napari_faster_rcnn.layers.labeling import labeling_session

    folder = tmp_path / "plain"
    folder.mkdir()
    rng = np.random.default_rng(2)
    for seed, name in enumerate(("a", "b", "c")):
        write_image(folder / f"{name}.png", 48, 64, seed=seed)
        save_annotation(folder / f"{name}.json", Annotation(random_boxes(rng, 4), ["cell"] * 4))
    viewer = make_napari_viewer()
    _, shapes = viewer.open(folder, plugin=PLUGIN)
    session = labeling_session(viewer, shapes, autosave=False)
    shapes.text.visible = False  # (labels drawn: nothing is built in the background)
    assert isinstance(session, page_prefetch.PlanePaging) and session.page_lead(1) == (1,)
    viewer.dims.set_current_step(0, 0)  # a.png (napari starts in the middle)
    session.prefetch_around(session.current)
    turn(viewer, session, 1)  # b.png, prebuilt
    (rectangle,) = boxes_to_rectangles(np.array([[30.0, 20.0, 40.0, 30.0]]))
    shapes.add_rectangles([np.concatenate([np.full((4, 1), 1.0), rectangle], axis=1)])  # drawn on b.png
    drawn = layer_boxes(shapes)
    assert len(drawn[1]) == 5
    turn(viewer, session, 2)  # c.png, prebuilt
    np.testing.assert_allclose(session.annotations[1].boxes, drawn[0], atol=1e-4)
    turn(viewer, session, 1)  # back: b.png's prebuild from before the edit is stale, so the edit shows
    np.testing.assert_allclose(layer_boxes(shapes)[0], drawn[0], atol=1e-4)
    session.close()
    assert session.prefetcher.stopped


def test_a_folders_next_image_is_read_ahead_and_napari_keeps_no_page_in_its_cache(make_napari_viewer, tmp_path):
    from napari.utils import _dask_utils

    from napari_faster_rcnn.core.data.read_ahead import page_read_ahead

    viewer = make_napari_viewer()
    image, shapes = viewer.open(mixed_folder(tmp_path), plugin=PLUGIN)
    ahead = page_read_ahead(image.data)
    assert ahead is not None
    cache = _dask_utils._DASK_CACHE.cache if _dask_utils._DASK_CACHE is not None else None
    cached = cache.total_bytes if cache is not None else 0
    viewer.dims.set_current_step(0, 2)  # the stack's first plane
    assert sorted(ahead._pending) == [1, 3]  # the pages before and after it
    for future, _ in list(ahead._pending.values()):
        future.result(timeout=10)
    viewer.dims.set_current_step(0, 3)
    assert ahead.used == 1
    reference = np.repeat(tifffile.imread(tmp_path / "mixed" / "movie.tif")[1][:, :, None], 3, axis=2)
    np.testing.assert_array_equal(np.asarray(image._slice.image.raw), reference)  # what napari shows
    viewer.dims.set_current_step(0, 1)
    assert (cache.total_bytes if cache is not None else 0) == cached  # no page kept by napari
