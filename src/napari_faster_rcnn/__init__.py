"""napari-faster-rcnn: label, train, predict and evaluate Faster R-CNN detectors in napari.

Importing this package loads neither torch nor Qt; the heavy parts load when used.
"""

__version__ = "0.1.0"
