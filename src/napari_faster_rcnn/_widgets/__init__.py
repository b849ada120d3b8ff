"""Dock widgets: the only modules that import Qt. Each reads its controls, calls one function of
the napari tier or core, and puts the result into layers."""

import napari_faster_rcnn.layers  # noqa: F401 - sets up the viewer's process before a widget imports torch
