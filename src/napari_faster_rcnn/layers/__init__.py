"""The napari tier: annotations as napari layers, paging, and what the widgets do to layers.

Imports napari and ``core``, never Qt. Importing it first sets up the viewer's
process (see :mod:`.viewer_process`): every napari entry point of the plugin
comes through here before anything loads torch.
"""

from napari_faster_rcnn.layers import viewer_process  # noqa: F401 - before any module here imports torch
