"""The settings of the "Anchor boxes" widget: a preset to start from, backbone, FPN, anchor sizes
and aspect ratios as text, ``min_size`` and ``max_size``; they make a checked ``ModelConfig``.

``changed`` is emitted when a setting should be applied: at once for the choices
and the size boxes, on Enter (or leaving the field) for the text fields, and on
"Apply". What does not fit the backbone is shown in red by :meth:`show_error`.
"""

from __future__ import annotations

from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import QCheckBox, QComboBox, QFormLayout, QLabel, QLineEdit, QPushButton

from napari_faster_rcnn._widgets._common import row, size_box
from napari_faster_rcnn.core.model.anchor_inputs import anchor_settings, format_anchor_text
from napari_faster_rcnn.core.model.config import PRESETS, ModelConfig, preset
from napari_faster_rcnn.core.model.config_rules import BACKBONES, ConfigError

TOOLTIP_ROLE = 3  # Qt.ItemDataRole.ToolTipRole


def ratios_text(ratios) -> str:
    """Aspect ratios as text: one tuple when every map has the same."""
    return format_anchor_text(ratios[:1] if len(set(ratios)) == 1 else ratios)


class AnchorSettings(QObject):
    """The model settings that decide the anchors: their controls go into a form (:meth:`add_rows`)."""

    changed = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.base = preset("default", ["object"], weights="none")
        self.preset = QComboBox()
        for name, description in PRESETS.items():
            self.preset.addItem(name)
            self.preset.setItemData(self.preset.count() - 1, description, TOOLTIP_ROLE)
        self.backbone = QComboBox()
        for name, description in BACKBONES.items():
            self.backbone.addItem(name)
            self.backbone.setItemData(self.backbone.count() - 1, description, TOOLTIP_ROLE)
        self.fpn = QCheckBox("FPN")
        self.sizes, self.ratios = QLineEdit(), QLineEdit()
        self.sizes.setToolTip("anchor sizes in pixels of the resized image, one tuple per feature map: "
                              "(32,), (64,) ... or one line per map; empty: the backbone's default")
        self.ratios.setToolTip("aspect ratios (height / width), one tuple per map, or one tuple for all maps")
        self.min_size = size_box(800, "the model's min_size: each image's short side after resizing")
        self.max_size = size_box(1333, "the model's max_size: no long side passes it after resizing")
        for box in (self.min_size, self.max_size):
            box.setSuffix("")  # "min size" says pixels; the dock is narrow
            box.setMinimumWidth(96)
        self.apply_button = QPushButton("Apply")
        self.error = QLabel("")
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #ff6b6b")
        self.error.setVisible(False)

        self.preset.currentTextChanged.connect(self.use_preset)
        self.backbone.currentTextChanged.connect(self._backbone_chosen)
        self.fpn.toggled.connect(self.changed)
        for field in (self.sizes, self.ratios):
            field.editingFinished.connect(self.changed)
        self.min_size.valueChanged.connect(self.changed)
        self.max_size.valueChanged.connect(self.changed)
        self.apply_button.clicked.connect(self.changed)
        self.use_preset("default", emit=False)

    def add_rows(self, form: QFormLayout) -> None:
        form.addRow("preset", self.preset)
        form.addRow("backbone", row(self.backbone, self.fpn))
        form.addRow("sizes", self.sizes)
        form.addRow("ratios", self.ratios)
        form.addRow("min size", row(self.min_size, QLabel("max"), self.max_size))
        form.addRow(self.apply_button)
        form.addRow(self.error)

    def use_preset(self, name: str, emit: bool = True) -> None:
        """Fill every setting from a preset (its anchors, or empty fields for the backbone's default)."""
        self.base = preset(name, ["object"], weights="none")
        fields = (self.backbone, self.fpn, self.sizes, self.ratios, self.min_size, self.max_size)
        for field in fields:
            field.blockSignals(True)
        self.backbone.setCurrentText(self.base.backbone)
        self.fpn.setChecked(self.base.fpn)
        self.sizes.setText(format_anchor_text(self.base.anchor_sizes) if self.base.anchor_sizes else "")
        self.ratios.setText(ratios_text(self.base.aspect_ratios) if self.base.aspect_ratios else "")
        self.min_size.setValue(self.base.min_size)
        self.max_size.setValue(self.base.max_size)
        for field in fields:
            field.blockSignals(False)
        self.show_defaults(self.base)
        if emit:
            self.changed.emit()

    def _backbone_chosen(self, name: str) -> None:
        if name == "mobilenet_v3_large" and not self.fpn.isChecked():
            self.fpn.blockSignals(True)
            self.fpn.setChecked(True)  # it comes with FPN only
            self.fpn.blockSignals(False)
        self.changed.emit()

    def show_defaults(self, config: ModelConfig) -> None:
        """Show the backbone's default anchors as the fields' placeholders."""
        sizes, ratios = config.replace(anchor_sizes=None, aspect_ratios=None).anchors()
        self.sizes.setPlaceholderText(format_anchor_text(sizes))
        self.ratios.setPlaceholderText(ratios_text(ratios))

    def fill(self, sizes, ratios) -> None:
        """Put anchors into the fields without applying them."""
        self.sizes.setText(format_anchor_text(sizes))
        self.ratios.setText(ratios_text(ratios))

    def config(self) -> ModelConfig:
        """The config the controls describe.

        Raises
        ------
        ConfigError
            Naming the field, for a setting that does not fit (also shown in red).
        """
        try:
            config = anchor_settings(self.base, self.sizes.text(), self.ratios.text(),
                                     backbone=self.backbone.currentText(), fpn=self.fpn.isChecked(),
                                     min_size=self.min_size.value(), max_size=self.max_size.value())
        except ConfigError as error:
            anchors = error.field in ("anchor_sizes", "aspect_ratios")
            self.error.setText(f"{error}{'; empty the field for the default' if anchors else ''}")
            self.error.setVisible(True)
            raise
        self.error.setText("")
        self.error.setVisible(False)
        self.show_defaults(config)
        return config
