"""Generic editors for dataclass fields (see :mod:`~napari_faster_rcnn.layers.training_fields`): a check box, a choice,
a pair of numbers, or a line of text, chosen by the field's type, so that the folded parts of
the "Train detector" form follow the config classes without a list to keep in step."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from qtpy.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QLineEdit, QWidget

from napari_faster_rcnn.layers.training_fields import FieldSpec, format_value, parse_value

DEFAULT, YES, NO = "default", "yes", "no"


class FieldEditor:
    """The control of one :class:`FieldSpec`: ``widget`` to put in a form, :meth:`value` and
    :meth:`set_value` (``value`` raises ``ValueError`` naming the field for text that is no value)."""

    def __init__(self, spec: FieldSpec, fraction: bool = False):
        self.spec = spec
        kind = spec.kind
        if kind == "bool":
            self.widget = QCheckBox()
        elif kind in ("optional_bool", "choice"):
            self.widget = QComboBox()
            self.widget.addItems([DEFAULT, YES, NO] if kind == "optional_bool" else list(spec.choices))
        elif kind == "range" or (fraction and kind == "float"):
            self.widget = QWidget()
            row = QHBoxLayout(self.widget)
            row.setContentsMargins(0, 0, 0, 0)
            self.spins = [_spin(fraction) for _ in range(2 if kind == "range" else 1)]
            for spin in self.spins:
                row.addWidget(spin)
        else:
            self.widget = QLineEdit()
            if spec.optional:
                self.widget.setPlaceholderText(DEFAULT)
        self.widget.setToolTip(spec.help or spec.label)
        self.set_value(spec.default)

    def value(self):
        spec, widget = self.spec, self.widget
        if spec.kind == "bool":
            return widget.isChecked()
        if spec.kind == "optional_bool":
            return {DEFAULT: None, YES: True, NO: False}[widget.currentText()]
        if spec.kind == "choice":
            return widget.currentText()
        if hasattr(self, "spins"):
            values = [spin.value() for spin in self.spins]
            return tuple(values) if spec.kind == "range" else values[0]
        return parse_value(spec, widget.text())

    def set_value(self, value) -> None:
        spec, widget = self.spec, self.widget
        if spec.kind == "bool":
            widget.setChecked(bool(value))
        elif spec.kind == "optional_bool":
            widget.setCurrentText({None: DEFAULT, True: YES, False: NO}[value])
        elif spec.kind == "choice":
            widget.setCurrentText(str(value))
        elif hasattr(self, "spins"):
            for spin, number in zip(self.spins, value if spec.kind == "range" else [value]):
                spin.setValue(float(number))
        else:
            widget.setText(format_value(value))


def _spin(fraction: bool) -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setButtonSymbols(QDoubleSpinBox.ButtonSymbols.NoButtons)
    spin.setRange(0.0, 1.0 if fraction else 20.0)
    spin.setSingleStep(0.05)
    spin.setDecimals(2)
    return spin


class FieldGroup(QWidget):
    """A form of :class:`FieldEditor` for ``specs``; ``fractions`` names the float fields shown as
    spin boxes from 0 to 1."""

    def __init__(self, specs: Sequence[FieldSpec], fractions: Sequence[str] = (), parent=None):
        super().__init__(parent)
        self.editors = {spec.name: FieldEditor(spec, spec.name in fractions) for spec in specs}
        layout = QFormLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for name, editor in self.editors.items():
            layout.addRow(editor.spec.label, editor.widget)

    def values(self) -> dict:
        """Every field's value (``ValueError`` naming the first field that has none)."""
        return {name: editor.value() for name, editor in self.editors.items()}

    def set_values(self, values: Mapping) -> None:
        for name, value in values.items():
            if name in self.editors:
                self.editors[name].set_value(value)
