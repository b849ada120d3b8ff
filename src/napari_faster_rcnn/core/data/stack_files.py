"""Stacks read as data: TIFF, OME-TIFF and Zarr files with leading dimensions (time, z) before
each plane's rows and columns.

A stack's layout (:class:`SeriesLayout`: its axes, plane size and dtype) comes from the
header alone, through tifffile's first series or the Zarr store's arrays (OME-NGFF axes
where the store names them, else :func:`guess_axes`). Its planes are read lazily:
:func:`open_stack_array` and :func:`open_stack` decode nothing, and :func:`read_plane`
decodes one plane (or one region of it) as ``(H, W, 3)``, channels chosen as for a 2-D
image (:func:`~.channels.select_channels`). A 2-D image read by :func:`~.images.read_image`
that is a stack gives its first plane.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_faster_rcnn.core.data.channels import select_channels
from napari_faster_rcnn.core.data.image_files import TIFF_SUFFIXES, ImageReadError


@dataclass(frozen=True)
class SeriesLayout:
    """The axes of an image file or store as tifffile's first series (or Zarr) gives them.

    ``axes`` has one letter per dimension: ``Y`` and ``X`` the rows and columns, ``C`` a
    microscope's channels, ``S`` a pixel's samples (RGB), any other (``T``, ``Z``, ``Q``,
    ``I``, ...) a leading dimension, whose coordinates name a plane.
    """

    shape: tuple[int, ...]
    axes: str
    dtype: np.dtype | None = None

    @property
    def leading(self) -> tuple[int, ...]:
        """The sizes of the leading (plane) dimensions, in stored order; ``()`` for one plane."""
        return tuple(side for side, axis in zip(self.shape, self.axes) if axis not in "YXCS")

    @property
    def channel_axis(self) -> str | None:
        """``"C"`` (a microscope's channels), ``"S"`` (RGB samples) or None (gray)."""
        return "C" if "C" in self.axes else "S" if "S" in self.axes else None

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)`` of a plane."""
        return self.shape[self.axes.index("Y")], self.shape[self.axes.index("X")]


def series_layout(path: str | Path) -> SeriesLayout | None:
    """The :class:`SeriesLayout` of a TIFF/OME-TIFF (its first series) or a Zarr store; None for
    other files and for those tifffile or zarr cannot read (the other readers name the problem)."""
    path = Path(path)
    if path.is_dir():
        try:
            import zarr

            arrays, axes = zarr_arrays(zarr.open(str(path), mode="r"), path)
        except Exception:  # noqa: BLE001 - not a Zarr store zarr reads
            return None
        return SeriesLayout(tuple(int(side) for side in arrays[0].shape), axes, np.dtype(arrays[0].dtype))
    if path.suffix.lower() not in TIFF_SUFFIXES:
        return None
    try:
        import tifffile

        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            shape, axes, dtype = tuple(int(side) for side in series.shape), str(series.axes), series.dtype
    except Exception:  # noqa: BLE001 - not a TIFF tifffile reads as a series
        return None
    if "Y" not in axes or "X" not in axes or len(axes) != len(shape):
        return None
    return SeriesLayout(shape, axes, None if dtype is None else np.dtype(dtype))


def stack_shape(path: str | Path) -> tuple[int, ...] | None:
    """The leading dimensions (time, z, ...) of a TIFF/OME-TIFF or Zarr stack from its header, or
    None for a single-plane image or a file tifffile (or zarr) cannot read as a series. A channel
    axis (``C``) and RGB samples are never leading: the planes of a stack are its times and depths."""
    layout = series_layout(path)
    if layout is None:
        return None
    leading = layout.leading
    if not leading or int(np.prod(leading)) <= 1:
        return None
    return leading


def open_stack_array(path: str | Path):
    """A TIFF/OME-TIFF or Zarr stack as a lazy array ``(*leading, height, width[, channels])``:
    the leading (plane) axes in stored order, then rows, columns and the channel axis, if any.

    Nothing is decoded here: tifffile's zarr store (or the Zarr store itself) reads a chunk
    when it is asked for. Where the stored axes are already in that order this is the zarr
    array itself, which napari slices directly, without a task graph per step of the slider;
    otherwise a transposed dask array. Raises :class:`ImageReadError` naming the file when it
    is not a stack tifffile or zarr can read.
    """
    path = Path(path)
    layout = series_layout(path)
    try:
        import dask.array
        import zarr

        if path.is_dir():
            array = zarr_arrays(zarr.open(str(path), mode="r"), path)[0][0]
        else:
            import tifffile

            store = tifffile.imread(path, aszarr=True, series=0, level=0)
            array = zarr.open(store, mode="r")
    except Exception as error:
        raise ImageReadError(path, f"not a readable stack ({error})") from None
    if layout is None or tuple(array.shape) != layout.shape:
        raise ImageReadError(path, f"not a readable stack (shape {tuple(array.shape)})")
    if "C" in layout.axes and "S" in layout.axes:
        raise ImageReadError(path, f"both channels (C) and colour samples (S) in axes {layout.axes}: not supported")
    if array.ndim < 3:
        raise ImageReadError(path, f"not a stack: shape {array.shape}")
    order = [index for index, axis in enumerate(layout.axes) if axis not in "YXCS"]
    order += [layout.axes.index("Y"), layout.axes.index("X")]
    if layout.channel_axis is not None:
        order.append(layout.axes.index(layout.channel_axis))
    if order == list(range(array.ndim)):
        return array
    return dask.array.from_zarr(array).transpose(order)


def open_stack(path: str | Path):
    """A TIFF/OME-TIFF or Zarr stack as a lazy dask array ``(*leading, height, width[, channels])``
    (see :func:`open_stack_array`)."""
    import dask.array

    array = open_stack_array(path)
    return array if isinstance(array, dask.array.Array) else dask.array.from_zarr(array)


def read_plane(path: str | Path, plane, channels=None, stack=None, layout=None, region=None) -> np.ndarray:
    """One plane (its leading coordinates) of a stack as ``(H, W, 3)``, as :func:`~.images.read_image` gives
    a 2-D image, channels chosen by ``channels`` (see :func:`~.channels.select_channels`); only that plane
    is decoded. ``stack`` and ``layout``: the file's :func:`open_stack` and :func:`series_layout`,
    when the caller keeps them for several planes (opening and parsing the file's layout cost more
    than reading a 1024 x 1024 plane). ``region``: ``(x0, y0, x1, y1)``, only those pixels of the
    plane (``[y0:y1, x0:x1]``; only the chunks under them are read)."""
    plane = tuple(int(value) for value in np.asarray(plane, dtype=np.int64).reshape(-1))
    stack = open_stack(path) if stack is None else stack
    layout = series_layout(path) if layout is None else layout
    leading = layout.leading
    if len(plane) != len(leading) or any(not 0 <= v < s for v, s in zip(plane, leading)):
        raise ImageReadError(path, f"no plane {list(plane)} in a stack of {len(leading)} leading dimension(s) "
                                   f"{tuple(leading)}")
    if region is None:
        pixels = np.asarray(stack[plane])
    else:
        x0, y0, x1, y1 = (int(v) for v in region)
        height, width = layout.size
        if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
            raise ImageReadError(path, f"no region {[x0, y0, x1, y1]} in a plane of {width} x {height} pixels")
        pixels = np.asarray(stack[plane + (slice(y0, y1), slice(x0, x1))])
    if pixels.dtype.kind == "b":
        pixels = np.where(pixels, np.uint8(255), np.uint8(0))
    return select_channels(pixels, channels, path, axis=layout.channel_axis or "S")


# --- Zarr -------------------------------------------------------------------------


def zarr_arrays(node, path: Path):
    """The arrays of a zarr node (the full resolution first) and their axes letters (see
    :class:`SeriesLayout`): OME-NGFF axes where the store names them, else :func:`guess_axes`."""
    import zarr

    if isinstance(node, zarr.Array):
        return [node], guess_axes(node.shape, path)
    attributes = dict(node.attrs)
    multiscales = attributes.get("multiscales") or attributes.get("ome", {}).get("multiscales")
    if multiscales:
        first = multiscales[0]
        arrays = [node[dataset["path"]] for dataset in first["datasets"]]
        names = [axis["name"] if isinstance(axis, dict) else axis for axis in first.get("axes", [])]
        if names and len(names) == arrays[0].ndim:
            axes = "".join({"y": "Y", "x": "X", "c": "C", "t": "T", "z": "Z"}.get(name.lower(), "Q")
                           for name in names)
            if "Y" in axes and "X" in axes:
                return arrays, axes
        return arrays, guess_axes(arrays[0].shape, path)
    keys = sorted(node.array_keys())
    if not keys:
        raise ImageReadError(path, "a Zarr group with no array")
    array = node[keys[0]]
    return [array], guess_axes(array.shape, path)


def guess_axes(shape, path: Path) -> str:
    """Axes of an array without names: ``YX``; ``YXS`` when the last side is 1 to 4 (RGB(A));
    ``SYX`` for three dimensions whose first is 1 to 4; otherwise the last two (or, before
    a last side of 1 to 4, the two before it) are rows and columns and all before them
    are leading (``T``): a (time, z, height, width) stack."""
    shape = tuple(int(side) for side in shape)
    if len(shape) == 2:
        return "YX"
    if len(shape) >= 3 and shape[-1] in (1, 2, 3, 4):
        return "T" * (len(shape) - 3) + "YXS"
    if len(shape) == 3 and shape[0] in (1, 2, 3, 4):
        return "SYX"
    if len(shape) >= 3:
        return "T" * (len(shape) - 2) + "YX"
    raise ImageReadError(path, f"shape {shape} is not an image")
