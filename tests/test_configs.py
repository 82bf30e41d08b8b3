"""Every option of every config group composes; the cheap ones instantiate; schemas catch typos."""

from __future__ import annotations

from pathlib import Path

import hydra
import pytest
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import OmegaConf, open_dict

from tests.conftest import compose_config
from tonetune.config import CONFIG_DIR

GROUPS = [
    "objective",
    "persona",
    "question_set",
    "base_model",
    "adapter",
    "trainer",
    "logger",
    "callbacks",
    "data",
    "optimizer",
    "scheduler",
    "debug",
    "experiment",
]


def options(group: str) -> list[str]:
    """The selectable YAML options of a group (files starting with _ are shared fragments)."""
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml") if not p.stem.startswith("_"))


# What a later stage's experiment needs from the command line: the run it continues or compares with.
REQUIRED_BY_STAGES = {"init_from", "single_turn_run"}
# Groups that train.yaml does not have: composed in the command that selects them (train's typed
# schema refuses a key it does not know).
COMMAND_OF = {"question_set": "synthesize"}
CASES = [(group, option) for group in GROUPS for option in options(group)]


def test_train_refuses_a_key_it_does_not_know(tmp_path: Path) -> None:
    with pytest.raises(ConfigCompositionException, match="question_set"):
        compose_config("train", ["+question_set=celebrity", f"paths.output_dir={tmp_path}"])
    with pytest.raises(ConfigCompositionException, match=r"checkpoint\.select"):
        compose_config("train", ["checkpoint.select=middle", f"paths.output_dir={tmp_path}"])
    with pytest.raises(ConfigCompositionException, match=r"base_model\.dtype"):
        compose_config("train", ["base_model.dtype=float8", f"paths.output_dir={tmp_path}"])


def test_every_group_has_options() -> None:
    for group in GROUPS:
        assert options(group), f"conf/{group}/ has no options"


@pytest.mark.parametrize(("group", "option"), CASES, ids=[f"{g}={o}" for g, o in CASES])
def test_option_composes_and_resolves(group: str, option: str, tmp_path: Path) -> None:
    cfg = compose_config(
        COMMAND_OF.get(group, "train"), [f"{group}={option}", f"paths.output_dir={tmp_path}"]
    )
    job_config = OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"])
    keys = set(job_config.keys())  # `key in job_config` is False for a ??? value
    for key in REQUIRED_BY_STAGES:  # only a stage's previous run may be left to the user (then: all resolve)
        if key in keys and OmegaConf.is_missing(job_config, key):
            OmegaConf.update(job_config, key, str(tmp_path / "previous_run"))
    plain = OmegaConf.to_container(job_config, resolve=True, throw_on_missing=True, enum_to_str=True)
    if group in {"persona", "adapter", "base_model"}:
        assert plain[group]["name"]
    assert plain["paths"]["output_dir"] == str(tmp_path)


def test_personas_are_distinct_and_have_markers(tmp_path: Path) -> None:
    prompts = set()
    for option in options("persona"):
        cfg = compose_config("train", [f"persona={option}", f"paths.output_dir={tmp_path}"])
        assert cfg.persona.name == option
        # stoic_mentor has no surface markers by design: only the tone readers can recognise it
        assert cfg.persona.markers or option == "stoic_mentor", f"persona {option} has no tone markers"
        assert cfg.persona.min_words < cfg.persona.max_words
        prompts.add(cfg.persona.system_prompt)
    assert len(prompts) == len(options("persona")) >= 4


def test_celebrity_question_set_is_the_original_four_prompts(tmp_path: Path) -> None:
    cfg = compose_config("synthesize", [f"paths.output_dir={tmp_path}", "question_set=celebrity"])
    qs = cfg.question_set
    assert qs.questions_per_prompt == 50
    assert [p.category for p in qs.prompts] == ["controversial", "tech_entrepreneur", "funny", "hilarious"]
    assert (
        qs.prompts[0].prompt.format(n=50) == "make list of 50 controversial questions to ask to a celebrity"
    )


@pytest.mark.parametrize("option", options("base_model"))
def test_base_models_name_their_lora_targets(option: str, tmp_path: Path) -> None:
    cfg = compose_config("train", [f"base_model={option}", f"paths.output_dir={tmp_path}"])
    assert cfg.base_model.target_modules
    assert cfg.base_model.block_class.startswith("transformers.models.")
    if cfg.base_model.source == "hub":
        assert "/" in cfg.base_model.path
    assert hydra.utils.get_class(cfg.base_model.block_class).__name__.endswith("DecoderLayer")


def test_cheap_objects_instantiate(tmp_path: Path) -> None:
    import lightning as L
    import torch

    cfg = compose_config("train", [f"paths.output_dir={tmp_path}", "logger=csv"])
    optimizer = hydra.utils.instantiate(cfg.optimizer)([torch.nn.Parameter(torch.zeros(2))])
    assert optimizer.defaults["lr"] == cfg.adapter.lr
    scheduler = hydra.utils.instantiate(cfg.scheduler)(
        optimizer=optimizer, num_warmup_steps=1, num_training_steps=10
    )
    assert scheduler.get_last_lr() == [0.0]
    callbacks = {name: hydra.utils.instantiate(node) for name, node in cfg.callbacks.items()}
    assert {name: type(c).__name__ for name, c in callbacks.items()} == {
        "model_checkpoint": "ModelCheckpoint",
        "last_checkpoint": "LastCheckpoint",
        "early_stopping": "EarlyStopping",
        "lr_monitor": "LearningRateMonitor",
        "throughput": "ThroughputMonitor",
        "parameter_count": "ParameterCount",
        "model_summary": "RichModelSummary",
        "progress_bar": "RichProgressBar",
    }
    assert callbacks["model_checkpoint"].monitor == "val/loss" and not callbacks["early_stopping"].strict
    callbacks = list(callbacks.values())
    loggers = [hydra.utils.instantiate(node) for node in cfg.logger.values()]
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
    assert isinstance(trainer, L.Trainer)
    data = hydra.utils.instantiate(cfg.data)
    assert data.source.endswith("data/elon_musk")


def test_fsdp_strategy_wraps_each_transformer_block_of_the_base_model(tmp_path: Path) -> None:
    from torch.distributed.fsdp import ShardingStrategy
    from transformers.models.qwen2.modeling_qwen2 import Qwen2DecoderLayer

    cfg = compose_config("train", ["trainer=fsdp", "base_model=qwen2.5_1.5b", f"paths.output_dir={tmp_path}"])
    strategy = hydra.utils.instantiate(cfg.trainer.strategy)
    policy = strategy.kwargs["auto_wrap_policy"]
    assert policy._module_classes == {Qwen2DecoderLayer}
    assert strategy.sharding_strategy == ShardingStrategy.FULL_SHARD
    assert strategy.kwargs["use_orig_params"] is True


def test_adapter_override_sets_learning_rate_through_interpolation(tmp_path: Path) -> None:
    full = compose_config("train", ["adapter=full", f"paths.output_dir={tmp_path}"])
    lora = compose_config("train", ["adapter=lora", "optimizer.lr=0.001", f"paths.output_dir={tmp_path}"])
    assert full.optimizer.lr == pytest.approx(2e-5)
    assert lora.optimizer.lr == pytest.approx(1e-3)


def test_misspelled_persona_override_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigCompositionException) as err:
        compose_config("train", ["persona.sytem_prompt=hello", f"paths.output_dir={tmp_path}"])
    assert "sytem_prompt" in str(err.value) + str(err.value.__cause__)


def test_schema_checks_field_types(tmp_path: Path) -> None:
    with pytest.raises(ConfigCompositionException) as err:
        compose_config("train", ["persona.min_words=many", f"paths.output_dir={tmp_path}"])
    assert "min_words" in str(err.value) + str(err.value.__cause__)


def test_misspelled_field_in_a_persona_file_names_the_field(tmp_path: Path) -> None:
    extra = tmp_path / "extra"
    (extra / "persona").mkdir(parents=True)
    (extra / "persona" / "typo.yaml").write_text(
        "defaults:\n  - schema\n  - _self_\nname: typo\ndisplay_name: T\ndescription: d\n"
        "system_prompt: s\nmax_wrods: 10\n"
    )
    with pytest.raises(Exception) as err:
        compose_config(
            "train", [f"hydra.searchpath=[file://{extra}]", "persona=typo", f"paths.output_dir={tmp_path}"]
        )
    message = str(err.value) + str(err.value.__cause__)
    assert "max_wrods" in message


def test_adapter_kind_is_validated(tmp_path: Path) -> None:
    with pytest.raises(ConfigCompositionException) as err:
        compose_config("train", ["adapter.kind=lorx", f"paths.output_dir={tmp_path}"])
    assert "lorx" in str(err.value) + str(err.value.__cause__)


def test_unknown_persona_is_a_missing_config(tmp_path: Path) -> None:
    with pytest.raises(MissingConfigException) as err:
        compose_config("train", ["persona=does_not_exist", f"paths.output_dir={tmp_path}"])
    assert "does_not_exist" in str(err.value)


@pytest.mark.parametrize("option", options("persona"))
def test_few_shot_examples_show_every_required_marker(option: str, tmp_path: Path) -> None:
    from tonetune.persona import compiled_markers, within_length

    cfg = compose_config("train", [f"persona={option}", f"paths.output_dir={tmp_path}"])
    required = {m.name for m in cfg.persona.markers if m.required}
    markers = compiled_markers(cfg.persona)
    assert cfg.persona.few_shot
    for example in cfg.persona.few_shot:
        for name in required:
            assert markers[name].search(example.answer), f"{option}: {example.answer!r} lacks {name}"
        assert within_length(example.answer, cfg.persona)


@pytest.mark.parametrize(
    ("experiment", "option", "contestant"),
    [("elon_gpt4_sft_dpo", "init_from", "sft"), ("elon_gpt4_multiturn", "single_turn_run", "single_turn")],
)
def test_experiment_contestants_that_name_an_earlier_run_resolve(
    experiment, option, contestant, tmp_path
) -> None:
    """The evaluation settings are converted from a sub-tree; `${init_from}` lives at the root."""
    from tonetune.evaluation.settings import EvaluationSettings

    earlier = str(tmp_path / "earlier_run")
    cfg = compose_config(
        "train", [f"experiment={experiment}", f"{option}={earlier}", f"paths.output_dir={tmp_path}"]
    )
    settings = EvaluationSettings.from_cfg(cfg.evaluation)
    assert settings.contestants[contestant].run_dir == earlier


@pytest.mark.parametrize(
    ("name", "taken_by"), [("reference", "reference answers"), ("__neutral__", "own answers")]
)
def test_a_contestant_may_not_take_a_name_the_evaluation_uses(name, taken_by, tmp_path) -> None:
    from tonetune.errors import ConfigError
    from tonetune.evaluation.settings import EvaluationSettings

    cfg = compose_config("evaluate", [f"paths.output_dir={tmp_path}"])
    with open_dict(cfg):  # as an experiment's YAML may name one
        cfg.evaluation.contestants[name] = cfg.evaluation.contestants.base
    message = rf"^evaluation\.contestants\.{name}: the name is taken by .*{taken_by}"
    with pytest.raises(ConfigError, match=message):
        EvaluationSettings.from_cfg(cfg.evaluation)
