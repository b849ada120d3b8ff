"""The Qt-free core: boxes, annotations, datasets, models, training, inference, metrics.

Nothing under ``core`` imports napari, Qt or magicgui, so it runs on servers
and clusters; the widgets call into it.
"""
