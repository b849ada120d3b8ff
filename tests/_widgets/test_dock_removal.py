"""Closing a dock with its "x": napari takes the widget out of its dock without a close event, and the
widget must still let go of the viewer (no more layers drawn, keys given back, combos left alone)."""

import numpy as np
from qtpy.QtWidgets import QApplication

PLUGIN = "napari-faster-rcnn"
WIDGETS = ("Anchor boxes", "Dataset statistics", "Evaluate", "Label boxes", "Predict", "Tune predictions",
           "Train detector")


def keymap(viewer) -> dict:
    return {str(key): function for key, function in viewer.keymap.items()}


def test_the_dock_x_lets_go_of_the_viewer_even_while_the_widget_lives_on(make_napari_viewer):
    viewer = make_napari_viewer()
    keys = keymap(viewer)
    docks, widgets = [], []  # held here, as a running worker or a reference cycle can keep a widget alive
    for name in WIDGETS:
        dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, name)
        docks.append(dock)
        widgets.append(widget)
    assert keymap(viewer) != keys  # Label boxes binds n, b and 1-9 on the viewer
    viewer.add_image(np.zeros((64, 64, 3), np.uint8), rgb=True, name="first")
    QApplication.processEvents()
    assert any(layer.name.startswith("anchors · ") for layer in viewer.layers)  # Anchor boxes draws at once

    for dock in docks:
        dock.destroyOnClose()  # what the dock's x button does
    QApplication.processEvents()
    assert keymap(viewer) == keys  # the viewer's own keys are back
    viewer.layers.clear()
    viewer.add_image(np.zeros((64, 64, 3), np.uint8), rgb=True, name="second")
    QApplication.processEvents()
    assert [layer.name for layer in viewer.layers] == ["second"]  # no anchors drawn for a widget that is gone
    anchors = widgets[WIDGETS.index("Anchor boxes")]
    combo = anchors.image_layer
    assert "second" not in [combo.itemText(row) for row in range(combo.count())]  # it stopped following the viewer
