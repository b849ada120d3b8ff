"""A fresh viewer survives the widgets importing torchvision (Triton next to Mesa's LLVM crashed it)."""

import subprocess
import sys

# The test suite imports torch before any viewer exists, which hides the crash; a new process shows it.
SCRIPT = """
import numpy as np
import napari
from napari_faster_rcnn.core.data.annotations import Annotation

viewer = napari.Viewer()  # shown: its canvas has an OpenGL context now
viewer.add_image(np.zeros((2, 30, 30, 3), np.uint8), rgb=True)
widget = viewer.window.add_plugin_dock_widget("napari-faster-rcnn", "Tune predictions")[1]
from napari_faster_rcnn.layers.predictions import add_prediction_layer
from napari_faster_rcnn.core.prediction.thresholds import Thresholds

raw = [Annotation([[0, 0, 9, 9], [1, 1, 9, 9]], ["a", "a"], [0.9, 0.8])] * 2
add_prediction_layer(viewer, raw, Thresholds(0.5, 0.5), name="p")
widget.nms.setValue(0.3)  # runs torchvision's NMS in this process
print("kept", len(viewer.layers["p"].data))
viewer.close()
"""


def test_tuning_in_a_fresh_viewer_process_does_not_crash():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "kept 1" in result.stdout
