"""build_model: every backbone variant trains and predicts; feature maps as the model makes them."""

import pytest
import torch
from torchvision.models import detection
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops.misc import FrozenBatchNorm2d

from napari_faster_rcnn.core.model.config import ModelConfig, preset
from napari_faster_rcnn.core.model.config_rules import ConfigError
from napari_faster_rcnn.core.model.detector import (
    anchor_generator,
    build_model,
    feature_maps,
    padded_image_size,
    resized_image_size,
)

CLASSES = ["circle", "square"]
# Small images and few proposals keep every variant fast; the architecture is the real one.
TINY = dict(min_size=64, max_size=64, rpn_pre_nms_top_n_train=100, rpn_post_nms_top_n_train=50,
            rpn_pre_nms_top_n_test=50, rpn_post_nms_top_n_test=20, box_batch_size_per_image=32,
            rpn_batch_size_per_image=32, box_representation_size=64)

VARIANTS = [
    *[{"backbone": name, "fpn": fpn} for name in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
      for fpn in (True, False)],
    {"backbone": "resnet18_slim", "fpn": True},
    {"backbone": "resnet18_slim", "fpn": False},
    {"backbone": "mobilenet_v3_large", "fpn": True},
    {"backbone": "resnet18", "fpn": True, "heads": "v2"},
    {"backbone": "resnet18", "fpn": True, "returned_layers": [2, 3]},
]


def tiny_batch():
    generator = torch.Generator().manual_seed(0)
    images = [torch.rand(3, 64, 64, generator=generator), torch.rand(3, 48, 64, generator=generator)]
    targets = [
        {"boxes": torch.tensor([[4.0, 6.0, 30.0, 34.0], [30.0, 30.0, 60.0, 62.0]]), "labels": torch.tensor([1, 2])},
        {"boxes": torch.zeros((0, 4)), "labels": torch.zeros((0,), dtype=torch.int64)},  # an image without objects
    ]
    return images, targets


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(str(x) for x in v.values()))
def test_every_variant_trains_one_step_and_predicts(variant):
    torch.manual_seed(0)
    config = ModelConfig(classes=CLASSES, **variant, **TINY)
    model = build_model(config)
    assert isinstance(model, detection.FasterRCNN) and model.config is config
    assert model.training
    # From scratch: trainable BatchNorm and every parameter trains.
    assert not any(isinstance(m, FrozenBatchNorm2d) for m in model.modules())
    assert all(p.requires_grad for p in model.parameters())

    images, targets = tiny_batch()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    losses = model(images, targets)
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    assert all(torch.isfinite(value) for value in losses.values())
    sum(losses.values()).backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient reaches {missing[:3]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    optimizer.step()
    changed = {name for name, p in model.named_parameters() if not torch.equal(p.detach(), before[name])}
    first_conv = next(name for name, _ in model.named_parameters() if name.startswith("backbone.body."))
    assert first_conv in changed
    assert {"roi_heads.box_predictor.cls_score.weight", "rpn.head.cls_logits.weight"} <= changed

    model.eval()
    with torch.no_grad():
        predictions = model(images)
    assert len(predictions) == 2
    for prediction in predictions:
        count = len(prediction["boxes"])
        assert prediction["boxes"].shape == (count, 4) and prediction["scores"].shape == (count,)
        assert ((prediction["labels"] >= 1) & (prediction["labels"] <= len(CLASSES))).all()


def test_cpu_preset_predictor_and_heads():
    config = preset("cpu", ["a", "b", "c"])
    model = build_model(config)
    assert model.roi_heads.box_predictor.cls_score.out_features == 4
    assert model.roi_heads.box_predictor.bbox_pred.out_features == 16
    assert model.rpn.head.cls_logits.out_channels == 12  # 4 sizes x 3 aspect ratios
    assert (model.transform.min_size, model.transform.max_size) == ((128,), 128)
    assert model.roi_heads.box_roi_pool.sampling_ratio == 1
    assert model.roi_heads.detections_per_img == 300 and model.roi_heads.score_thresh == 0.05
    assert sum(p.numel() for p in model.parameters()) < 1_500_000
    assert not hasattr(model.backbone.body, "layer3")  # cut after its second stage


def test_settings_reach_the_torchvision_modules():
    config = ModelConfig(classes=CLASSES, backbone="resnet18", box_score_thresh=0.3, box_nms_thresh=0.4,
                         box_detections_per_img=7, rpn_nms_thresh=0.6, rpn_post_nms_top_n_test=33,
                         image_mean=[0.1, 0.2, 0.3], image_std=[0.4, 0.5, 0.6], min_size=200, max_size=300)
    model = build_model(config)
    assert (model.roi_heads.score_thresh, model.roi_heads.nms_thresh, model.roi_heads.detections_per_img) == (
        0.3, 0.4, 7)
    assert model.rpn.nms_thresh == 0.6 and model.rpn._post_nms_top_n["testing"] == 33
    assert model.transform.image_mean == [0.1, 0.2, 0.3] and model.transform.image_std == [0.4, 0.5, 0.6]


@pytest.mark.parametrize(
    "config, reference",
    [
        (ModelConfig(classes=[f"c{k}" for k in range(90)]),
         lambda: detection.fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None)),
        (ModelConfig(classes=[f"c{k}" for k in range(90)], heads="v2"),
         lambda: detection.fasterrcnn_resnet50_fpn_v2(weights=None, weights_backbone=None)),
        (ModelConfig(classes=[f"c{k}" for k in range(90)], backbone="mobilenet_v3_large"),
         lambda: detection.fasterrcnn_mobilenet_v3_large_fpn(weights=None, weights_backbone=None)),
    ],
    ids=["resnet50_fpn", "resnet50_fpn_v2", "mobilenet_v3_large_fpn"],
)
def test_coco_architectures_are_torchvision_s_own(config, reference):
    """The same tensor names and shapes as torchvision's detectors, so their COCO files load as they are."""
    ours = {key: tuple(value.shape) for key, value in build_model(config).state_dict().items()}
    theirs = {key: tuple(value.shape) for key, value in reference().state_dict().items()}
    assert ours == theirs


def test_anchor_count_mismatch_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"anchor_sizes: resnet18 with FPN gives 5 feature maps .* got 1"):
        ModelConfig(classes=CLASSES, backbone="resnet18", anchor_sizes=[[16, 32, 64]])
    with pytest.raises(ConfigError, match=r"aspect_ratios: .*mobilenet_v3_large with FPN gives 3 feature maps"):
        ModelConfig(classes=CLASSES, backbone="mobilenet_v3_large", aspect_ratios=[[1.0]] * 5)
    with pytest.raises(ConfigError, match=r"anchor_sizes: resnet18_slim gives 1 feature map \(no FPN\)"):
        preset("cpu", CLASSES, anchor_sizes=[[16], [32]], aspect_ratios=[[1.0], [1.0]])


# -- what the model sees -------------------------------------------------------------------


@pytest.mark.parametrize("image_size", [(64, 64), (100, 150), (97, 203), (300, 41), (640, 480)])
def test_resized_and_padded_sizes_match_the_model_transform(image_size):
    for limits in ({"min_size": 128, "max_size": 128}, {"min_size": 96, "max_size": 200}, {"min_size": 800}):
        config = ModelConfig(classes=CLASSES, **limits)
        transform = GeneralizedRCNNTransform(config.min_size, config.max_size, [0.5] * 3, [0.2] * 3).eval()
        batch, _ = transform([torch.zeros(3, *image_size)])
        assert resized_image_size(config, image_size) == tuple(batch.image_sizes[0])
        assert padded_image_size(config, image_size) == tuple(batch.tensors.shape[-2:])


@pytest.mark.parametrize(
    "config",
    [
        preset("cpu", CLASSES),
        ModelConfig(classes=CLASSES, backbone="resnet18", min_size=96, max_size=160),
        ModelConfig(classes=CLASSES, backbone="resnet18", returned_layers=[2, 4], min_size=96, max_size=160),
        ModelConfig(classes=CLASSES, backbone="mobilenet_v3_large", min_size=96, max_size=160),
    ],
    ids=["cpu", "resnet18_fpn", "resnet18_fpn_2_4", "mobilenet_fpn"],
)
def test_feature_maps_are_what_the_model_produces(config):
    model = build_model(config).eval()
    seen = {}
    model.backbone.register_forward_hook(lambda module, inputs, output: seen.update(features=output))
    model.rpn.anchor_generator.register_forward_hook(lambda module, inputs, output: seen.update(anchors=output[0]))
    sizes, ratios = config.anchors()
    for image_size in [(128, 128), (90, 170), (200, 77)]:
        with torch.no_grad():
            model([torch.rand(3, *image_size)])
        maps = feature_maps(config, image_size)
        assert [m.name for m in maps] == list(seen["features"])
        offset = 0
        for feature_map, per_level_sizes, per_level_ratios in zip(maps, sizes, ratios, strict=True):
            tensor = seen["features"][feature_map.name]
            assert (feature_map.channels, feature_map.height, feature_map.width) == tuple(tensor.shape[1:])
            per_location = len(per_level_sizes) * len(per_level_ratios)
            count = feature_map.height * feature_map.width * per_location
            level = seen["anchors"][offset:offset + count].reshape(feature_map.height, feature_map.width,
                                                                   per_location, 4)
            offset += count
            if feature_map.height > 1 and feature_map.width > 1:
                step_y = (level[1, 0, 0, 1] - level[0, 0, 0, 1]).item()
                step_x = (level[0, 1, 0, 0] - level[0, 0, 0, 0]).item()
                assert feature_map.anchor_stride == (step_y, step_x)
        assert offset == len(seen["anchors"])
    without_size = feature_maps(config)
    assert [(m.name, m.stride, m.channels, m.height) for m in without_size] == [
        (m.name, m.stride, m.channels, None) for m in maps]


def test_feature_map_strides():
    assert [(m.name, m.stride) for m in feature_maps(ModelConfig(classes=CLASSES, backbone="resnet18"))] == [
        ("0", 4), ("1", 8), ("2", 16), ("3", 32), ("pool", 64)]
    assert [(m.stride, m.channels) for m in feature_maps(preset("cpu", CLASSES))] == [(8, 64)]
    # Without FPN a wide last stage is reduced to 256 channels, or to out_channels.
    single = ModelConfig(classes=CLASSES, backbone="resnet18", fpn=False)
    assert [(m.name, m.stride, m.channels) for m in feature_maps(single)] == [("0", 32, 256)]
    assert feature_maps(single.replace(out_channels=96))[0].channels == 96
    assert feature_maps(single.replace(returned_layers=[3]))[0].channels == 256  # 256 already: no 1x1 conv
    # torchvision's MobileNetV3 FPN takes two maps of the same stride.
    mobile = feature_maps(ModelConfig(classes=CLASSES, backbone="mobilenet_v3_large"))
    assert [(m.name, m.stride) for m in mobile] == [("0", 32), ("1", 32), ("pool", 64)]
    assert anchor_generator(preset("cpu", CLASSES)).num_anchors_per_location() == [12]


def test_caps_are_set_in_the_torchvision_model():
    config = preset("cpu", ["a"], rpn_pre_nms_top_n_train=700, rpn_pre_nms_top_n_test=650,
                    rpn_post_nms_top_n_train=350, rpn_post_nms_top_n_test=320, box_detections_per_img=450)
    model = build_model(config)
    assert model.rpn._pre_nms_top_n == {"training": 700, "testing": 650}
    assert model.rpn._post_nms_top_n == {"training": 350, "testing": 320}
    assert model.roi_heads.detections_per_img == 450


@pytest.mark.parametrize("name", ["default", "cpu"])
def test_default_caps_do_not_cut_a_crowded_tile(name):
    """A tile of a crowded image holds hundreds of objects: the caps let 300 through."""
    config = preset(name, ["a"], weights="none")
    model = build_model(config)
    assert model.roi_heads.detections_per_img >= 300
    assert model.rpn._post_nms_top_n["testing"] >= 300
    assert model.rpn._pre_nms_top_n["testing"] >= model.rpn._post_nms_top_n["testing"]


@pytest.mark.parametrize("name", ["rpn_post_nms_top_n_test", "box_detections_per_img"])
def test_caps_below_one_are_refused(name):
    with pytest.raises(ConfigError, match=name):
        preset("cpu", ["a"], **{name: 0})
