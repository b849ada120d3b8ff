"""napari's shapes and shape lists of many rectangles, filled in with numpy for all boxes at once.

napari builds one shape object per box (``Rectangle``: 80 us a box) and then copies each one's meshes
into its shape list's arrays, box by box (``ShapeList.add``: 6-7 ms for 500 boxes). A page turn of a
box layer (:mod:`~.page_prefetch`) needs both for every box of the page. Here:

- :func:`make_rectangles` fills in napari's rectangle objects, all boxes at once, but for each edge's
  mesh (napari's own triangulation);
- :func:`add_shapes` adds shapes that all have meshes of the same sizes to a shape list with array
  operations instead of napari's loop over the shapes.

Each is checked once per napari setting against napari's own, attribute by attribute and array by
array (:func:`_same_shape`, :func:`_same_list`); where it differs (another napari, an empty or
inverted box), napari's own path is taken. No Qt here.
"""

from __future__ import annotations

import sys
import threading

import numpy as np

from napari_faster_rcnn.layers.page_boxes import rectangles_at


def shape_internals():
    """napari's ``Rectangle`` and ``ShapeList`` classes (from private modules; napari 0.9 has them),
    or None: then every plane is shown through the public ``Shapes.add``."""
    try:
        from napari.layers.shapes._shape_list import ShapeList
        from napari.layers.shapes._shapes_models import Rectangle
    except ImportError:
        return None
    return Rectangle, ShapeList



#: the attributes of napari's Rectangle that :func:`make_rectangles` fills per box (napari 0.9)
_PER_BOX = {"_data", "_bounding_box", "_face_vertices", "_edge_vertices", "_box", "data_displayed", "slice_key"}
_SHARED_ARRAYS = {"_face_triangles", "_edge_offsets", "_edge_triangles"}  # the face's the same for every box
_TEMPLATES: dict = {}  # (class, width, order, ndisplay) -> (reference rectangle, None), or None
_TEMPLATE_LOCK = threading.Lock()


def _same_array(x, y) -> bool:
    """Whether ``x`` and ``y`` are both numpy arrays of the same type, shape and values."""
    return (isinstance(x, np.ndarray) and isinstance(y, np.ndarray) and x.dtype == y.dtype and x.shape == y.shape
            and np.array_equal(x, y))


def _same_shape(a, b) -> bool:
    """Whether two napari shapes hold the same attributes (arrays: same values and types)."""
    one, two = vars(a), vars(b)
    if one.keys() != two.keys():
        return False
    for key, value in one.items():
        other = two[key]
        if isinstance(value, np.ndarray) or isinstance(other, np.ndarray):
            if not _same_array(value, other):
                return False
        elif type(value) is not type(other) or value != other:
            return False
    return True


def _template(rectangle, width, order, ndisplay):
    """``(reference, None)``: a rectangle napari made, whose attributes other than the box's own
    :func:`make_rectangles` copies; None when napari's rectangles are not what it fills in (checked
    once per settings: rectangles filled in must equal napari's own, attribute by attribute)."""
    base = next((kind for kind in rectangle.__mro__ if kind.__name__ == "Shape"), rectangle)
    shape_module = sys.modules.get(base.__module__)  # napari's Shape: its triangulation backend
    key = (rectangle, width, order, ndisplay, str(getattr(shape_module, "TRIANGULATION_BACKEND", None)))
    with _TEMPLATE_LOCK:
        if key in _TEMPLATES:
            return _TEMPLATES[key]
    found = None
    try:
        depth = len(order) - 2
        reference = rectangle(rectangles_at(np.array([[3.0, 5.0, 17.0, 11.0]]), (0,) * depth)[0], edge_width=width,
                              z_index=0, dims_order=order, ndisplay=ndisplay)
        names = set(vars(reference))
        if {n for n in names if isinstance(vars(reference)[n], np.ndarray)} <= _PER_BOX | _SHARED_ARRAYS:
            found = (reference, None)
            samples = np.array([[0.0, 0.0, 1.0, 2.0], [10.25, 7.5, 300.75, 41.0], [2000.5, 1.0, 2047.0, 2040.5]])
            leads = tuple(range(1, depth + 1))
            made = _fill_rectangles(rectangle, rectangles_at(samples, leads), found, order, ndisplay)
            own = [rectangle(v, edge_width=width, z_index=0, dims_order=order, ndisplay=ndisplay)
                   for v in rectangles_at(samples, leads)]
            if not all(_same_shape(a, b) for a, b in zip(made, own)):
                found = None
    except Exception:  # noqa: BLE001 (another napari: its own constructor, as always)
        found = None
    with _TEMPLATE_LOCK:
        _TEMPLATES[key] = found
    return found


def _fill_rectangles(rectangle, vertices, template, order, ndisplay) -> list:
    reference, _ = template
    data = np.asarray(vertices).astype(np.float32)  # (N, 4, D), as Rectangle.data stores them
    shown_axes = order[-ndisplay:]
    hidden_axes = list(order[:-ndisplay])
    shown = data[:, :, shown_axes]
    bounds = np.stack([data.min(axis=1), data.max(axis=1)], axis=1)  # (N, 2, D)
    boxes = np.stack([shown[:, 0], (shown[:, 0] + shown[:, 1]) / 2, shown[:, 1], (shown[:, 1] + shown[:, 2]) / 2,
                      shown[:, 2], (shown[:, 2] + shown[:, 3]) / 2, shown[:, 3], (shown[:, 3] + shown[:, 0]) / 2,
                      shown.mean(axis=1)], axis=1)
    keys = bounds[:, :, hidden_axes].astype("int")
    common = {name: value for name, value in vars(reference).items() if name not in _PER_BOX | _SHARED_ARRAYS}
    triangles = reference._face_triangles
    made = []
    for index in range(len(data)):
        shape = rectangle.__new__(rectangle)  # (napari picks its triangulation here)
        vars(shape).update(common)
        vars(shape).update(_data=data[index], _bounding_box=bounds[index], _box=boxes[index],
                           data_displayed=shown[index], slice_key=keys[index])
        shape._set_meshes(shown[index], face=False)  # the edge's mesh, by napari's own triangulation
        vars(shape).update(_face_vertices=shown[index], _face_triangles=triangles.copy())
        made.append(shape)
    return made


def make_rectangles(rectangle, vertices, width, order, ndisplay) -> list | None:
    """napari's rectangle objects for ``vertices`` (N x 4 x D, as :func:`~.page_boxes.rectangles_at` gives
    them), filled in with numpy for all boxes at once, but for each edge's mesh (napari's triangulation, box
    by box: its triangles' vertex order changes with the box, in about 2% of boxes) instead of napari's
    constructor (80 us a box); None when that does not give napari's own rectangles (an empty or inverted
    box; another napari)."""
    vertices = np.asarray(vertices)
    if not len(vertices):
        return []
    template = _template(rectangle, width, tuple(order), ndisplay)
    if template is None:
        return None
    shown = vertices[:, :, list(order[-ndisplay:])]
    upright = (shown[:, 2] > shown[:, 0]).all(axis=1) & (shown[:, 1, 1] > shown[:, 0, 1]) & (shown[:, 3, 0] > shown[:, 0, 0])
    if not upright.all():
        return None  # an empty or inverted box: napari's constructor
    made = _fill_rectangles(rectangle, vertices, template, tuple(order), ndisplay)
    own = rectangle(vertices[0], edge_width=width, z_index=0, dims_order=tuple(order), ndisplay=ndisplay)
    return made if _same_shape(made[0], own) else None  # (napari's settings changed since the template)


def fills_rectangles(rectangle, width, order, ndisplay) -> bool:
    """Whether :func:`make_rectangles` fills in napari's rectangles with these settings."""
    return _template(rectangle, width, tuple(order), ndisplay) is not None


def _uniform(shapes) -> tuple | None:
    """``(displayed vertices, face vertices, face triangles, edge vertices, edge offsets, edge triangles,
    edge width)`` of ``shapes`` stacked (shape first), or None when their sizes or edge widths differ."""
    try:
        stacked = tuple(np.stack([getattr(shape, name) for shape in shapes]) for name in
                        ("data_displayed", "_face_vertices", "_face_triangles", "_edge_vertices", "_edge_offsets",
                         "_edge_triangles"))
    except (ValueError, AttributeError):
        return None
    widths = {shape.edge_width for shape in shapes}
    if len(widths) != 1 or len({len(shape.data) for shape in shapes}) != 1:
        return None
    return (*stacked, widths.pop())


def _fill_list(view, shapes, face_colors, edge_colors) -> bool:
    """Add ``shapes`` to napari's shape list ``view`` as its ``add`` does (without the z-order
    refresh), each array filled for all shapes at once; False (and nothing added) when their meshes
    differ in size or their edge widths differ."""
    from napari.layers.shapes import _shape_list as module

    stacked = _uniform(shapes)
    if stacked is None:
        return False
    shown, face_vertices, face_triangles, edge_vertices, edge_offsets, edge_triangles, width = stacked
    face_colors, edge_colors = module._ensure_color_arrays(shapes, face_colors, edge_colors)
    count, per_shape, dims = shown.shape
    faces, edges = face_vertices.shape[1], edge_vertices.shape[1]
    face_count, edge_count = face_triangles.shape[1], edge_triangles.shape[1]
    sizes = (count * per_shape, count * len(shapes[0].data), count * (faces + edges), count * face_count,
             count * edge_count)
    arrays = module._preallocate_arrays(shapes, sizes)
    start_mesh, start_triangles, start_vertices = len(view._mesh.vertices), len(view._mesh.triangles), len(view._vertices)
    ends = np.arange(1, count + 1)
    arrays["z_index"][:] = [shape.z_index for shape in shapes]
    arrays["vertices"][:] = shown.reshape(-1, dims)
    arrays["vertices_index"][:] = start_vertices + ends * per_shape
    arrays["mesh_triangles_index"][:] = start_triangles + ends * (face_count + edge_count)
    arrays["mesh_vertices_index"][:] = start_mesh + ends * (faces + edges)
    mesh = arrays["mesh_vertices"].reshape(count, faces + edges, -1)
    centers = arrays["mesh_vertices_centers"].reshape(mesh.shape)
    offsets = arrays["mesh_vertices_offsets"].reshape(mesh.shape)
    mesh[:, :faces] = face_vertices
    centers[:, :faces] = face_vertices
    offsets[:, :faces] = 0
    mesh[:, faces:] = edge_vertices + width * edge_offsets  # (the scalar width: as napari computes it, box by box)
    centers[:, faces:] = edge_vertices
    offsets[:, faces:] = edge_offsets
    first = (start_mesh + (ends - 1) * (faces + edges))[:, None, None]
    triangles = arrays["mesh_triangles"].reshape(count, face_count + edge_count, 3)
    triangles[:, :face_count] = face_triangles + first
    triangles[:, face_count:] = edge_triangles + first + faces
    colors = arrays["mesh_triangles_colors"].reshape(count, face_count + edge_count, 4)
    colors[:, :face_count] = face_colors[:, None]
    colors[:, face_count:] = edge_colors[:, None]
    view._extend_meshes(face_colors, edge_colors, arrays)
    view.shapes.extend(shapes)
    view._clear_cache()
    return True


def _same_list(one, two) -> bool:
    """Whether two napari shape lists hold the same shapes and the same arrays (values and types)."""
    if one.shapes != two.shapes:
        return False
    for a, b in ((vars(one), vars(two)), (vars(one._mesh), vars(two._mesh))):
        for key in a.keys() | b.keys():
            x, y = a.get(key), b.get(key)
            if (isinstance(x, np.ndarray) or isinstance(y, np.ndarray)) and not _same_array(x, y):
                return False
    return True


_LIST_CHECKS: dict = {}  # (shape list class, ndisplay, shape class, backend) -> whether _fill_list is napari's add


def _list_fill_checked(view, shapes) -> bool:
    """Whether :func:`_fill_list` gives what napari's own ``add`` gives for shapes like ``shapes`` in a
    shape list like ``view`` (checked once per settings on three of them: a new shape list filled both
    ways, array by array, after shapes already in it)."""
    kind = type(shapes[0])
    base = next((parent for parent in kind.__mro__ if parent.__name__ == "Shape"), kind)
    backend = str(getattr(sys.modules.get(base.__module__), "TRIANGULATION_BACKEND", None))
    key = (type(view), view.ndisplay, kind, backend)
    with _TEMPLATE_LOCK:
        if key in _LIST_CHECKS:
            return _LIST_CHECKS[key]
    same = False
    try:
        sample = list(shapes[:3])
        colors = np.linspace(0.1, 0.9, 4 * len(sample), dtype=np.float32).reshape(-1, 4)
        own, ours = type(view)(ndisplay=view.ndisplay), type(view)(ndisplay=view.ndisplay)
        for target in (own, ours):  # a shape already there: the second add starts after it
            target.add(shape=sample[:1], face_color=colors[:1], edge_color=colors[:1], z_refresh=False)
        own.add(shape=sample, face_color=colors, edge_color=colors[::-1], z_refresh=False)
        same = _fill_list(ours, sample, colors, colors[::-1]) and _same_list(own, ours)
    except Exception:  # noqa: BLE001 (another napari: its own add, as always)
        same = False
    with _TEMPLATE_LOCK:
        _LIST_CHECKS[key] = same
    return same


def add_shapes(view, shapes, face_colors, edge_colors) -> None:
    """Add ``shapes`` (napari shape objects) to napari's shape list ``view`` with these colours, as
    ``view.add(shapes, ..., z_refresh=False)`` does; filled with array operations (:func:`_fill_list`)
    when the shapes' meshes all have the same sizes and that was checked to equal napari's own add."""
    shapes = list(shapes)
    if shapes and _list_fill_checked(view, shapes) and _fill_list(view, shapes, face_colors, edge_colors):
        return
    view.add(shape=shapes, face_color=face_colors, edge_color=edge_colors, z_refresh=False)
