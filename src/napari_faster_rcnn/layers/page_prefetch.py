"""Page turns of a box layer paged one page at a time (a stack's planes, a folder's pages): the shapes
napari draws for a page, built before the turn.

napari's ``Shapes.add`` builds one shape object per box (40-100 ms for 500 boxes). Here a page turn
hands the layer shapes built beforehand (:class:`PlanePaging`): the pages next to the one shown are
built on a background thread (:class:`PlanePrefetcher`), any other page's rectangles and shape list
are filled in with numpy for all boxes at once (:mod:`~.shape_fill`, checked against napari's own), and
the layer keeps its compiled shaders (:func:`keep_shaders`). The layer itself changes on the main
thread only; a napari without the internals used pages through the public path. No Qt here.
"""

from __future__ import annotations

import concurrent.futures
import copy
import threading
import weakref

import numpy as np

from napari_faster_rcnn.core.data.annotations import Annotation
from napari_faster_rcnn.layers import box_colors, conventions
from napari_faster_rcnn.layers.page_boxes import fit_text, rectangles_at, refresh_held
from napari_faster_rcnn.layers.shape_fill import add_shapes, fills_rectangles, make_rectangles, shape_internals

#: the layer attributes the prebuilt path sets (napari 0.9's ``Shapes._add_shapes`` sets them)
_LAYER_INTERNALS = ("_data_view", "_slice_input", "_data_slice", "_update_dims", "_display_order_stored",
                    "_ndisplay_stored", "_finish_drawing")

#: seconds a prefetch waits before it builds: the page just turned paints first, and a slider dragged or a
#: key held builds nothing (one Python thread runs at a time: a build during a paint slows the paint;
#: measured with 0.1 s: pages with 500 labels drawn 90 ms slower)
PREFETCH_DELAY = 0.25

_BUILDER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="napari-faster-rcnn-planes")


class _Prefetch:
    """One plane's napari shapes, being built (or built) on the prefetch thread."""

    def __init__(self, key, fingerprint, job):
        self.key, self.fingerprint = key, fingerprint
        self.cancelled, self.started = threading.Event(), threading.Event()
        self.future = _BUILDER.submit(self._run, job)

    def _run(self, job):
        if self.cancelled.wait(PREFETCH_DELAY):
            return None
        self.started.set()
        return job(self.cancelled)

    def cancel(self) -> None:
        self.cancelled.set()
        self.future.cancel()

    def result(self):
        """The built shape list, waiting for a build under way; None when it has not started or failed."""
        if not self.started.is_set() and not self.future.done():
            self.cancel()
            return None
        try:
            return self.future.result()
        except Exception:  # noqa: BLE001 (a failed build: the plane is built on the main thread as always)
            return None


def _fingerprint(annotation: Annotation) -> tuple:
    """What a plane's boxes look like (a prefetch of other boxes than the store's now is stale)."""
    return len(annotation), np.asarray(annotation.boxes, dtype=np.float64).tobytes(), tuple(annotation.labels)


def _build_plane(internals, vertices, edge, face, width, order, ndisplay, slice_key, cancelled):
    """napari's shape list of one plane's rectangles, as ``Shapes.add`` builds it (off the main thread:
    it touches no layer); None when ``cancelled``."""
    rectangle, shape_list = internals
    shapes = make_rectangles(rectangle, vertices, width, order, ndisplay)
    if shapes is None:  # one napari shape object per box, as ``Shapes.add`` makes them
        shapes = []
        for number, corners in enumerate(vertices):
            if number % 50 == 0 and cancelled.is_set():
                return None
            shapes.append(rectangle(corners, edge_width=width, z_index=0, dims_order=order, ndisplay=ndisplay))
    if cancelled.is_set():
        return None
    view = shape_list(ndisplay=ndisplay)
    view.slice_key = slice_key
    add_shapes(view, shapes, face, edge)
    view._update_z_order()
    return view


class PlanePrefetcher:
    """Builds napari's shapes of the planes next to the one shown on a background thread, so that
    turning to them only hands the built shape list to the layer (napari's ``Shapes.add`` builds a
    shape object per box: 40-100 ms for 500 boxes). The layer itself changes on the main thread only.

    A prefetched plane is used only when its boxes, labels, class colours and the layer's drawing
    settings are still those it was built from (:meth:`take`); anything else, or a napari without
    the internals used (:func:`shape_internals`), shows the plane through the public path.
    """

    def __init__(self, layer):
        self.layer = layer
        self.internals = shape_internals()
        if any(not hasattr(layer, name) for name in _LAYER_INTERNALS):
            self.internals = None
        self._jobs: dict[int, _Prefetch] = {}
        self.stopped = False
        self.used = 0  # planes shown from a prefetch (for tests and benchmarks)

    def _settings(self, depth: int):
        """The layer's drawing settings a plane's shapes depend on, or None when only the public path fits
        (a 3-D view, or leading dimensions that are not the ones sliced)."""
        layer = self.layer
        if self.internals is None:
            return None
        slicing = layer._slice_input
        if slicing.ndisplay != 2 or list(slicing.not_displayed) != list(range(depth)):
            return None
        from napari.utils.colormaps.standardize_color import transform_color

        face = tuple(float(v) for v in transform_color(layer.current_face_color)[0])
        return (layer.current_edge_width, tuple(slicing.order), int(slicing.ndisplay), face)

    def _job(self, annotation: Annotation, plane, colors):
        """``(key, build)`` for a plane: what it is built from, and ``build(cancelled)`` making its shape
        list; None when only the public path fits."""
        settings = self._settings(len(plane))
        if settings is None or not len(annotation) or conventions.windowed(len(annotation)):
            return None
        width, order, ndisplay, face = settings
        internals = self.internals
        scores = annotation.scores if self.layer.metadata.get(conventions.LAYER_ROLE) == conventions.PREDICTIONS \
            else None

        def build(cancelled):  # (on the prefetch thread: everything a page turn needs that touches no layer)
            vertices = rectangles_at(annotation.boxes, plane)
            labels = list(annotation.labels)
            edge = np.asarray(box_colors.edge_colors(labels, colors), dtype=np.float32)
            faces = np.tile(np.asarray(face, dtype=np.float32), (len(annotation), 1))
            view = _build_plane(internals, vertices, edge, faces, width, order, ndisplay,
                                np.asarray(plane, dtype=np.float64), cancelled)
            return None if view is None else (view, conventions.features_frame(labels, scores))

        return (settings, plane, tuple(sorted(colors.items()))), build

    def request(self, plans: dict) -> None:
        """Build ``{index: (annotation, plane, colors)}`` in the background; other requests are dropped."""
        for index in [i for i in self._jobs if i not in plans]:
            self._jobs.pop(index).cancel()
        for index, (annotation, plane, colors) in plans.items():
            if self.stopped:
                return
            fingerprint = _fingerprint(annotation)
            job = self._jobs.get(index)
            planned = self._job(annotation, plane, colors)
            if planned is None:
                continue
            key, build = planned
            if job is not None and job.key == key and job.fingerprint == fingerprint and not job.cancelled.is_set():
                continue
            if job is not None:
                job.cancel()
            self._jobs[index] = _Prefetch(key, fingerprint, build)

    def fills_rectangles(self, depth: int) -> bool:
        """Whether a plane's rectangles are filled in fast (:func:`make_rectangles`) with the layer's settings."""
        settings = self._settings(depth)
        return settings is not None and fills_rectangles(self.internals[0], *settings[:3])

    def build_now(self, annotation: Annotation, plane, colors):
        """``(shape list, features table)`` of a plane, built on the calling thread (None: only the public
        path fits)."""
        planned = self._job(annotation, plane, colors)
        return None if planned is None else planned[1](threading.Event())

    def take(self, index: int, annotation: Annotation, plane, colors):
        """``(shape list, features table)`` built for plane ``index`` if it still shows ``annotation`` as the
        layer would now (else None); they are handed out once."""
        job = self._jobs.pop(index, None)
        if job is None:
            return None
        settings = self._settings(len(plane))
        if (settings is None or job.key != (settings, plane, tuple(sorted(colors.items())))
                or job.fingerprint != _fingerprint(annotation)):
            job.cancel()
            return None
        return job.result()

    def wait(self, timeout: float = 10.0) -> bool:
        """Wait until the planes requested are built (tests, benchmarks); returns whether they are."""
        futures = [job.future for job in self._jobs.values()]
        done, _ = concurrent.futures.wait(futures, timeout=timeout)
        return len(done) == len(futures)

    def cancel(self, stop: bool = False) -> None:
        """Drop every prefetch (with ``stop``, for good: the layer is no longer paged)."""
        self.stopped = self.stopped or stop
        for job in self._jobs.values():
            job.cancel()
        self._jobs.clear()


def show_prebuilt(layer, annotation: Annotation, view, colors: dict[str, str], features=None) -> None:
    """Replace everything in ``layer`` with ``annotation``'s boxes given as ``view``, napari's shape list
    already built for them (:class:`PlanePrefetcher`), as :func:`~.page_boxes.show_boxes` would show them
    (``features``: their features table, when built with them)."""
    labels = list(annotation.labels)
    if features is None:
        scores = annotation.scores if layer.metadata.get(conventions.LAYER_ROLE) == conventions.PREDICTIONS else None
        features = conventions.features_frame(labels, scores)
    defaults = layer.feature_defaults.copy()
    if not conventions.text_fits(len(labels)):
        fit_text(layer, len(labels))
    with layer.events.blocker_all(), layer.text.events.blocker_all(), refresh_held(layer):
        layer.selected_data = set()
        layer._finish_drawing()  # (as setting ``data`` does: a shape being drawn ends)
        view.slice_key = np.array(layer._data_slice.point)[layer._slice_input.not_displayed]
        layer._data_view = view
        layer._display_order_stored = copy.copy(layer._slice_input.order)
        layer._ndisplay_stored = copy.copy(layer._slice_input.ndisplay)
        layer._update_dims()
        layer.features = features
        layer.feature_defaults = defaults
    fit_text(layer, len(labels))
    layer.refresh()


def keep_shaders(viewer, layer) -> bool:
    """Let the box layer's meshes keep their compiled shaders when their data change.

    vispy's ``MeshVisual`` builds a new (identical) colour function on every data update, which
    makes it compile and link its shader program again on the next paint: twice per page turn
    (the boxes and their highlight), 20-50 ms under Mesa's software OpenGL. Here each of this
    layer's meshes keeps the one it built, for plain colours (colormapped values as vispy does).
    Returns whether the meshes were found (napari's Qt viewer; not a headless model)."""
    try:
        node = viewer.window._qt_viewer.canvas.layer_to_visual[layer].node
        meshes = [node.shape_faces, node.shape_highlights]
    except (AttributeError, KeyError, RuntimeError):
        return False
    for mesh in meshes:
        if "_build_color_transform" in vars(mesh):
            continue
        build = type(mesh)._build_color_transform
        kept: list = []

        def color_transform(colors, build=build, mesh=weakref.ref(mesh), kept=kept):
            if colors.ndim == 2 and colors.shape[1] == 1:  # values through a colormap: as vispy does
                return build(mesh(), colors)
            if not kept:
                kept.append(build(mesh(), colors))
            return kept[0]

        try:
            mesh.unfreeze()
            mesh._build_color_transform = color_transform
            mesh.freeze()
        except AttributeError:
            return False
    return True


#: Boxes drawn in a paged box layer's thumbnail in the layer list (napari draws up to 100, a polygon mask
#: each, on every page turn: 2-3 ms of a turn; a 32 px thumbnail shows no difference).
THUMBNAIL_SHAPES = 20


def small_thumbnail(layer) -> None:
    """Draw at most :data:`THUMBNAIL_SHAPES` boxes in ``layer``'s thumbnail (napari 0.9's
    ``_max_shapes_thumbnail``; nothing changes on a napari without it)."""
    if getattr(layer, "_max_shapes_thumbnail", 0) > THUMBNAIL_SHAPES:
        layer._max_shapes_thumbnail = THUMBNAIL_SHAPES


class PlanePaging:
    """For a :class:`~.slice_view.SliceBoxes` paging a stack read as data (the reader's
    :class:`~.stack_labeling.StackPages`, Label boxes' session) or the pages of a folder (the reader's
    :class:`~.folder_pages.FolderPages`, a folder's layers in Label boxes): page turns hand napari
    shapes built in the background or filled in at once (see :class:`PlanePrefetcher`) to the layer,
    and the layer keeps its compiled shaders (:func:`keep_shaders`). Put it before ``SliceBoxes`` in
    the bases; a 2-D layer is paged as ``SliceBoxes`` pages it."""

    prefetcher: PlanePrefetcher | None = None

    def page_lead(self, index: int) -> tuple[int, ...] | None:
        """What leads page ``index``'s vertices, as a tuple: a stack's plane coordinates, or ``(index,)``
        for the pages of a folder or of a stack of images (None: a 2-D layer, paged as it is)."""
        at = self.lead(index)
        if at is None or isinstance(at, tuple):
            return at
        return (int(at),)

    def show(self, index: int) -> None:
        """Show plane ``index``: from the shapes built for it in the background when they still fit
        (see :class:`PlanePrefetcher`), else as :meth:`SliceBoxes.show` does; then the planes
        before and after it are built in the background."""
        if self.page_lead(index) is None:
            super().show(index)
            return
        prefetcher = self.prefetcher
        if prefetcher is None:
            prefetcher = self.prefetcher = PlanePrefetcher(self.layer)
            keep_shaders(self.viewer, self.layer)
            small_thumbnail(self.layer)
        annotation = self.annotations[index] if self.annotations else Annotation()
        at = self.page_lead(index)
        view = None
        if index != self.current and len(annotation) and not conventions.windowed(len(annotation)):
            view = prefetcher.take(index, annotation, at, self.colors)
            if view is not None:
                prefetcher.used += 1
            elif prefetcher.fills_rectangles(len(at)):
                view = prefetcher.build_now(annotation, at, self.colors)
        if view is None:
            super().show(index)
        else:
            self._rest, self._covered, self.window_note = None, None, ""
            self._hide_display()
            shapes, features = view
            show_prebuilt(self.layer, annotation, shapes, self.colors, features)
            self.current = index
            self._shown = self.read_current()
        if not prefetcher.stopped:
            self.prefetch_around(index)

    def prefetch_around(self, index: int) -> None:
        """Build the planes just before and after ``index`` (in plane order) in the background; not while
        the layer draws its labels (their paint is long, and a build during it slows it: 500 labels,
        100 ms a page; a plane of up to :data:`~.conventions.TEXT_LIMIT` boxes is built at once anyway).
        A folder's pages of its image layer are read ahead too (see
        :mod:`~napari_faster_rcnn.core.data.read_ahead`)."""
        self.read_images_ahead(index)
        if self.layer.text.visible and len(self.layer.text.values):
            self.prefetcher.request({})
            return
        count = len(self.annotations)
        colors = self.colors
        self.prefetcher.request({near: (self.annotations[near], self.page_lead(near), colors)
                                 for near in (index + 1, index - 1) if 0 <= near < count})

    def read_images_ahead(self, index: int) -> bool:
        """Read the pages before and after ``index`` of the image layer under the boxes ahead, when it is
        a folder's lazy stack of pages (not a stack's planes: napari reads a plane of its own array
        fast); returns whether it is."""
        from napari_faster_rcnn.core.data.read_ahead import read_ahead

        if self.planes_shape is not None:
            return False
        image = getattr(self, "image_layer", None) or conventions.image_showing_sources(self.viewer, self.layer)
        if image is None or getattr(image, "multiscale", False):
            return False
        return read_ahead(image.data, (index + 1, index - 1))

    def stop_prefetching(self) -> None:
        """No more background builds (the layer is no longer paged by this model)."""
        if self.prefetcher is not None:
            self.prefetcher.cancel(stop=True)
