"""Interchange formats: COCO JSON, Pascal VOC XML, YOLO txt and our own folders.

Datasets labeled in CVAT, Label Studio or Roboflow come in, ours go out. Every
reader returns a :class:`LabeledDataset` with boxes in the project's
continuous pixel xyxy (the image spans ``[0, W] x [0, H]``); every writer
takes one. Each format converts at its own border:

===========  ==========================================  ===================================
format       box on disk                                 from ours
===========  ==========================================  ===================================
``coco``     ``[x, y, w, h]``, continuous                ``[x1, y1, x2 - x1, y2 - y1]``
``voc``      ``xmin..xmax`` 1-based inclusive pixels     ``x1 + 1, y1 + 1, x2, y2``
``yolo``     ``cx cy w h`` divided by ``W`` and ``H``    ``(x1 + x2) / 2W, ..., (x2 - x1) / W``
``pt``       ours                                        ``x1, y1, x2, y2``
===========  ==========================================  ===================================

The API, for the command line and the labeling widget:

- :func:`detect_format` (folder) -> ``"coco" | "voc" | "yolo" | "pt"``, and
  :func:`matching_formats` (folder) -> every format that fits, to ask when several do
- :func:`read_dataset` (folder, fmt=None) -> :class:`LabeledDataset`
- :func:`write_dataset` (dataset, folder, fmt) -> :class:`ConversionReport`, and
  :func:`iter_write_dataset`, a generator of ``(done, total)`` for a thread worker
- :func:`convert_dataset` (source, destination, to, fmt=None) -> :class:`ConversionReport`,
  and :func:`iter_convert_dataset`

One module per format (:mod:`.coco_json`, :mod:`.pascal_voc`, :mod:`.yolo_txt`,
:mod:`.native`) documents its layouts and conventions.
"""

from napari_faster_rcnn.core.formats._common import FORMATS, FormatError, LabeledDataset, LabeledItem
from napari_faster_rcnn.core.formats.conversion import (
    FORMAT_TITLES,
    ConversionReport,
    convert_dataset,
    detect_format,
    iter_convert_dataset,
    iter_write_dataset,
    matching_formats,
    read_dataset,
    write_dataset,
)

__all__ = [
    "FORMATS",
    "FORMAT_TITLES",
    "ConversionReport",
    "FormatError",
    "LabeledDataset",
    "LabeledItem",
    "convert_dataset",
    "detect_format",
    "iter_convert_dataset",
    "iter_write_dataset",
    "matching_formats",
    "read_dataset",
    "write_dataset",
]
