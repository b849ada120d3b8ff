"""The model configuration: one small dataclass of plain values that rebuilds a detector.

A :class:`ModelConfig` names everything :func:`.model.build_model` needs: the
classes, the backbone and its feature pyramid, the anchors, the resize and
normalization of the images, the RPN and box-head settings people tune, what
is trained and which weights to start from. It holds only numbers, strings,
booleans, ``None`` and tuples of those, so that

- it saves to YAML (:meth:`ModelConfig.save_yaml`) and loads back with
  ``yaml.safe_load`` (:meth:`ModelConfig.load_yaml`);
- :meth:`ModelConfig.to_dict` (lists instead of tuples) goes into a Lightning
  checkpoint's hyper-parameters and loads back under
  ``torch.load(weights_only=True)``;
- it is frozen and hashable, so derived facts (feature-map strides) are cached
  per configuration.

Every value is checked when the config is made, so a bad YAML file or a typo in
a command-line override fails at once with :class:`ConfigError`, naming the
field and the reason, instead of deep inside torchvision. The defaults are
torchvision's ``fasterrcnn_resnet50_fpn``; :func:`preset` gives named starting
points, among them the small ``"cpu"`` model that trains from scratch in
minutes on a laptop.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "BACKBONES",
    "COCO_ARCHITECTURES",
    "IMAGENET_BACKBONES",
    "PRESETS",
    "ConfigError",
    "ModelConfig",
    "preset",
]

#: Backbone name -> what it is. ``resnet18_slim`` is a ResNet-18 with half the
#: channels in every stage (32, 64, 128, 256), made for training from scratch on a CPU.
BACKBONES = {
    "resnet18": "ResNet-18",
    "resnet34": "ResNet-34",
    "resnet50": "ResNet-50",
    "resnet101": "ResNet-101",
    "resnet152": "ResNet-152",
    "resnet18_slim": "ResNet-18 with half the channels (32-64-128-256); no ImageNet weights",
    "mobilenet_v3_large": "MobileNetV3-Large (with FPN only)",
}
RESNET_BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnet18_slim")
#: Backbones torchvision has ImageNet weights for.
IMAGENET_BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "mobilenet_v3_large")
#: ``(backbone, heads)`` -> torchvision's detector with COCO weights of that architecture
#: (with FPN and the default returned layers).
COCO_ARCHITECTURES = {
    ("resnet50", "v1"): "fasterrcnn_resnet50_fpn",
    ("resnet50", "v2"): "fasterrcnn_resnet50_fpn_v2",
    ("mobilenet_v3_large", "v1"): "fasterrcnn_mobilenet_v3_large_fpn",
}
#: The stages (``returned_layers``) a backbone has: ResNet layer1..layer4; MobileNetV3's
#: stages as torchvision counts them (0 is the stem, 5 the last block).
BACKBONE_STAGES = {name: (1, 2, 3, 4) for name in RESNET_BACKBONES} | {"mobilenet_v3_large": (0, 1, 2, 3, 4, 5)}
#: How many blocks ``trainable_backbone_layers`` counts, from the top (as torchvision).
TRAINABLE_LAYERS_MAX = {name: 5 for name in RESNET_BACKBONES} | {"mobilenet_v3_large": 6}
TRAINABLE_LAYERS_PRETRAINED_DEFAULT = 3
WEIGHT_CHOICES = ("none", "imagenet", "coco")
HEADS = {
    "v1": "torchvision's fasterrcnn_resnet50_fpn: a one-conv RPN head, a two-layer MLP box head",
    "v2": "torchvision's fasterrcnn_resnet50_fpn_v2: a two-conv RPN head, four convs with "
    "BatchNorm and one fully connected layer in the box head, BatchNorm in the FPN",
}
DEFAULT_ASPECT_RATIOS = (0.5, 1.0, 2.0)


class ConfigError(ValueError):
    """An impossible model setting; ``str()`` names the field (or file) and the reason."""

    def __init__(self, message: str, field: str | None = None):
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


# -- coercion of plain values ------------------------------------------------------------


def _as_int(value, positive=True):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer():
        raise ValueError(f"must be an integer, got {value!r}")
    value = int(value)
    if positive and value <= 0:
        raise ValueError(f"must be positive, got {value}")
    return value


def _as_float(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"must be a finite number, got {value!r}")
    return float(value)


def _as_bool(value):
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, got {value!r}")
    return value


def _as_str(value):
    if isinstance(value, Path):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be a non-empty string, got {value!r}")
    return value


def _as_sequence(value):
    if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__iter__"):
        raise ValueError(f"must be a list, got {value!r}")
    return tuple(value)


def _as_size(value):
    number = _as_float(value)
    if number <= 0:
        raise ValueError(f"anchor sizes must be positive, got {value!r}")
    return int(number) if number.is_integer() else number


def _as_ratio(value):
    number = _as_float(value)
    if number <= 0:
        raise ValueError(f"aspect ratios must be positive, got {value!r}")
    return number


def _nested(element):
    def coerce(value):
        levels = _as_sequence(value)
        if not levels:
            raise ValueError("must have one list per feature map, got none")
        result = []
        for level in levels:
            entries = _as_sequence(level)
            if not entries:
                raise ValueError(f"every feature map needs at least one value, got {list(level)!r}")
            result.append(tuple(element(entry) for entry in entries))
        return tuple(result)

    return coerce


def _optional(coerce):
    return lambda value: None if value is None else coerce(value)


def _int_tuple(value):
    return tuple(_as_int(entry, positive=False) for entry in _as_sequence(value))


def _three_floats(value):
    entries = _as_sequence(value)
    if len(entries) != 3:
        raise ValueError(f"must be three numbers (red, green, blue), got {list(entries)!r}")
    return tuple(_as_float(entry) for entry in entries)


def _names(value):
    names = _as_sequence(value)
    return tuple(_as_str(name).strip() for name in names)


# Field annotation (as written below) -> the function that checks and normalizes a value.
_COERCE = {
    "tuple[str, ...]": _names,
    "str": _as_str,
    "bool": _as_bool,
    "int": _as_int,
    "float": _as_float,
    "int | None": _optional(lambda value: _as_int(value, positive=False)),  # out_channels: see _validate
    "bool | None": _optional(_as_bool),
    "tuple[int, ...] | None": _optional(_int_tuple),
    "tuple[float, float, float]": _three_floats,
    "tuple[tuple[float, ...], ...] | None": None,  # anchors: sizes and ratios differ, see below
}
_ANCHOR_COERCE = {"anchor_sizes": _optional(_nested(_as_size)), "aspect_ratios": _optional(_nested(_as_ratio))}


@dataclass(frozen=True)
class ModelConfig:
    """Everything that defines a Faster R-CNN here; defaults are torchvision's ResNet-50 FPN.

    Class id ``k`` (from 1) is ``classes[k - 1]``; 0 is the background. Sequences
    are stored as tuples; :meth:`to_dict` gives lists. See the README's "Models"
    section for what each field does.
    """

    classes: tuple[str, ...]
    backbone: str = "resnet50"
    fpn: bool = True
    #: Backbone stages that feed the FPN (ResNet 1-4, default all), or the single stage
    #: whose output the detector uses without FPN (default the last, 4). Stages past the
    #: last one named are not built.
    returned_layers: tuple[int, ...] | None = None
    #: Channels of the maps the RPN and the box head see: the FPN's width (None: 256); without
    #: FPN, a 1x1 convolution brings the stage to this many (None: to 256 when it has more,
    #: as torchvision's MobileNet backbone does; a ResNet-50's last stage has 2048).
    out_channels: int | None = None
    heads: str = "v1"
    #: Anchor sizes (pixels of the resized image) and aspect ratios (height / width), one
    #: tuple per feature map; None for the backbone's default (see :meth:`anchors`).
    anchor_sizes: tuple[tuple[float, ...], ...] | None = None
    aspect_ratios: tuple[tuple[float, ...], ...] | None = None
    min_size: int = 800
    max_size: int = 1333
    image_mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    image_std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    rpn_pre_nms_top_n_train: int = 2000
    rpn_pre_nms_top_n_test: int = 1000
    rpn_post_nms_top_n_train: int = 2000
    rpn_post_nms_top_n_test: int = 1000
    rpn_nms_thresh: float = 0.7
    rpn_fg_iou_thresh: float = 0.7
    rpn_bg_iou_thresh: float = 0.3
    rpn_batch_size_per_image: int = 256
    rpn_positive_fraction: float = 0.5
    rpn_score_thresh: float = 0.0
    #: RoIAlign: output grid of the box head's crops and bilinear samples per grid cell.
    roi_output_size: int = 7
    roi_sampling_ratio: int = 2
    box_representation_size: int = 1024
    box_score_thresh: float = 0.05
    box_nms_thresh: float = 0.5
    box_detections_per_img: int = 100
    box_fg_iou_thresh: float = 0.5
    box_bg_iou_thresh: float = 0.5
    box_batch_size_per_image: int = 512
    box_positive_fraction: float = 0.25
    #: Backbone blocks trained, counted from the top (ResNet 0-5, MobileNetV3 0-6);
    #: None: all of them from scratch, 3 (torchvision's default) from pretrained weights.
    trainable_backbone_layers: int | None = None
    #: BatchNorm with fixed statistics in the backbone; None: frozen for pretrained "v1"
    #: models (as torchvision does), trainable BatchNorm from scratch and for "v2".
    frozen_batch_norm: bool | None = None
    #: "none", "imagenet" (backbone), "coco" (whole detector, new box predictor) or a file path.
    weights: str = "none"

    def __post_init__(self):
        for item in dataclasses.fields(self):
            coerce = _ANCHOR_COERCE.get(item.name) or _COERCE[item.type]
            try:
                value = coerce(getattr(self, item.name))
            except (ValueError, TypeError) as error:
                raise ConfigError(str(error), item.name) from None
            object.__setattr__(self, item.name, value)
        _validate(self)

    # -- derived values --------------------------------------------------------------------

    @property
    def num_classes(self) -> int:
        """The number of classes the detector predicts, with the background."""
        return len(self.classes) + 1

    @property
    def layers(self) -> tuple[int, ...]:
        """``returned_layers`` with its default filled in."""
        return self.returned_layers if self.returned_layers is not None else default_layers(self.backbone, self.fpn)

    @property
    def feature_map_count(self) -> int:
        """Feature maps the RPN sees: one per FPN level plus the FPN's pooled level, or one."""
        return len(self.layers) + 1 if self.fpn else 1

    @property
    def pretrained(self) -> bool:
        """Whether training starts from weights (ImageNet, COCO or a file) rather than from scratch."""
        return self.weights != "none"

    def anchors(self) -> tuple[tuple[tuple[float, ...], ...], tuple[tuple[float, ...], ...]]:
        """``(sizes, aspect_ratios)`` as the model uses them, defaults filled in.

        Defaults follow torchvision: on a ResNet FPN one size per level, 8 times its
        stride (32 ... 512 for the usual five levels); on MobileNetV3's FPN and
        without FPN every map gets 32, 64, 128, 256 and 512. Aspect ratios default
        to 0.5, 1 and 2 on every map.
        """
        count = self.feature_map_count
        sizes = self.anchor_sizes
        if sizes is None:
            if self.fpn and self.backbone in RESNET_BACKBONES:
                sizes = tuple((8 * 2 ** (layer + 1),) for layer in self.layers)
                sizes += ((16 * 2 ** (self.layers[-1] + 1),),)  # the pooled level, stride x 2
            else:
                sizes = ((32, 64, 128, 256, 512),) * count
        ratios = self.aspect_ratios if self.aspect_ratios is not None else (DEFAULT_ASPECT_RATIOS,) * len(sizes)
        return sizes, ratios

    # -- plain values, YAML ------------------------------------------------------------------

    def to_dict(self) -> dict:
        """The fields as plain Python values (lists for tuples), for YAML, JSON and checkpoints."""

        def plain(value):
            return [plain(entry) for entry in value] if isinstance(value, tuple) else value

        return {item.name: plain(getattr(self, item.name)) for item in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, values: Mapping) -> ModelConfig:
        """A config from plain values (as :meth:`to_dict` gives); missing fields take their default.

        Raises
        ------
        ConfigError
            For an unknown key, a missing ``classes``, or a bad value (naming the field).
        """
        if not isinstance(values, Mapping):
            raise ConfigError(f"a model config is a mapping of field names to values, got {type(values).__name__}")
        known = [item.name for item in dataclasses.fields(cls)]
        for key in values:
            if key not in known:
                close = difflib.get_close_matches(str(key), known, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; fields are: {', '.join(known)}"
                raise ConfigError(f"unknown field{hint}", str(key))
        if "classes" not in values:
            raise ConfigError("is required (the class names, in class-id order from 1)", "classes")
        return cls(**dict(values))

    def replace(self, **changes) -> ModelConfig:
        """A copy with ``changes`` applied and checked, as :meth:`from_dict` checks them."""
        return type(self).from_dict({**self.to_dict(), **changes})

    def save_yaml(self, path: str | Path) -> Path:
        """Write the config as YAML, atomically (temporary file, then rename)."""
        import yaml

        from .annotations import atomic_write_bytes

        path = Path(path)
        text = yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)
        atomic_write_bytes(path, text.encode("utf-8"))
        return path

    @classmethod
    def load_yaml(cls, path: str | Path) -> ModelConfig:
        """Read a config written by :meth:`save_yaml` (or by hand); errors name the file."""
        import yaml

        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"{path}: cannot read the model config: {error}") from None
        try:
            values = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not valid YAML: {error}") from None
        try:
            return cls.from_dict(values if values is not None else {})
        except ConfigError as error:
            raise ConfigError(f"{path}: {error}", error.field) from None


def default_layers(backbone: str, fpn: bool) -> tuple[int, ...]:
    """The stages a backbone returns by default: all four ResNet stages into the FPN, the last
    without; MobileNetV3's last two, as torchvision."""
    if backbone == "mobilenet_v3_large":
        return (4, 5)  # blocks 13 and 16 of its features, both at stride 32
    return (1, 2, 3, 4) if fpn else (4,)


def _check(condition: bool, field: str, message: str) -> None:
    if not condition:
        raise ConfigError(message, field)


def _validate(config: ModelConfig) -> None:
    """The checks that involve more than one value at a time, or a choice from a list."""
    classes = config.classes
    _check(len(classes) > 0, "classes", "needs at least one class name")
    duplicates = sorted({name for name in classes if classes.count(name) > 1})
    _check(not duplicates, "classes", f"class names must be unique; repeated: {', '.join(duplicates)}")
    _check(
        "__background__" not in classes, "classes", "'__background__' is class 0 already; list only your classes"
    )

    _check(config.backbone in BACKBONES, "backbone", f"unknown backbone {config.backbone!r}; choose one of "
           f"{', '.join(BACKBONES)}")
    _check(config.heads in HEADS, "heads", f"must be 'v1' or 'v2', got {config.heads!r}")
    mobilenet = config.backbone == "mobilenet_v3_large"
    _check(config.fpn or not mobilenet, "fpn", "MobileNetV3-Large is supported with FPN only")

    stages = BACKBONE_STAGES[config.backbone]
    layers = config.layers
    _check(
        all(layer in stages for layer in layers), "returned_layers",
        f"{config.backbone} has stages {', '.join(map(str, stages))}; got {list(layers)}",
    )
    _check(list(layers) == sorted(set(layers)), "returned_layers", f"must be increasing, got {list(layers)}")
    _check(config.fpn or len(layers) == 1, "returned_layers",
           f"without FPN the detector uses one stage, got {list(layers)}")
    _check(len(layers) > 0, "returned_layers", "needs at least one stage")

    _check(config.out_channels is None or config.out_channels > 0, "out_channels",
           f"must be positive, got {config.out_channels}")
    _check(config.min_size <= config.max_size, "min_size",
           f"min_size ({config.min_size}) must not exceed max_size ({config.max_size})")
    _check(all(value > 0 for value in config.image_std), "image_std", "must be positive")
    _validate_anchors(config)

    for name in ("rpn_nms_thresh", "rpn_fg_iou_thresh", "rpn_bg_iou_thresh", "rpn_score_thresh",
                 "box_score_thresh", "box_nms_thresh", "box_fg_iou_thresh", "box_bg_iou_thresh"):
        value = getattr(config, name)
        _check(0.0 <= value <= 1.0, name, f"must be between 0 and 1, got {value}")
    for name in ("rpn_positive_fraction", "box_positive_fraction"):
        value = getattr(config, name)
        _check(0.0 < value <= 1.0, name, f"must be in (0, 1], got {value}")
    _check(config.rpn_bg_iou_thresh <= config.rpn_fg_iou_thresh, "rpn_bg_iou_thresh",
           f"must not exceed rpn_fg_iou_thresh ({config.rpn_fg_iou_thresh}), got {config.rpn_bg_iou_thresh}")
    _check(config.box_bg_iou_thresh <= config.box_fg_iou_thresh, "box_bg_iou_thresh",
           f"must not exceed box_fg_iou_thresh ({config.box_fg_iou_thresh}), got {config.box_bg_iou_thresh}")

    if config.trainable_backbone_layers is not None:
        top = TRAINABLE_LAYERS_MAX[config.backbone]
        _check(0 <= config.trainable_backbone_layers <= top, "trainable_backbone_layers",
               f"must be between 0 and {top} for {config.backbone}, got {config.trainable_backbone_layers}")
    _check(not (config.frozen_batch_norm and not config.pretrained), "frozen_batch_norm",
           "frozen BatchNorm keeps the statistics of pretrained weights; from scratch (weights 'none') there "
           "are none, and the network would train without normalization")
    check_weights_choice(config, config.weights)


def _validate_anchors(config: ModelConfig) -> None:
    count = config.feature_map_count
    maps = (f"{count} feature maps ({len(config.layers)} FPN levels and the pooled level)" if config.fpn
            else "1 feature map (no FPN)")
    for name in ("anchor_sizes", "aspect_ratios"):
        value = getattr(config, name)
        _check(value is None or len(value) == count, name,
               f"{config.backbone}{' with FPN' if config.fpn else ''} gives {maps}, so {name} needs {count} "
               f"tuple{'s' if count != 1 else ''} (one per map), got {len(value or ())}: {_plain(value)}")
    sizes, ratios = config.anchors()
    per_location = {len(s) * len(r) for s, r in zip(sizes, ratios)}
    _check(len(per_location) == 1, "anchor_sizes",
           "every feature map needs the same number of anchors per position (sizes x aspect ratios), since "
           f"the RPN head is shared; got {[len(s) * len(r) for s, r in zip(sizes, ratios)]}")


def _plain(value):
    return [list(entry) for entry in value] if value is not None else None


def check_weights_choice(config: ModelConfig, weights: str) -> None:
    """Raise :class:`ConfigError` unless ``weights`` exist for the architecture of ``config``."""
    if weights not in WEIGHT_CHOICES:
        if weights.lower() in WEIGHT_CHOICES:
            raise ConfigError(f"write {weights.lower()!r} in lower case (or give a file path)", "weights")
        return  # a local file: checked when the model is built, where the file is read
    if weights == "imagenet" and config.backbone not in IMAGENET_BACKBONES:
        raise ConfigError(
            f"torchvision has no ImageNet weights for {config.backbone}; they exist for "
            f"{', '.join(IMAGENET_BACKBONES)}", "weights")
    if weights == "coco":
        key = (config.backbone, config.heads)
        if key not in COCO_ARCHITECTURES or not config.fpn or config.layers != default_layers(config.backbone, True) \
                or config.out_channels not in (None, 256):
            available = "; ".join(
                f"backbone={backbone!r}, heads={heads!r}, fpn=True (torchvision's {name})"
                for (backbone, heads), name in COCO_ARCHITECTURES.items()
            )
            raise ConfigError(
                f"torchvision has COCO weights only for these detectors (with the default returned_layers "
                f"and out_channels 256): {available}; use 'imagenet' or 'none' for "
                f"{config.backbone}{' with FPN' if config.fpn else ' without FPN'}, heads={config.heads!r}",
                "weights")


#: Preset name -> what it is.
PRESETS = {
    "default": "ResNet-50 FPN with torchvision's settings, starting from COCO weights (downloaded once)",
    "mobilenet": "MobileNetV3-Large FPN from COCO weights: several times faster than ResNet-50, a little less accurate",
    "cpu": "a slim ResNet-18 cut after its second stage (stride 8, 64 channels, no FPN) with a light box head, "
    "for images near 128 px, trained from scratch: for CPU work, tests and the demo",
}


def preset(name: str, classes, **overrides) -> ModelConfig:
    """A named starting configuration (see :data:`PRESETS`) for ``classes``, with ``overrides``.

    Raises
    ------
    ConfigError
        For an unknown preset name or a bad override.
    """
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; presets are: {', '.join(PRESETS)}", "preset")
    values: dict = {"classes": classes}
    if name == "default":
        values.update(weights="coco")
    elif name == "mobilenet":
        values.update(backbone="mobilenet_v3_large", weights="coco", rpn_score_thresh=0.05)
    elif name == "cpu":
        values.update(CPU_PRESET)
    return ModelConfig.from_dict({**values, **overrides})


#: The "cpu" preset. Sized for objects of about 12-48 px in images of about 128 px (the
#: synthetic shapes); see benchmarks/bench_model_preset.py for its speed.
CPU_PRESET = {
    "backbone": "resnet18_slim",
    "fpn": False,
    "returned_layers": [2],
    "anchor_sizes": [[16, 24, 32, 48]],
    "aspect_ratios": [[0.5, 1.0, 2.0]],
    "min_size": 128,
    "max_size": 128,
    "rpn_pre_nms_top_n_train": 600,
    "rpn_post_nms_top_n_train": 300,
    "rpn_pre_nms_top_n_test": 300,
    "rpn_post_nms_top_n_test": 100,
    "rpn_batch_size_per_image": 128,
    "roi_sampling_ratio": 1,
    "box_representation_size": 256,
    "box_batch_size_per_image": 64,
    "weights": "none",
}
