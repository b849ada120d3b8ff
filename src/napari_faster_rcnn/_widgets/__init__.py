"""Dock widgets: the only modules that import Qt. Each reads its controls, calls core, and puts
the result into layers."""

from napari_faster_rcnn import _triton_guard  # noqa: F401 - before anything imports torchvision in the viewer
from napari_faster_rcnn import _openmp  # noqa: F401 - before torch: OpenMP threads that leave the viewer a core
