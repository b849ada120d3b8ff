"""Subcommands of the ``napari-faster-rcnn`` command line (see :mod:`napari_faster_rcnn.cli`)."""
