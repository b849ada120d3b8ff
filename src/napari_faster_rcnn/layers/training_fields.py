"""The settings the "Train detector" form edits, described from the dataclasses themselves.

The form shows the common model fields (backbone, FPN, image sizes, weights)
and the main training values (epochs, learning rate, batch size, optimizer,
device) as their own controls; every other field of
:class:`~napari_faster_rcnn.core.model.config.ModelConfig`, :class:`~napari_faster_rcnn.core.training.transforms.AugmentationConfig`
and :class:`~napari_faster_rcnn.core.training.run.TrainingSettings` gets a generic editor made
from a :class:`FieldSpec`. The specs come from ``dataclasses.fields``, so a
field added to the config shows up in the form without anyone touching it,
and the form can never offer a field the config file does not have.

Values travel as text where no spin box fits (``None`` as an empty field,
tuples of anchor sizes as YAML flow lists ``[[16, 24, 32]]``) and are parsed
here with an error that names the field; the config's own checks
(:class:`~napari_faster_rcnn.core.model.config.ConfigError`) then judge the value.

No Qt here.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass

from napari_faster_rcnn.core.model.config import ModelConfig, preset
from napari_faster_rcnn.core.model.config_rules import BACKBONES, HEADS
from napari_faster_rcnn.core.training.transforms import AugmentationConfig

__all__ = [
    "COMMON_MODEL_FIELDS",
    "FORM_TRAINING_FIELDS",
    "FieldSpec",
    "augmentation_specs",
    "format_value",
    "model_overrides",
    "model_specs",
    "parse_value",
    "preset_values",
    "tile_size_setting",
    "training_specs",
]

#: Model fields with their own controls; the rest are folded away.
COMMON_MODEL_FIELDS = ("backbone", "fpn", "min_size", "max_size", "weights")
#: TrainingSettings fields the form sets itself (data, split, model, main training values).
FORM_TRAINING_FIELDS = (
    "data", "output", "validation_data", "split_ratios", "split_seed", "classes", "model", "preset", "auto_size",
    "augmentation", "epochs", "batch_size", "optimizer", "learning_rate", "accelerator", "resume_from",
    "progress_bar", "tile_size",
)
PRECISIONS = ("32-true", "16-mixed", "bf16-mixed")
_CHOICES = {
    "backbone": tuple(BACKBONES),
    "heads": tuple(HEADS),
    "scheduler": ("cosine", "multistep", "constant"),
    "precision": PRECISIONS,
    "optimizer": ("sgd", "adamw"),
}
#: Tooltips for fields whose name alone says too little.
_HELP = {
    "normalization": "how pixel values become 0-1: auto (8-bit / 255, 16-bit and float: each image's 1st to "
                     "99.8th percentile), percentiles:LOW,HIGH, range:LOW,HIGH (fixed) or none (the type's "
                     "maximum); kept in the checkpoint, so prediction repeats it",
    "channels": "image channels the detector sees, in order, from 0: 0 (one, repeated), 0, 2 (two; the third "
                "is zeros) or 2, 1, 0; empty: gray, RGB or RGBA as they are (more than 3 channels then need a "
                "choice); kept in the checkpoint, so prediction repeats it",
    "returned_layers": "backbone stages feeding the FPN (ResNet 1-4), or the one stage used without FPN",
    "out_channels": "channels of the maps the RPN and box head see (empty: 256)",
    "anchor_sizes": "anchor sizes in pixels of the resized image, one list per feature map (empty: the default)",
    "aspect_ratios": "anchor aspect ratios (height / width), one list per feature map (empty: 0.5, 1, 2)",
    "trainable_backbone_layers": "backbone blocks trained, from the top (empty: all from scratch, 3 pretrained)",
    "frozen_batch_norm": "BatchNorm with fixed statistics in the backbone (default: for pretrained v1 models)",
    "max_steps": "end the run after this many optimizer steps (-1: no limit; epochs end it)",
    "num_workers": "DataLoader worker processes (empty: one per CPU but one, at most 4; 0: in this process)",
    "cache": "decode every image once and keep it in memory",
    "validation_every_epochs": "validate (VOC and COCO mAP) every so many epochs",
    "early_stopping_patience": "stop after so many validations without a better VOC mAP (empty: never)",
    "gradient_clip": "clip the gradient norm to this (empty: no clipping)",
    "overwrite": "start over in an output folder holding a previous run's checkpoints (removes them)",
    "iou_threshold": "IoU of a true positive in the validation's VOC AP",
    "validation_score_threshold": "the box head's score threshold during validation",
    "min_visibility": "after a zoom, drop boxes keeping less than this fraction of their area",
    "min_visible": "on tiles, keep a box cut by the tile's border (clipped) when at least this fraction of its "
                   "area is inside the tile; drop it otherwise",
}


@dataclass(frozen=True)
class FieldSpec:
    """One editable field: its name, what kind of editor fits it, its default and help.

    ``kind`` is ``"bool"``, ``"optional_bool"`` (yes / no / default), ``"int"``,
    ``"float"``, ``"choice"`` (one of ``choices``), ``"range"`` (two numbers)
    or ``"text"`` (YAML: lists, optional numbers).
    """

    name: str
    kind: str
    default: object = None
    optional: bool = False
    choices: tuple = ()
    help: str = ""

    @property
    def label(self) -> str:
        return self.name.replace("_", " ")


def _spec(item: dataclasses.Field, default) -> FieldSpec:
    kind_of = {"bool": "bool", "bool | None": "optional_bool", "int": "int", "float": "float"}
    annotation = str(item.type).replace("Optional[", "").strip()
    optional = annotation.endswith("| None")
    kind = kind_of.get(annotation, "text")
    if item.name in _CHOICES:
        kind = "choice"
    elif annotation in ("int | None", "float | None"):
        kind = annotation.split(" ")[0]
    elif annotation.startswith("tuple[float, float]"):
        kind = "range"
    help_text = _HELP.get(item.name, "")
    return FieldSpec(item.name, kind, default, optional, _CHOICES.get(item.name, ()), help_text)


def _defaults(cls, values: Mapping | None = None) -> dict:
    found = {}
    for item in dataclasses.fields(cls):
        if values is not None and item.name in values:
            found[item.name] = values[item.name]
        elif item.default is not dataclasses.MISSING:
            found[item.name] = item.default
        elif item.default_factory is not dataclasses.MISSING:
            found[item.name] = item.default_factory()
    return found


def model_specs(folded: bool = True) -> list[FieldSpec]:
    """The :class:`ModelConfig` fields but ``classes``: the folded ones, or the common ones."""
    values = preset_values("default")
    return [_spec(item, values[item.name]) for item in dataclasses.fields(ModelConfig)
            if item.name != "classes" and (item.name not in COMMON_MODEL_FIELDS) == folded]


def augmentation_specs() -> list[FieldSpec]:
    """Every :class:`AugmentationConfig` field."""
    values = _defaults(AugmentationConfig)
    return [_spec(item, values[item.name]) for item in dataclasses.fields(AugmentationConfig)]


def training_specs() -> list[FieldSpec]:
    """The :class:`TrainingSettings` fields the form does not show as its own controls."""
    from napari_faster_rcnn.core.training.settings import TrainingSettings

    values = _defaults(TrainingSettings)
    return [_spec(item, values.get(item.name)) for item in dataclasses.fields(TrainingSettings)
            if item.name not in FORM_TRAINING_FIELDS]


def preset_values(name: str) -> dict:
    """A preset's model fields (but ``classes``) as plain values."""
    values = preset(name, ["object"]).to_dict()
    values.pop("classes")
    return values


def _plain(value):
    if isinstance(value, (tuple, list)):
        return [_plain(entry) for entry in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def model_overrides(preset_name: str, values: Mapping) -> dict:
    """The model fields in ``values`` that differ from the preset's, as the settings' ``model``."""
    base = preset_values(preset_name)
    return {name: value for name, value in values.items()
            if name in base and _plain(value) != _plain(base[name])}


def format_value(value) -> str:
    """The text of a value in a text or number editor (``None`` is empty)."""
    if value is None:
        return ""
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(format_value(entry) for entry in value) + "]"
    if isinstance(value, float):
        return f"{value:.10g}"
    return str(value)


def parse_value(spec: FieldSpec, text: str):
    """The value of an editor's ``text`` for ``spec``.

    Raises
    ------
    ValueError
        Naming the field, for text that is not a value of its kind.
    """
    import yaml

    text = str(text).strip()
    if not text:
        if spec.optional:
            return None
        raise ValueError(f"{spec.name}: needs a value")
    if spec.kind in ("int", "float"):
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"{spec.name}: {text!r} is not a number") from None
        if spec.kind == "int":
            if not number.is_integer():
                raise ValueError(f"{spec.name}: {text!r} is not a whole number")
            return int(number)
        if not math.isfinite(number):
            raise ValueError(f"{spec.name}: {text!r} is not a finite number")
        return number
    if spec.kind in ("choice",):
        return text
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        first = str(error).strip().splitlines()[0]
        raise ValueError(f"{spec.name}: {text!r} is not a value ({first}); lists are written [16, 32]") from None



def tile_size_setting(tiled: bool, size: int) -> int | None:
    """``TrainingSettings.tile_size`` of the form's tile controls: 0 (whole images) when not tiled,
    None (the model's ``max_size``) for size 0, else the size in pixels."""
    if not tiled:
        return 0
    return int(size) or None
