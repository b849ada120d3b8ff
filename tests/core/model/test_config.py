"""ModelConfig: defaults, checks with clear errors, YAML and checkpoint round trips, presets."""

import inspect

import pytest
import torch
import yaml
from torchvision.models.detection import FasterRCNN

from napari_faster_rcnn.core.model.config import PRESETS, ModelConfig, preset
from napari_faster_rcnn.core.model.config_rules import ConfigError

CLASSES = ["circle", "square", "triangle"]


def test_defaults_are_torchvision_faster_rcnn_defaults():
    parameters = inspect.signature(FasterRCNN.__init__).parameters.values()
    defaults = {p.name: p.default for p in parameters if p.default not in (None, inspect.Parameter.empty)}
    config = ModelConfig(classes=CLASSES).to_dict()
    shared = set(defaults) & set(config)
    assert len(shared) == 19  # min and max size, every RPN and box setting
    for name in shared - {"box_detections_per_img"}:
        assert config[name] == defaults[name], name
    # the one difference: 300 detections per image rather than 100, so a crowded image or tile is not cut
    assert (defaults["box_detections_per_img"], config["box_detections_per_img"]) == (100, 300)
    config = ModelConfig(classes=CLASSES)
    assert config.image_mean == (0.485, 0.456, 0.406) and config.image_std == (0.229, 0.224, 0.225)
    assert config.num_classes == 4
    assert config.anchors() == (((32,), (64,), (128,), (256,), (512,)), ((0.5, 1.0, 2.0),) * 5)


def test_sequences_are_normalized_to_tuples_and_dict_gives_lists():
    config = ModelConfig(classes=[" a ", "b"], anchor_sizes=[[16, 32.0]], aspect_ratios=[[1]], fpn=False,
                         backbone="resnet18")
    assert config.classes == ("a", "b")
    assert config.anchor_sizes == ((16, 32),) and isinstance(config.anchor_sizes[0][1], int)
    assert config.aspect_ratios == ((1.0,),)
    values = config.to_dict()
    assert values["classes"] == ["a", "b"] and values["anchor_sizes"] == [[16, 32]]
    assert hash(config) == hash(ModelConfig.from_dict(values))
    assert ModelConfig(classes=["a"], weights=None).weights == "none"  # YAML's null


def test_yaml_round_trip(tmp_path):
    config = preset("cpu", CLASSES, box_score_thresh=0.2, trainable_backbone_layers=4)
    path = config.save_yaml(tmp_path / "model.yaml")
    assert ModelConfig.load_yaml(path) == config
    plain = yaml.safe_load(path.read_text())
    assert plain["classes"] == CLASSES and plain["anchor_sizes"] == [[16, 24, 32, 48]]
    assert [p.name for p in tmp_path.iterdir()] == ["model.yaml"]  # no temporary file left behind


def test_dict_survives_a_weights_only_checkpoint(tmp_path):
    config = preset("cpu", CLASSES, weights=str(tmp_path / "start.pt"))
    torch.save({"hyper_parameters": {"model": config.to_dict()}}, tmp_path / "checkpoint.ckpt")
    loaded = torch.load(tmp_path / "checkpoint.ckpt", weights_only=True)
    assert ModelConfig.from_dict(loaded["hyper_parameters"]["model"]) == config


def test_unknown_key_names_it_and_suggests():
    with pytest.raises(ConfigError, match=r"box_score_thres: unknown field; did you mean 'box_score_thresh'") as error:
        ModelConfig.from_dict({"classes": CLASSES, "box_score_thres": 0.3})
    assert error.value.field == "box_score_thres"
    with pytest.raises(ConfigError, match="classes: is required"):
        ModelConfig.from_dict({"backbone": "resnet18"})
    with pytest.raises(ConfigError, match="mapping"):
        ModelConfig.from_dict(["classes"])


@pytest.mark.parametrize(
    "changes, field, fragment",
    [
        ({"min_size": "large"}, "min_size", "must be an integer"),
        ({"min_size": True}, "min_size", "must be an integer"),
        ({"min_size": 0}, "min_size", "must be positive"),
        ({"min_size": 900, "max_size": 800}, "min_size", "must not exceed max_size"),
        ({"box_nms_thresh": 1.5}, "box_nms_thresh", "between 0 and 1"),
        ({"rpn_score_thresh": float("nan")}, "rpn_score_thresh", "finite number"),
        ({"box_positive_fraction": 0}, "box_positive_fraction", r"\(0, 1\]"),
        ({"rpn_bg_iou_thresh": 0.8}, "rpn_bg_iou_thresh", "must not exceed rpn_fg_iou_thresh"),
        ({"classes": []}, "classes", "at least one class"),
        ({"classes": ["a", "b", "a"]}, "classes", "unique; repeated: a"),
        ({"classes": "abc"}, "classes", "must be a list"),
        ({"classes": ["a", ""]}, "classes", "non-empty string"),
        ({"classes": ["__background__"]}, "classes", "class 0"),
        ({"backbone": "vgg16"}, "backbone", "unknown backbone 'vgg16'; choose one of resnet18"),
        ({"backbone": "mobilenet_v3_large", "fpn": False}, "fpn", "with FPN only"),
        ({"fpn": "yes"}, "fpn", "true or false"),
        ({"heads": "v3"}, "heads", "'v1' or 'v2'"),
        ({"returned_layers": [5]}, "returned_layers", "stages 1, 2, 3, 4"),
        ({"returned_layers": [3, 2]}, "returned_layers", "increasing"),
        ({"fpn": False, "returned_layers": [3, 4]}, "returned_layers", "one stage"),
        ({"out_channels": 0}, "out_channels", "positive"),
        ({"out_channels": 128, "weights": "coco"}, "weights", "out_channels 256"),
        ({"image_mean": [0.5, 0.5]}, "image_mean", "three numbers"),
        ({"image_std": [0.2, 0.0, 0.2]}, "image_std", "positive"),
        ({"anchor_sizes": [[32], [64]]}, "anchor_sizes", "5 feature maps .* needs 5 tuples .* got 2"),
        ({"fpn": False, "anchor_sizes": [[32], [64]]}, "anchor_sizes", r"1 feature map \(no FPN\)"),
        ({"fpn": False, "aspect_ratios": [[1.0], [2.0]]}, "aspect_ratios", "needs 1 tuple"),
        ({"returned_layers": [3, 4], "anchor_sizes": [[32]] * 5}, "anchor_sizes", "3 feature maps"),
        ({"anchor_sizes": [[32], [64], [128], [256], [512, 600]]}, "anchor_sizes", "same number of anchors"),
        ({"anchor_sizes": [[32], [64], [128], [256], [-5]]}, "anchor_sizes", "positive"),
        ({"aspect_ratios": [[]] * 5}, "aspect_ratios", "at least one value"),
        ({"trainable_backbone_layers": 6}, "trainable_backbone_layers", "between 0 and 5 for resnet50"),
        ({"frozen_batch_norm": True}, "frozen_batch_norm", "from scratch"),
        ({"weights": "ImageNet"}, "weights", "lower case"),
        ({"backbone": "resnet18_slim", "weights": "imagenet"}, "weights", "no ImageNet weights for resnet18_slim"),
        ({"backbone": "resnet18", "weights": "coco"}, "weights", "fasterrcnn_resnet50_fpn_v2"),
        ({"fpn": False, "weights": "coco"}, "weights", "without FPN"),
        ({"returned_layers": [2, 3, 4], "weights": "coco"}, "weights", "default returned_layers"),
        ({"backbone": "mobilenet_v3_large", "heads": "v2", "weights": "coco"}, "weights", "COCO weights only"),
    ],
)
def test_bad_values_name_the_field_and_the_reason(changes, field, fragment):
    with pytest.raises(ConfigError, match=fragment) as error:
        ModelConfig.from_dict({"classes": CLASSES, **changes})
    assert error.value.field == field
    assert str(error.value).startswith(f"{field}: ")


def test_replace_checks_and_keeps_the_rest():
    config = preset("cpu", CLASSES)
    changed = config.replace(box_score_thresh=0.3)
    assert changed.box_score_thresh == 0.3 and changed.backbone == config.backbone
    assert config.box_score_thresh == 0.05  # frozen: the original is unchanged
    with pytest.raises(ConfigError, match="min_size"):
        config.replace(min_size=500)
    with pytest.raises(ConfigError, match="unknown field"):
        config.replace(colour="red")
    with pytest.raises(AttributeError):
        config.min_size = 10


def test_load_yaml_errors_name_the_file(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("classes: [a, b\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml: not valid YAML"):
        ModelConfig.load_yaml(broken)
    bad = tmp_path / "bad.yaml"
    bad.write_text("classes: [a]\nmin_size: -3\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: min_size: must be positive") as error:
        ModelConfig.load_yaml(bad)
    assert error.value.field == "min_size"
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match=r"list\.yaml: a model config is a mapping"):
        ModelConfig.load_yaml(listing)
    with pytest.raises(ConfigError, match=r"missing\.yaml: cannot read"):
        ModelConfig.load_yaml(tmp_path / "missing.yaml")


def test_default_anchors_follow_the_feature_maps():
    three = ModelConfig(classes=CLASSES, returned_layers=[2, 3, 4])
    assert three.feature_map_count == 4
    assert three.anchors()[0] == ((64,), (128,), (256,), (512,))
    single = ModelConfig(classes=CLASSES, fpn=False)
    assert single.layers == (4,) and single.anchors()[0] == ((32, 64, 128, 256, 512),)
    mobile = ModelConfig(classes=CLASSES, backbone="mobilenet_v3_large")
    assert mobile.anchors() == (((32, 64, 128, 256, 512),) * 3, ((0.5, 1.0, 2.0),) * 3)
    ratios_only = ModelConfig(classes=CLASSES, fpn=False, aspect_ratios=[[1.0]])
    assert ratios_only.anchors() == (((32, 64, 128, 256, 512),), ((1.0,),))


def test_presets():
    assert {"default", "cpu"} <= set(PRESETS)
    for name in PRESETS:
        config = preset(name, CLASSES)
        assert config.classes == tuple(CLASSES)
    default = preset("default", CLASSES)
    assert (default.backbone, default.fpn, default.weights) == ("resnet50", True, "coco")
    cpu = preset("cpu", CLASSES)
    assert cpu.weights == "none" and (cpu.min_size, cpu.max_size) == (128, 128)
    assert preset("cpu", CLASSES, min_size=96).min_size == 96
    with pytest.raises(ConfigError, match="unknown preset 'gpu'; presets are: default"):
        preset("gpu", CLASSES)
    with pytest.raises(ConfigError, match="unknown field"):
        preset("cpu", CLASSES, colour="red")
