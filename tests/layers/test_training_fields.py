"""The form's fields come from the config dataclasses: every field once, values that survive
the trip through their editors' text, overrides that name only what changed."""

from __future__ import annotations

import dataclasses

import pytest

from napari_faster_rcnn.core.model.config import PRESETS, ModelConfig, preset
from napari_faster_rcnn.core.training.settings import TrainingSettings
from napari_faster_rcnn.core.training.transforms import AugmentationConfig
from napari_faster_rcnn.layers import training_fields


def names(specs) -> list[str]:
    return [spec.name for spec in specs]


def test_every_model_and_training_field_has_exactly_one_place_in_the_form():
    model = [item.name for item in dataclasses.fields(ModelConfig) if item.name != "classes"]
    shown = [*training_fields.COMMON_MODEL_FIELDS, *names(training_fields.model_specs(folded=True))]
    assert sorted(shown) == sorted(model) and len(set(shown)) == len(shown)
    assert names(training_fields.model_specs(folded=False)) == [name for name in model if name in training_fields.COMMON_MODEL_FIELDS]

    training = [item.name for item in dataclasses.fields(TrainingSettings)]
    folded = names(training_fields.training_specs())
    assert sorted([*training_fields.FORM_TRAINING_FIELDS, *folded]) == sorted(training)
    assert {"max_steps", "num_workers", "warmup_steps", "scheduler", "precision"} <= set(folded)
    assert names(training_fields.augmentation_specs()) == [item.name for item in dataclasses.fields(AugmentationConfig)]


def test_each_field_gets_an_editor_of_its_kind():
    kinds = {spec.name: (spec.kind, spec.optional) for spec in
             [*training_fields.model_specs(), *training_fields.augmentation_specs(), *training_fields.training_specs()]}
    assert kinds["anchor_sizes"] == ("text", True)
    assert kinds["out_channels"] == ("int", True)
    assert kinds["rpn_nms_thresh"] == ("float", False)
    assert kinds["frozen_batch_norm"] == ("optional_bool", True)
    assert kinds["heads"][0] == kinds["scheduler"][0] == kinds["precision"][0] == "choice"
    assert kinds["scale_range"] == ("range", False)
    assert kinds["cache"] == ("bool", False)
    assert kinds["early_stopping_patience"] == ("int", True)
    assert kinds["gradient_clip"] == ("float", True)


@pytest.mark.parametrize("name", list(PRESETS))
def test_a_presets_values_survive_their_editors_text_and_override_nothing(name):
    values = training_fields.preset_values(name)
    specs = {spec.name: spec for spec in training_fields.model_specs()}
    read = {key: training_fields.parse_value(specs[key], training_fields.format_value(value)) if key in specs and specs[key].kind != "bool"
            else value for key, value in values.items()}
    assert training_fields.model_overrides(name, read) == {}
    assert preset(name, ["a"], **training_fields.model_overrides(name, read)) == preset(name, ["a"])


def test_overrides_name_only_the_fields_that_differ_from_the_preset():
    values = {**training_fields.preset_values("cpu"), "min_size": 64, "anchor_sizes": [[8, 16]], "box_score_thresh": 0.3}
    assert training_fields.model_overrides("cpu", values) == {"min_size": 64, "anchor_sizes": [[8, 16]], "box_score_thresh": 0.3}
    assert training_fields.model_overrides("cpu", {**training_fields.preset_values("cpu"), "anchor_sizes": ((16, 24, 32, 48),)}) == {}


def test_text_that_is_no_value_is_refused_naming_the_field():
    specs = {spec.name: spec for spec in [*training_fields.model_specs(), *training_fields.training_specs()]}
    assert training_fields.parse_value(specs["rpn_nms_thresh"], "1e-05") == 1e-05  # YAML would read a string
    assert training_fields.parse_value(specs["out_channels"], " ") is None
    assert training_fields.parse_value(specs["anchor_sizes"], "[[16, 32], [64]]") == [[16, 32], [64]]
    with pytest.raises(ValueError, match="rpn_nms_thresh: 'high' is not a number"):
        training_fields.parse_value(specs["rpn_nms_thresh"], "high")
    with pytest.raises(ValueError, match="roi_output_size: '7.5' is not a whole number"):
        training_fields.parse_value(specs["roi_output_size"], "7.5")
    with pytest.raises(ValueError, match="roi_output_size: needs a value"):
        training_fields.parse_value(specs["roi_output_size"], "")
    with pytest.raises(ValueError, match=r"anchor_sizes: '\[\[16, 32' is not a value"):
        training_fields.parse_value(specs["anchor_sizes"], "[[16, 32")


def test_tile_size_setting_of_the_form_controls():
    from napari_faster_rcnn.layers.training_fields import tile_size_setting

    assert tile_size_setting(False, 256) == 0
    assert tile_size_setting(True, 0) is None
    assert tile_size_setting(True, 256) == 256


@pytest.mark.parametrize(("text", "expected"), [("", None), ("1", (1,)), ("0, 2", (0, 2)), ("[2, 1, 0]", (2, 1, 0))])
def test_the_channels_field_takes_what_a_person_types(text, expected):
    spec = next(spec for spec in training_fields.model_specs(folded=True) if spec.name == "channels")
    assert spec.optional and "zeros" in spec.help
    value = training_fields.parse_value(spec, text)
    assert ModelConfig(classes=("cell",), channels=value).channels == expected
    assert training_fields.parse_value(spec, training_fields.format_value(expected)) in (expected, list(expected or ()),
                                                                                          None)
