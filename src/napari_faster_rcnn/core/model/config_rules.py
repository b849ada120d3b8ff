"""What a model config may hold: the backbones and weights there are, and the checks of every value.

:class:`.config.ModelConfig` calls :func:`coerce_field` on every field and then
:func:`validate`; both raise :class:`ConfigError` naming the field, so a bad
YAML file or command-line override fails at once, with the reason, instead of
deep inside torchvision.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

from napari_faster_rcnn.core.data.channels import check_channels
from napari_faster_rcnn.core.data.intensity import normalize_text

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
    "tuple[tuple[float, ...], ...] | None": None,  # anchors: sizes and ratios differ, see _BY_NAME
}
# Fields checked by name rather than by annotation.
_BY_NAME = {
    "anchor_sizes": _optional(_nested(_as_size)),
    "aspect_ratios": _optional(_nested(_as_ratio)),
    "weights": lambda value: "none" if value is None else _as_str(value),  # YAML's null reads as None
    "normalization": normalize_text,
    "channels": check_channels,
}


def coerce_field(name: str, annotation: str, value):
    """``value`` checked and normalized (tuples for lists) for the field ``name`` of that annotation."""
    coerce = _BY_NAME.get(name) or _COERCE[annotation]
    try:
        return coerce(value)
    except (ValueError, TypeError) as error:
        raise ConfigError(str(error), name) from None


def default_layers(backbone: str, fpn: bool) -> tuple[int, ...]:
    """The stages a backbone returns by default: all four ResNet stages into the FPN, the last
    without; MobileNetV3's last two, as torchvision."""
    if backbone == "mobilenet_v3_large":
        return (4, 5)  # blocks 13 and 16 of its features, both at stride 32
    return (1, 2, 3, 4) if fpn else (4,)


def _check(condition: bool, field: str, message: str) -> None:
    if not condition:
        raise ConfigError(message, field)


def validate(config) -> None:
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
    for name in ("rpn_pre_nms_top_n_train", "rpn_pre_nms_top_n_test", "rpn_post_nms_top_n_train",
                 "rpn_post_nms_top_n_test", "box_detections_per_img", "rpn_batch_size_per_image",
                 "box_batch_size_per_image"):
        value = getattr(config, name)
        _check(value >= 1, name, f"must be at least 1, got {value}")
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


def _validate_anchors(config) -> None:
    count = config.feature_map_count
    maps = (f"{count} feature maps ({len(config.layers)} FPN levels and the pooled level)" if config.fpn
            else "1 feature map (no FPN)")
    for name in ("anchor_sizes", "aspect_ratios"):
        value = getattr(config, name)
        _check(value is None or len(value) == count, name,
               f"{config.backbone}{' with FPN' if config.fpn else ''} gives {maps}, so {name} needs {count} "
               f"tuple{'s' if count != 1 else ''} (one per map), got {len(value or ())}: {_plain(value)}")
    sizes, ratios = config.anchors()
    per_location = {len(s) * len(r) for s, r in zip(sizes, ratios, strict=True)}
    _check(len(per_location) == 1, "anchor_sizes",
           "every feature map needs the same number of anchors per position (sizes x aspect ratios), since "
           f"the RPN head is shared; got {[len(s) * len(r) for s, r in zip(sizes, ratios, strict=True)]}")


def _plain(value):
    return [list(entry) for entry in value] if value is not None else None


def check_weights_choice(config, weights: str) -> None:
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
