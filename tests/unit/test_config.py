"""Config dataclasses check themselves; TOML files fill them, and every error names the field, value and fix."""

from __future__ import annotations

import dataclasses

from pathlib import Path
from typing import Any

import pytest

from tinybert_edge.config import DataConfig, DistillConfig, FinetuneConfig, PipelineConfig, from_dict
from tinybert_edge.errors import ConfigError


def to_toml(data: dict[str, Any], table: str = "") -> str:
    """A minimal TOML writer for the test (scalars, lists and nested tables; None is left out as TOML has no null)."""

    def scalar(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str):
            return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(value, list):
            return "[" + ", ".join(scalar(v) for v in value) + "]"
        return repr(value)

    lines = [f"[{table}]"] if table else []
    nested = []
    for key, value in data.items():
        if value is None:
            continue
        if isinstance(value, dict):
            nested.append((key, value))
        else:
            lines.append(f"{key} = {scalar(value)}")
    text = "\n".join(lines) + "\n"
    for key, value in nested:
        text += "\n" + to_toml(value, f"{table}.{key}" if table else key)
    return text


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "kwargs, field, value",
    [
        ({"batch_size": 0}, "distill.batch_size", "0"),
        ({"learning_rate": -1e-4}, "distill.learning_rate", "-0.0001"),
        ({"temperature": 0.0}, "distill.temperature", "0.0"),
        ({"gradient_accumulation": -2}, "distill.gradient_accumulation", "-2"),
        ({"hidden_weight": -1.0}, "distill.hidden_weight", "-1.0"),
        ({"warmup_ratio": 1.0}, "distill.warmup_ratio", "1.0"),
        ({"layer_map": "top"}, "distill.layer_map", "'top'"),
    ],
)
def test_distill_config_errors_name_field_and_value(kwargs, field, value):
    with pytest.raises(ConfigError) as info:
        DistillConfig(**kwargs)
    assert f"{field} = {value}" in str(info.value)


def test_distill_config_allowed_values_listed():
    with pytest.raises(ConfigError, match="allowed values are 'uniform', 'last'"):
        DistillConfig(layer_map="top")


def test_distill_config_nothing_to_train():
    with pytest.raises(ConfigError, match="intermediate_epochs and prediction_epochs are both 0"):
        DistillConfig(intermediate_epochs=0, prediction_epochs=0)
    # one stage alone is fine, weights may be zero
    DistillConfig(intermediate_epochs=0, attention_weight=0.0, hard_label_weight=0.0)
    DistillConfig(prediction_epochs=0, layer_map=[1, 2, 3])


def test_config_is_a_value_error():
    # ConfigError is also a ValueError, so generic callers can catch it
    with pytest.raises(ValueError):
        DistillConfig(batch_size=-1)


@pytest.mark.parametrize(
    "kwargs, field, value",
    [
        ({"epochs": 0}, "finetune.epochs", "0"),
        ({"batch_size": -8}, "finetune.batch_size", "-8"),
        ({"learning_rate": 0.0}, "finetune.learning_rate", "0.0"),
        ({"max_length": 0}, "finetune.max_length", "0"),
        ({"warmup_ratio": -0.1}, "finetune.warmup_ratio", "-0.1"),
    ],
)
def test_finetune_config_errors(kwargs, field, value):
    with pytest.raises(ConfigError) as info:
        FinetuneConfig(**kwargs)
    assert f"{field} = {value}" in str(info.value)


@pytest.mark.parametrize("cls, owner", [(FinetuneConfig, "finetune"), (DistillConfig, "distill")])
@pytest.mark.parametrize("value", [0, -5])
def test_max_train_examples_must_be_positive(cls, owner, value):
    with pytest.raises(ConfigError) as info:
        cls(max_train_examples=value)
    assert f"{owner}.max_train_examples = {value}" in str(info.value)
    assert cls(max_train_examples=None).max_train_examples is None


def test_data_config_errors():
    with pytest.raises(ConfigError) as info:
        DataConfig(encoding_errors="skip")
    assert "data.encoding_errors = 'skip'" in str(info.value)
    assert "'strict', 'replace', 'ignore'" in str(info.value)
    with pytest.raises(ConfigError, match=r"data.split = \[0.8, 0.2\]"):
        DataConfig(split=[0.8, 0.2])
    with pytest.raises(ConfigError, match=r"data.split = \[0.8, 0.1, 0.2\].*sum to 1"):
        DataConfig(split=[0.8, 0.1, 0.2])


def test_data_config_negative_split_fraction():
    with pytest.raises(ConfigError, match=r"data.split = \[1.2, -0.1, -0.1\]"):
        DataConfig(split=[1.2, -0.1, -0.1])


def test_data_config_max_test_examples():
    with pytest.raises(ConfigError, match="data.max_test_examples = 0"):
        DataConfig(max_test_examples=0)


def test_pipeline_config_errors():
    with pytest.raises(ConfigError) as info:
        PipelineConfig(formats=["onnx", "coreml"])
    assert "pipeline.formats = 'coreml'" in str(info.value) and "'onnx', 'tflite'" in str(info.value)
    with pytest.raises(ConfigError, match=r"pipeline.sequence_lengths = \[4, 128\]"):
        PipelineConfig(sequence_lengths=[4, 128])
    with pytest.raises(ConfigError, match=r"pipeline.sequence_lengths = \[\]"):
        PipelineConfig(sequence_lengths=[])
    with pytest.raises(ConfigError, match="pipeline.threads = 0"):
        PipelineConfig(threads=0)


@pytest.mark.parametrize("field, value", [("bench_min_seconds", -1.0), ("bench_min_iterations", 0)])
def test_pipeline_bench_settings(field, value):
    with pytest.raises(ConfigError, match=f"pipeline.{field} = {value}"):
        PipelineConfig(**{field: value})


def test_wrong_type_names_the_field(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[distill]\nbatch_size = "32"\n')
    with pytest.raises(ConfigError) as info:
        PipelineConfig.from_toml(path)
    assert "distill.batch_size = '32'" in str(info.value)


# ---------------------------------------------------------------- defaults


def test_pipeline_defaults():
    cfg = PipelineConfig()
    assert cfg.data.path.startswith("pkg://")
    assert cfg.teacher.startswith("pkg://")
    assert cfg.data.encoding_errors == "replace"
    # the embedded default is a bounded budget, not the whole corpus
    assert cfg.finetune.max_train_examples is not None
    assert cfg.distill.max_train_examples is not None
    assert cfg.formats == ("onnx", "tflite")
    # configs are values: frozen, with tuples, so no instance can change another's defaults
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.threads = 4  # type: ignore[misc]
    with pytest.raises(AttributeError):
        cfg.sequence_lengths.append(256)  # type: ignore[attr-defined]
    assert PipelineConfig(sequence_lengths=[128, 256]).sequence_lengths == (128, 256)
    assert cfg.sequence_lengths == (64, 128)
    assert cfg.data.split == (0.8, 0.1, 0.1)


# ---------------------------------------------------------------- TOML


EXAMPLE = """
name = "sst2-small"
teacher = "models/teacher"
sequence_lengths = [32, 64]
formats = ["onnx"]

[data]
path = "data/sst2/train.tsv"
dev_path = "data/sst2/dev.tsv"
split = [0.9, 0.05, 0.05]

[finetune]
epochs = 2.0

[distill]
student = "teacher-layers:2,4"
layer_map = [3, 6]
temperature = 2.0
hard_label_weight = 0.5
"""


def test_from_toml_nested_tables(tmp_path):
    path = tmp_path / "pipeline.toml"
    path.write_text(EXAMPLE)
    cfg = PipelineConfig.from_toml(path)
    assert cfg.name == "sst2-small"
    assert cfg.teacher == "models/teacher"
    assert cfg.sequence_lengths == (32, 64)
    assert isinstance(cfg.data, DataConfig) and isinstance(cfg.distill, DistillConfig)
    assert cfg.data.path == "data/sst2/train.tsv"
    assert cfg.data.dev_path == "data/sst2/dev.tsv"
    assert cfg.data.split == (0.9, 0.05, 0.05)
    assert cfg.distill.layer_map == (3, 6)
    assert cfg.distill.temperature == 2.0
    assert cfg.distill.hard_label_weight == 0.5
    assert cfg.finetune.epochs == 2.0
    # keys a table leaves out keep the pipeline's defaults, not the bare dataclass defaults
    assert cfg.data.encoding_errors == "replace"
    # the embedded default is a bounded budget, not the whole corpus
    assert cfg.finetune.max_train_examples is not None
    assert cfg.distill.max_train_examples is not None
    assert cfg.threads == 2


def test_from_toml_round_trip(tmp_path):
    first = tmp_path / "a.toml"
    first.write_text(EXAMPLE)
    cfg = PipelineConfig.from_toml(first)
    second = tmp_path / "b.toml"
    second.write_text(to_toml(cfg.to_dict()))
    again = PipelineConfig.from_toml(second)
    assert again == cfg
    assert again.to_dict() == cfg.to_dict()
    assert isinstance(cfg.to_dict()["distill"], dict)


def test_from_toml_overrides(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(EXAMPLE)
    cfg = PipelineConfig.from_toml(path, threads=4, distill={"temperature": 1.0})
    assert cfg.threads == 4
    assert cfg.distill.temperature == 1.0
    assert cfg.distill.layer_map == (3, 6)  # the rest of [distill] is kept


def test_from_toml_validates_values(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[distill]\ntemperature = -1.0\n")
    with pytest.raises(ConfigError, match="distill.temperature = -1.0"):
        PipelineConfig.from_toml(path)


def test_unknown_top_level_key(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('teachr = "x"\n')
    with pytest.raises(ConfigError) as info:
        PipelineConfig.from_toml(path)
    message = str(info.value)
    assert "['teachr']" in message and "[pipeline]" in message
    assert "allowed keys:" in message and "teacher" in message and "distill" in message


def test_unknown_nested_key(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[distill]\ntemprature = 2.0\n")
    with pytest.raises(ConfigError) as info:
        PipelineConfig.from_toml(path)
    message = str(info.value)
    assert "['temprature']" in message and "[pipeline.distill]" in message
    assert "temperature" in message and "layer_map" in message


def test_nested_table_given_as_scalar(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('data = "train.tsv"\n')
    with pytest.raises(ConfigError, match="data must be a table"):
        PipelineConfig.from_toml(path)


def test_from_dict_directly():
    cfg = from_dict(DistillConfig, {"temperature": 3.0}, "distill")
    assert cfg == DistillConfig(temperature=3.0)
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['x'\] in \[distill\]"):
        from_dict(DistillConfig, {"x": 1}, "distill")


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        PipelineConfig.from_toml(tmp_path / "nope.toml")
    assert "does not exist" in str(info.value) and "--config" in str(info.value)


def test_config_path_is_a_folder(tmp_path):
    with pytest.raises(ConfigError, match="--config"):
        PipelineConfig.from_toml(tmp_path)


def test_invalid_toml(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[distill\ntemperature = \n")
    with pytest.raises(ConfigError) as info:
        PipelineConfig.from_toml(path)
    assert "not valid TOML" in str(info.value)
    assert "bad.toml" in str(info.value)


def test_toml_cannot_build_objects(tmp_path):
    # a string stays a string: nothing in a config file is evaluated
    path = tmp_path / "c.toml"
    path.write_text('name = "__import__(\'os\').getcwd()"\n')
    assert PipelineConfig.from_toml(path).name == "__import__('os').getcwd()"


def test_example_written_as_path_string(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(EXAMPLE)
    assert PipelineConfig.from_toml(str(path)) == PipelineConfig.from_toml(Path(path))


def test_fit_buckets_must_leave_room_for_the_sequence_lengths():
    from tinybert_edge.config import PipelineConfig

    assert PipelineConfig(fit_buckets=6).fit_buckets == 6
    with pytest.raises(ConfigError, match=r"fit_buckets.*at least 2 \(the sequence_lengths stay among the buckets\)"):
        PipelineConfig(fit_buckets=1)
    with pytest.raises(ConfigError, match="fit_buckets"):
        PipelineConfig(fit_buckets="8")
