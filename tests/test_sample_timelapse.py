"""The synthetic 16-bit nuclei time-lapse in File > Open Sample (issue 13)."""

import numpy as np
from scipy import ndimage

from napari_faster_rcnn.core.data.synthetic_timelapse import nuclei_timelapse
from napari_faster_rcnn.layers import conventions, stack_labeling


def test_timelapse_opens_as_a_stack_with_its_box_layer(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-faster-rcnn", "nuclei-timelapse")
    image, shapes = viewer.layers
    assert image.data.shape == (10, 160, 160) and image.data.dtype == np.uint16
    assert image.data.max() > 1000  # 16-bit values, not 8-bit
    assert shapes.ndim == 3 and len(shapes.data) > 0
    assert set(shapes.features["label"]) == {"nucleus"}
    assert stack_labeling.plane_counts(viewer, shapes) == (5, 10)
    viewer.layers.selection = {shapes}
    viewer.layers.save(str(tmp_path / "nuclei.pt"), selected=True, plugin="napari-faster-rcnn")
    assert (tmp_path / "nuclei.pt").is_file() and len(list(tmp_path.iterdir())) == 1
    assert shapes.metadata[conventions.LABELED_PLANES] == [[f] for f in range(5)]


def test_nuclei_move_divide_and_their_boxes_frame_them():
    stack, annotation = nuclei_timelapse(seed=0)
    again, _ = nuclei_timelapse(seed=0)
    np.testing.assert_array_equal(stack, again)  # deterministic
    counts = [len(annotation.on_plane([f])) for f in range(5)]
    assert counts[-1] > counts[0]  # nuclei divided
    first = annotation.on_plane([0]).boxes
    later = annotation.on_plane([4]).boxes
    assert not np.allclose(first[: len(first)], later[: len(first)])  # they moved
    # every bright object of frame 0 (found independently, by thresholding) lies in a box
    objects, count = ndimage.label(ndimage.gaussian_filter(stack[0].astype(float), 1) > 700)
    centres = ndimage.center_of_mass(objects > 0, objects, range(1, count + 1))
    for y, x in centres:
        assert any(b[0] <= x <= b[2] and b[1] <= y <= b[3] for b in first)
