"""Intensity normalization (issue 13): per-image percentiles, a fixed range, or the type's own scale,
chosen in the model config and repeated by prediction."""

import numpy as np
import pytest
import torch

from napari_faster_rcnn.core.data.intensity import Normalization, normalize
from napari_faster_rcnn.core.model.config import ModelConfig
from napari_faster_rcnn.core.model.config_rules import ConfigError


def _nuclei(scale: float, seed: int = 0) -> np.ndarray:
    """A 12-bit-like uint16 image: dark noisy background, two bright squares, times ``scale``."""
    rng = np.random.default_rng(seed)
    image = rng.normal(100, 10, (64, 64))
    image[10:20, 10:20] += 2000
    image[40:50, 30:45] += 1500
    return np.clip(image * scale, 0, 65535).astype(np.uint16)


def test_percentiles_match_numpy_and_follow_exposure():
    image = _nuclei(1.0)
    out = normalize(image, "percentiles:1,99.8")
    low, high = np.percentile(image.astype(np.float64), [1, 99.8])
    expected = np.clip((image - low) / (high - low), 0, 1)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, atol=1e-5)
    # four times the exposure: the same picture once normalized (the /65535 rule gives 4x the values)
    brighter = normalize(_nuclei(4.0), "auto")
    np.testing.assert_allclose(brighter, normalize(image, "auto"), atol=0.02)
    old_bright, old = normalize(_nuclei(4.0), "none"), normalize(image, "none")
    assert old.max() < 0.04 and old_bright.max() > 3.5 * old.max()


def test_default_keeps_8_bit_and_none_keeps_the_old_scale():
    rgb = np.random.default_rng(1).integers(0, 256, (8, 9, 3), dtype=np.uint8)
    assert normalize(rgb, "auto") is rgb  # unchanged: divided by 255 later, as before
    image = _nuclei(1.0)
    np.testing.assert_allclose(normalize(image, "none"), image / 65535.0, rtol=1e-6)


def test_fixed_range_and_per_channel_percentiles():
    image = np.array([[0, 100, 300, 1000]], dtype=np.uint16)
    np.testing.assert_allclose(normalize(image, "range:100,300"), [[0, 0, 1, 1]])
    two = np.stack([np.arange(100.0).reshape(10, 10), 1000 + 10 * np.arange(100.0).reshape(10, 10)], axis=-1)
    out = normalize(two.astype(np.float32), "percentiles:0,100")
    np.testing.assert_allclose(out[..., 0], out[..., 1], atol=1e-6)  # each channel on its own range
    assert out.min() == 0 and out.max() == 1
    flat = np.full((5, 5), 7, dtype=np.uint16)
    assert np.all(normalize(flat, "auto") == 0)  # a flat image: no division by zero


def test_text_form_round_trips_and_bad_rules_name_the_field():
    for text in ("auto", "none", "percentiles", "percentiles:2,99.5", "range:100,4095"):
        assert Normalization.parse(text).to_text() == text
        assert Normalization.from_dict(Normalization.parse(text).to_dict()) == Normalization.parse(text)
    assert ModelConfig(classes=["a"]).normalization == "auto"
    assert ModelConfig(classes=["a"], normalization=" Range:0,4095 ").normalization == "range:0,4095"
    for bad in ("range", "range:5,1", "percentiles:50", "gamma", "percentiles:-1,101"):
        with pytest.raises(ConfigError, match="normalization"):
            ModelConfig(classes=["a"], normalization=bad)


def test_checkpoint_carries_the_rule_and_old_checkpoints_read_as_none(tmp_path):
    from napari_faster_rcnn.core.model.checkpoints import load_checkpoint
    from napari_faster_rcnn.core.model.detector import build_model

    config = ModelConfig.from_dict({**_tiny(), "normalization": "percentiles:2,99"})
    model = build_model(config, weights="none")
    state = {f"model.{key}": value for key, value in model.state_dict().items()}
    path = tmp_path / "new.ckpt"
    torch.save({"state_dict": state, "hyper_parameters": {"config": config.to_dict()}}, path)
    assert load_checkpoint(path).config.normalization == "percentiles:2,99"
    old = {key: value for key, value in config.to_dict().items() if key != "normalization"}
    torch.save({"state_dict": state, "hyper_parameters": {"config": old}}, tmp_path / "old.ckpt")
    assert load_checkpoint(tmp_path / "old.ckpt").config.normalization == "none"


def _tiny() -> dict:
    return {"classes": ["nucleus"], "backbone": "resnet18_slim", "min_size": 64, "max_size": 64,
            "anchor_sizes": [[16]], "fpn": False, "returned_layers": [4]}
