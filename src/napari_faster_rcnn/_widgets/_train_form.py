"""The settings form of the "Train detector" widget: the data and its split, the model (a
preset, the common fields, the rest folded), the training values, augmentation, the device
and the output folder; :meth:`TrainingForm.settings` turns it into a
:class:`~napari_faster_rcnn.core.training.run.TrainingSettings`."""

from __future__ import annotations

from pathlib import Path

from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from superqt import QCollapsible

from napari_faster_rcnn._widgets._common import LayerCombo, row
from napari_faster_rcnn._widgets._field_editors import FieldGroup
from napari_faster_rcnn.core.model.config import PRESETS, preset
from napari_faster_rcnn.core.model.config_rules import BACKBONES, WEIGHT_CHOICES
from napari_faster_rcnn.core.training.optimization import DEFAULT_LEARNING_RATES
from napari_faster_rcnn.core.training.samples import folder_samples
from napari_faster_rcnn.core.training.settings import TrainingSettings
from napari_faster_rcnn.core.training.splits import split_indices
from napari_faster_rcnn.core.training.transforms import AugmentationConfig
from napari_faster_rcnn.layers import conventions, training_fields
from napari_faster_rcnn.layers.conventions import is_boxes
from napari_faster_rcnn.layers.training import available_devices
from napari_faster_rcnn.layers.training_data import layer_training_data

LAYER, FOLDER = "box layer", "folder"
WEIGHTS_FILE = "file…"
AUTO = "auto"


def path_row(placeholder: str, tooltip: str, pick, button_text: str = "…"):
    """A line edit with a browse button; ``pick(current text) -> str or ''`` asks for the path."""
    edit = QLineEdit()
    edit.setPlaceholderText(placeholder)
    edit.setToolTip(tooltip)
    button = QPushButton(button_text)
    button.setFixedWidth(30)
    button.clicked.connect(lambda: (lambda chosen: chosen and edit.setText(chosen))(pick(edit.text())))
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(edit, 1)
    layout.addWidget(button)
    return row, edit


def _spin(low: int, high: int, value: int, tooltip: str, step: int = 1, suffix: str = "") -> QSpinBox:
    spin = QSpinBox()
    spin.setButtonSymbols(QSpinBox.ButtonSymbols.NoButtons)  # narrow: the dock is a few hundred pixels wide
    spin.setRange(low, high)
    spin.setSingleStep(step)
    spin.setValue(value)
    spin.setSuffix(suffix)
    spin.setToolTip(tooltip)
    return spin


def _ratio(value: float, tooltip: str) -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setButtonSymbols(QDoubleSpinBox.ButtonSymbols.NoButtons)
    spin.setRange(0.0, 1.0)
    spin.setSingleStep(0.05)
    spin.setDecimals(2)
    spin.setValue(value)
    spin.setToolTip(tooltip)
    return spin


def _combo(items, tooltip: str = "") -> QComboBox:
    combo = QComboBox()
    combo.addItems(list(items))
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(8)
    combo.setToolTip(tooltip)
    return combo


def _folded(title: str, content: QWidget) -> QCollapsible:
    section = QCollapsible(title)
    section.setDuration(0)
    section.setCollapsedIcon("▸")
    section.setExpandedIcon("▾")
    section.addWidget(content)
    section.layout().setContentsMargins(0, 0, 0, 0)
    return section


class TrainingForm(QWidget):
    """Every setting of a run; :meth:`settings` reads them (``ValueError`` naming what is wrong)."""

    def __init__(self, viewer, parent=None):
        super().__init__(parent)
        self.viewer = viewer
        self.devices = available_devices()
        defaults = TrainingSettings(data="")

        # data
        self.source = _combo([LAYER, FOLDER], "train on a box layer in the viewer or on a dataset folder")
        self.layer = LayerCombo(viewer, is_boxes)
        self.layer.setToolTip("a box layer: its labeled images train, unsaved edits included")
        self.folder_row, self.folder = path_row("a dataset folder", "input/ + target/, or images with their "
                                                "annotation files beside them", self._pick_folder)
        self.validation_row, self.validation = path_row(
            "none: split the data", "a separate dataset folder to validate on; then all the data trains",
            self._pick_folder)
        self.ratios = [_ratio(value, f"fraction of the images for {part}")
                       for value, part in zip(defaults.split_ratios, ("training", "validation", "the held-out test"))]
        self.split_seed = _spin(0, 2**31 - 1, defaults.split_seed, "the same seed puts each image in the same part")

        # model
        self.preset = _combo(PRESETS)
        self.backbone = _combo(BACKBONES, "\n".join(f"{name}: {text}" for name, text in BACKBONES.items()))
        self.fpn = QCheckBox("FPN")
        self.fpn.setToolTip("a feature pyramid over several backbone stages (objects of very different sizes)")
        self.min_size = _spin(32, 4096, 800, "each image is resized so that its short side is this", 32, " px")
        self.max_size = _spin(32, 8192, 1333, "... unless its long side would pass this", 32, " px")
        self.auto_size = QCheckBox("fit to the data")
        self.auto_size.setToolTip(
            "when training starts, choose the image size so that the median box suits the model, and the anchors "
            "the Anchor boxes widget suggests for the resized boxes (the status says what was chosen); off: the "
            "sizes and anchors here")
        self.auto_size.setChecked(True)  # a preset's 128 px or 800 px rarely suits a new user's data
        self.weights = _combo([*WEIGHT_CHOICES, WEIGHTS_FILE], "start from scratch, from ImageNet weights "
                              "(backbone), from COCO weights (whole detector), or from a weights file")
        self.weights_row, self.weights_file = path_row("a .pt / .pth weights file", "weights to start from",
                                                       self._pick_weights)
        self.model_fields = FieldGroup(training_fields.model_specs(folded=True))

        # training
        self.epochs = _spin(1, 100000, defaults.epochs, "passes over the training images")
        self.batch_size = _spin(1, 1024, defaults.batch_size, "images per step")
        self.tiled = QCheckBox("train on tiles of")
        self.tiled.setToolTip("cut images larger than a tile into tiles at their own scale (random tiles for "
                              "training, a fixed grid for validation), as tiled prediction sees them; off: "
                              "whole images, resized to the image size above")
        self.tiled.setChecked(defaults.tile_size != 0)
        self.tile_size = _spin(0, 16384, defaults.tile_size or 0, "tile size in pixels (the model's max size: "
                               "the image size above, at scale 1)", 32, " px")
        self.tile_size.setSpecialValueText("the model's max size")
        self.optimizer = _combo(["sgd", "adamw"], "SGD with momentum, or AdamW (often better from scratch)")
        self.learning_rate = QLineEdit()
        self.learning_rate.setToolTip("the peak learning rate, after the warm-up (empty: the optimizer's default)")
        self.augment = QCheckBox("augment training images")
        self.augment.setChecked(True)
        self.augment.setToolTip("random flips, zoom, brightness and contrast (validation is never augmented)")
        augmentation = training_fields.augmentation_specs()
        self.augmentation_fields = FieldGroup(augmentation, fractions=[s.name for s in augmentation
                                                                       if s.kind == "float"])
        self.device = _combo([], "where training runs")
        for name in (AUTO, "cpu", "cuda", "mps"):
            shown = self.devices.get(name)
            if name == AUTO:
                best = next((n for n in ("cuda", "mps") if n in self.devices), "cpu")
                text = f"auto ({best}: {self.devices[best]})"
            else:
                text = f"{name}: {shown}" if shown else f"{name} (not available)"
            self.device.addItem(text, name)
            if name != AUTO and not shown:
                self.device.model().item(self.device.count() - 1).setEnabled(False)
        self.output_row, self.output = path_row("the run folder (checkpoints, logs)", "checkpoints/best.ckpt and "
                                                "last.ckpt, logs/ and the exported run.yaml go here",
                                                self._pick_folder)
        self.resume_row, self.resume = path_row("none: start from the weights", "a checkpoint (last.ckpt) to "
                                                "continue: the step count, optimizer and schedule go on",
                                                self._pick_checkpoint)
        self.training_fields = FieldGroup(training_fields.training_specs())

        form = QFormLayout()
        form.addRow("source", self.source)
        form.addRow("layer", self.layer)
        form.addRow("folder", self.folder_row)
        form.addRow("validation", self.validation_row)
        form.addRow("split", row(*self.ratios, "seed", self.split_seed))
        form.addRow("preset", self.preset)
        form.addRow("backbone", row(self.backbone, self.fpn))
        form.addRow("image size", row(self.min_size, "to", self.max_size))
        form.addRow("", self.auto_size)
        form.addRow("weights", self.weights)
        form.addRow("", self.weights_row)
        form.addRow(_folded("More model settings", self.model_fields))
        form.addRow("epochs", row(self.epochs, "batch", self.batch_size))
        form.addRow("tiles", row(self.tiled, self.tile_size))
        form.addRow("optimizer", row(self.optimizer, "rate", self.learning_rate))
        form.addRow("augmentation", self.augment)
        form.addRow(_folded("Augmentation settings", self.augmentation_fields))
        form.addRow("device", self.device)
        form.addRow("output", self.output_row)
        form.addRow("resume", self.resume_row)
        form.addRow(_folded("More training settings", self.training_fields))
        self.form = form
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(form)
        # napari's style gives spin boxes a minimum width that would make the form wider than a dock
        self.setStyleSheet("QAbstractSpinBox { min-width: 40px; }")

        self.source.currentTextChanged.connect(self._show_source)
        self.preset.currentTextChanged.connect(self.apply_preset)
        self.weights.currentTextChanged.connect(self._show_weights)
        self.optimizer.currentTextChanged.connect(self._show_rate)
        self.augment.toggled.connect(self.augmentation_fields.setEnabled)
        self.auto_size.toggled.connect(self._show_auto_size)
        self.validation.textChanged.connect(lambda text: [r.setEnabled(not text.strip()) for r in self.ratios])
        # from scratch on a CPU, the small model; with a GPU, torchvision's detector
        self.preset.setCurrentText("default" if len(self.devices) > 1 else "cpu")
        self.apply_preset(self.preset.currentText())
        self._show_source()
        self._show_rate()
        self._show_auto_size()
        if not self.layer.count():
            self.source.setCurrentText(FOLDER)

    # --- controls ---------------------------------------------------------------------------

    def _visible(self, field, visible: bool) -> None:
        field.setVisible(visible)
        label = self.form.labelForField(field)
        if label is not None:
            label.setVisible(visible)

    def _show_source(self, *_) -> None:
        folder = self.from_folder
        self._visible(self.layer, not folder)
        self._visible(self.folder_row, folder)

    def _show_weights(self, *_) -> None:
        self._visible(self.weights_row, self.weights.currentText() == WEIGHTS_FILE)

    def _show_auto_size(self, *_) -> None:
        """The sizes typed are used only when the data does not choose them."""
        for spin in (self.min_size, self.max_size):
            spin.setEnabled(not self.auto_size.isChecked())

    def _show_rate(self, *_) -> None:
        self.learning_rate.setPlaceholderText(f"default: {DEFAULT_LEARNING_RATES[self.optimizer.currentText()]:g}")

    def apply_preset(self, name: str) -> None:
        """Show the preset's model fields (what it is, in the tooltip)."""
        self.preset.setToolTip(PRESETS[name])
        values = training_fields.preset_values(name)
        self.backbone.setCurrentText(values["backbone"])
        self.fpn.setChecked(values["fpn"])
        self.min_size.setValue(values["min_size"])
        self.max_size.setValue(values["max_size"])
        weights = values["weights"]
        self.weights.setCurrentText(weights if weights in WEIGHT_CHOICES else WEIGHTS_FILE)
        self.weights_file.setText("" if weights in WEIGHT_CHOICES else weights)
        self._show_weights()
        self.model_fields.set_values(values)

    def _pick_folder(self, current: str) -> str:
        return QFileDialog.getExistingDirectory(self, "Folder", current)

    def _pick_weights(self, current: str) -> str:
        return QFileDialog.getOpenFileName(self, "Weights", current, "Weights (*.pt *.pth *.ckpt)")[0]

    def _pick_checkpoint(self, current: str) -> str:
        return QFileDialog.getOpenFileName(self, "Checkpoint", current, "Checkpoints (*.ckpt)")[0]

    # --- reading -----------------------------------------------------------------------------

    @property
    def from_folder(self) -> bool:
        return self.source.currentText() == FOLDER

    def data(self, export: bool = False):
        """``(data, validation data, classes, layer data)`` of the chosen source (``export``: for a config
        file, so the validation folder stays a folder and the split is not tried here). ``ValueError``
        says what to choose."""
        text = self.validation.text().strip()
        validation = Path(text) if text else None
        if self.from_folder:
            folder = self.folder.text().strip()
            if not folder:
                raise ValueError("choose a dataset folder (or a box layer as the source)")
            return Path(folder), validation, None, None
        layer = self.layer.layer()
        if layer is None:
            raise ValueError("open a box layer (a dataset folder or an image, with the Faster R-CNN reader), or "
                             "choose a folder as the source")
        layer_data = layer_training_data(layer)
        if validation is not None and not export:
            validation = folder_samples(validation)  # samples too, as the layer's
        elif validation is None and not export:
            # refused here, before a run folder is made: one stack alone with a validation ratio
            # (its planes stay in one part), with what to change
            try:
                split_indices(layer_data.samples, self.split_ratios(), self.split_seed.value())
            except ValueError as error:
                raise ValueError(f"{error}. Here: choose a validation folder, or set the validation and test "
                                 "ratios to 0 and turn off 'validation' in the training options (the run then "
                                 "has no validation score and keeps its last checkpoint)") from error
        return layer_data.samples, validation, layer_data.classes, layer_data

    def dataset_root(self) -> str | None:
        """The folder the data comes from, if any (the chosen folder, or the box layer's)."""
        if self.from_folder:
            return self.folder.text().strip() or None
        layer = self.layer.layer()
        return layer.metadata.get(conventions.DATASET_ROOT) if layer is not None else None

    def model_values(self) -> dict:
        """Every model field (but the classes), as the form shows it."""
        weights = self.weights.currentText()
        if weights == WEIGHTS_FILE:
            weights = self.weights_file.text().strip()
            if not weights:
                raise ValueError("weights: choose the weights file, or none / imagenet / coco")
        return {"backbone": self.backbone.currentText(), "fpn": self.fpn.isChecked(),
                "min_size": self.min_size.value(), "max_size": self.max_size.value(), "weights": weights,
                **self.model_fields.values()}

    def augmentation(self) -> AugmentationConfig:
        if not self.augment.isChecked():
            return AugmentationConfig.none()
        return AugmentationConfig(**self.augmentation_fields.values())

    def split_ratios(self) -> tuple[float, float, float]:
        return tuple(round(spin.value(), 4) for spin in self.ratios)

    def settings(self, data, validation_data=None, classes=None) -> TrainingSettings:
        """The run of these settings on ``data`` (a folder or samples).

        Raises
        ------
        ValueError
            (``ConfigError`` among them) naming the field that is wrong.
        """
        overrides = training_fields.model_overrides(self.preset.currentText(), self.model_values())
        preset(self.preset.currentText(), ["object"], **overrides)  # the model's checks, before any thread starts
        rate = self.learning_rate.text().strip()
        output = self.output.text().strip()
        if not output:
            raise ValueError("output: choose a folder for the run (checkpoints, logs)")
        resume = self.resume.text().strip()
        if resume and not Path(resume).is_file():
            raise ValueError(f"resume: {resume}: no such checkpoint file")
        return TrainingSettings(
            data=data, output=Path(output), validation_data=validation_data, split_ratios=self.split_ratios(),
            split_seed=self.split_seed.value(), classes=classes, model=overrides, preset=self.preset.currentText(),
            auto_size=self.auto_size.isChecked(),
            augmentation=self.augmentation(), epochs=self.epochs.value(), batch_size=self.batch_size.value(),
            optimizer=self.optimizer.currentText(),
            learning_rate=training_fields.parse_value(training_fields.FieldSpec("learning_rate", "float", optional=True), rate),
            accelerator=self.device.currentData(), resume_from=Path(resume) if resume else None,
            tile_size=training_fields.tile_size_setting(self.tiled.isChecked(), self.tile_size.value()),
            **self.training_fields.values(),
        )
