"""Sampling converts to and from every encoding in one place, with one default."""

from __future__ import annotations

import subprocess
from dataclasses import replace

import pytest
from transformers import GenerationConfig

from tests.conftest import compose_config
from tonetune.errors import ConfigError
from tonetune.evaluation.contestants import chat_request
from tonetune.evaluation.settings import EvaluationSettings
from tonetune.generation.sampling import Sampling
from tonetune.schemas.sampling import SamplingConfig

SAMPLED = Sampling(max_new_tokens=40, temperature=0.7, top_p=0.9, repetition_penalty=1.2, seed=7)


@pytest.mark.parametrize("sampling", [SAMPLED, Sampling(max_new_tokens=12, repetition_penalty=1.15)])
def test_every_encoding_reads_back_as_the_same_settings(sampling) -> None:
    request = chat_request([{"role": "user", "content": "Hi"}], sampling)
    assert request.sampling == sampling
    assert Sampling.from_request_params(**sampling.request_params()) == sampling
    saved = sampling.to_generation_config(GenerationConfig(eos_token_id=[2]))
    read = Sampling.from_generation_config(GenerationConfig.from_dict(saved.to_dict()))
    assert read == replace(sampling, seed=0)  # a generation config has no seed
    assert saved.eos_token_id == [2]  # the model's stop tokens are kept


def test_the_openai_body_carries_every_setting_that_is_not_the_default() -> None:
    assert SAMPLED.openai_params("max_completion_tokens") == {
        "temperature": 0.7,
        "max_completion_tokens": 40,
        "seed": 7,
        "top_p": 0.9,
        "repetition_penalty": 1.2,
    }
    assert set(Sampling().openai_params()) == {"temperature", "max_tokens", "seed"}


def test_one_default_for_evaluation_arena_chat_and_server(tmp_path) -> None:
    default = Sampling.default()
    assert default == Sampling.from_config(SamplingConfig())
    assert default.repetition_penalty == 1.15 and default.greedy
    evaluation = EvaluationSettings.from_cfg(
        compose_config("evaluate", ["run_dir=x", f"paths.output_dir={tmp_path}"]).evaluation
    )
    assert evaluation.sampling == default
    arena = compose_config("arena", ["run_dir=x", f"paths.output_dir={tmp_path}"]).sampling
    assert Sampling.from_config(SamplingConfig(**arena)) == default
    assert default.overridden(temperature=0.5, top_p=None) == Sampling(
        max_new_tokens=96, temperature=0.5, repetition_penalty=1.15
    )


def test_a_value_out_of_range_names_its_key() -> None:
    with pytest.raises(ConfigError, match=r"^evaluation\.sampling\.top_p=0\.0 is out of range"):
        Sampling.from_config(SamplingConfig(top_p=0.0), "evaluation.sampling")


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("evaluation.sampling.temperature=oops", "evaluation.sampling.temperature"),
        ("evaluation.sampling.top_p=0", "evaluation.sampling.top_p"),
    ],
)
def test_a_bad_evaluation_sampling_value_stops_training_before_the_model_loads(
    override, key, tmp_path
) -> None:
    result = subprocess.run(
        [
            "tonetune-train",
            "base_model=tiny",
            "data=example",
            "logger=none",
            override,
            f"paths.output_dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0 and key in lines[-1] and len([x for x in lines if "error" in x]) == 1, (
        result.stderr[-2000:]
    )
    assert not (tmp_path / "model").exists() and "Loading" not in result.stderr


def test_the_seeds_of_several_choices_stay_in_range() -> None:
    from tonetune.generation.sampling import SEED_RANGE
    from tonetune.serving.server import choice_seed

    assert [choice_seed(41, i) for i in range(3)] == [41, 42, 43]
    top = choice_seed(SEED_RANGE[1], 1)
    assert SEED_RANGE[0] <= top <= SEED_RANGE[1] and Sampling(seed=top).seed == top
