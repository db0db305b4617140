"""Declarative config schema: every field of SynthConfig and TrainConfig is checked against its
declared type and bounds, and the CLI help and docs/CONFIG.md come from the same declarations."""

import math

import pytest

from synth import SynthConfig
from train.config import TrainConfig


@pytest.mark.parametrize("change, message", [
    ({"wb_gain_range": [-5, -1]}, r"wb_gain_range=.*-5 is outside the valid range \[0.1, 10\]"),
    ({"jpeg_quality_range": [200, 300]}, r"jpeg_quality_range=.*200 is outside the valid range \[1, 100\]"),
    ({"key_length_range": [0.5, 40]}, r"key_length_range=.*40 is outside the valid range \[0.005, 2\] x frame side"),
    ({"shadow_strength_range": [math.nan, 0.5]}, r"shadow_strength_range=.*nan is not finite"),
    ({"defocus_sigma_range": [1.0, math.inf]}, r"defocus_sigma_range=.*inf is not finite"),
    ({"n_keys_range": [1.5, 3]}, r"n_keys_range=.*1.5 is not an integer"),
    ({"ignore_band_px": "three"}, r"ignore_band_px.*'three'"),
    ({"shadow_prob": 1.5}, r"shadow_prob=1.5: 1.5 is outside the valid range \[0, 1\]"),
    ({"gamma_range": [2.0, 1.0]}, r"gamma_range=.*low > high"),
    ({"shading": "maybe"}, r"shading.*expected true/false"),
    ({"camera_backend": "opencv"}, r"camera_backend='opencv': valid names: native, imgaug"),
    ({"size": 100000}, r"size=100000: 100000 is outside the valid range \[16, 4096\] px"),
])
def test_synth_config_refuses_out_of_schema_values(change, message):
    with pytest.raises(ValueError, match=message):
        SynthConfig.default().replace(**change)


def test_synth_config_reads_yaml_booleans_and_numeric_strings(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text('shading: "no"\nshadows: "off"\nignore_band_px: "3"\njpeg_quality_range: [40, 90]\n')
    cfg = SynthConfig.from_yaml(p)
    assert cfg.shading is False and cfg.shadows is False  # the string "no" never turns a family on
    assert cfg.ignore_band_px == 3 and cfg.jpeg_quality_range == (40, 90)
    p.write_text("wb_gain_range: [-5, -1]\n")
    with pytest.raises(ValueError, match=str(p)):
        SynthConfig.from_yaml(p)


@pytest.mark.parametrize("change, message", [
    ({"batch_size": "twelve"}, r"batch_size.*'twelve'"),
    ({"real_fraction": 1.5}, r"real_fraction=1.5: 1.5 is outside the valid range \[0, 1\]"),
    ({"lr": math.nan}, r"lr=nan: nan is not finite"),
    ({"image_size": 100000}, r"image_size=100000: 100000 is outside the valid range \[32, 2048\] px"),
    ({"amp": "fp8"}, r"amp='fp8': valid names: auto, bf16, off"),
    ({"warmup": -1}, r"warmup=-1: -1 is outside the valid range >= 0"),
])
def test_train_config_refuses_out_of_schema_values(change, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**change).validate()


def test_every_field_is_declared_with_help():
    import dataclasses

    for cls in (SynthConfig, TrainConfig):
        for f in dataclasses.fields(cls):
            assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no help text"


def test_train_help_shows_units_and_ranges(capsys):
    from keysynth.cli import main

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "px, range [32, 2048]" in out
    assert "range [0, 1]" in out


def test_config_reference_is_up_to_date():
    from keysynth.config_docs import DOC, render

    assert DOC.read_text() == render(), "docs/CONFIG.md is stale: run python -m keysynth.config_docs"
