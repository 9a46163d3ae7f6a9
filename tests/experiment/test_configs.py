"""The plan's budget arithmetic and the training configs it builds (validated by the trainer's own config code)."""

import dataclasses
from pathlib import Path

import pytest

from birdie.experiment import configs
from birdie.experiment.plan import (
    ARMS, MIN_FINETUNE_STEPS, MIN_PRETRAIN_STEPS, SCALES, ExperimentPlan, eval_sizes, steps_from_budget,
    steps_from_tokens,
)
from birdie.train.config_io import read_config_file

RECIPE = Path(__file__).resolve().parents[2] / "configs" / "phonebook_finetune.yaml"


def plan(**fields) -> ExperimentPlan:
    return ExperimentPlan(**{"scale": "cpu", "arms": ARMS, "seeds": 2, "pretrain_steps": 101, "finetune_steps": 30,
                             "eval_books": 8, "eval_infilling_items": 16, **fields})


@pytest.mark.parametrize("arm", ARMS)
def test_every_arm_trains_the_same_tokens_on_the_same_mixture(arm, tmp_path):
    p = plan()
    steps = configs.stage_steps(p, arm)
    assert sum(steps) == p.pretrain_steps
    built = [configs.pretrain_config(p, "hawk", stage, n, 3, tmp_path / stage)
             for stage, n in zip(configs.stages(arm), steps)]
    for config in built:
        assert config.curriculum.mixture == SCALES["cpu"].mixture
        assert (config.train.batch_size, config.train.sequence_length) == (8, 256)
        assert config.train.seed == 3
        # the same evaluation schedule for every arm: per-objective losses compare, wall times carry the same cost
        assert config.curriculum.schedule.steps_between_evaluations == max(1, config.train.steps // 8)
    assert [c.curriculum.agent for c in built] == {"ntp": ["fixed"], "ul2": ["fixed"], "birdie": ["birdie"],
                                                    "second_stage": ["fixed", "birdie"]}[arm]


def test_arm_weightings_put_ntp_and_ul2_on_their_classes(tmp_path):
    p = plan()
    ntp = configs.pretrain_config(p, "hawk", "ntp", 10, 0, tmp_path)
    assert ntp.curriculum.ratios == {"next_token_prediction": 1.0}
    ul2 = configs.pretrain_config(p, "hawk", "ul2", 10, 0, tmp_path)
    assert ul2.curriculum.ratios == pytest.approx({"infilling": 0.8, "prefix_language_modeling": 0.2})


def test_the_second_stage_continues_from_the_first_and_resume_is_passed_through(tmp_path):
    export = tmp_path / "pretrain0-ntp" / "export"
    config = configs.pretrain_config(plan(), "hawk", "birdie", 50, 0, tmp_path / "b", pretrained=export, resume=True)
    assert config.model.pretrained == str(export)
    assert config.checkpoint.resume == "latest"


def test_finetuning_follows_the_phone_book_recipe(tmp_path):
    recipe = read_config_file(RECIPE)
    config = configs.finetune_config(plan(), "hawk", 1, tmp_path / "export", tmp_path / "ft")
    assert config.curriculum.mixture == recipe["curriculum"]["mixture"] == "supervised"
    assert config.curriculum.agent == recipe["curriculum"]["agent"]
    assert config.optimizer.weight_decay == recipe["optimizer"]["weight_decay"] == 0.0
    assert config.schedule.decay == recipe["schedule"]["decay"] == "constant"
    assert (config.data.prompt_key, config.data.completion_key) == (recipe["data"]["prompt_key"],
                                                                    recipe["data"]["completion_key"])
    assert config.data.source == "callable" and config.model.pretrained == str(tmp_path / "export")
    assert config.train.steps == 30
    # the rows hold the scale's books (their model reads up to max_seq_len)
    assert config.model.overrides["max_seq_len"] >= config.train.sequence_length


@pytest.mark.parametrize("scale_name", ["cpu", "gpu"])
def test_the_scale_books_fit_the_finetuning_rows(scale_name):
    from birdie.callables import import_callable

    scale = SCALES[scale_name]
    books = import_callable(scale.books)
    for _, record in zip(range(50), books("train", 0, 1, 0)):
        # bytes + paradigm/begin/eos tokens must fit one row
        assert len((record["prefix"] + record["target"]).encode()) + 4 <= scale.finetune_sequence_length


def test_steps_from_budget_splits_the_time_equally_and_keeps_minimums():
    scale = SCALES["cpu"]
    pretrain, finetune = steps_from_budget(scale, 60.0, 8, 4096.0)
    # 7.5 minutes per run, 55% of it pretraining at 4096 tokens/s over 8 x 256-token rows
    assert pretrain == int(0.55 * 450 * 4096 / 2048)
    assert steps_from_budget(scale, 120.0, 8, 4096.0)[0] == pytest.approx(2 * pretrain, abs=1)
    assert steps_from_budget(scale, 60.0, 16, 4096.0)[0] == pytest.approx(pretrain / 2, abs=1)
    assert steps_from_budget(scale, 0.01, 8, 10.0) == (MIN_PRETRAIN_STEPS, MIN_FINETUNE_STEPS)
    with pytest.raises(ValueError, match="budget_minutes > 0"):
        steps_from_budget(scale, 0.0, 8, 10.0)


def test_gpu_rungs_train_about_20_tokens_per_parameter_and_a_scale_without_tokens_needs_a_budget():
    from birdie.models.presets import count_parameters, preset_config

    rung = SCALES["gpu"]
    pretrain, _ = steps_from_tokens(rung)
    tokens = pretrain * rung.batch_size * rung.sequence_length
    params = count_parameters(preset_config(rung.preset("hawk"), **rung.model_overrides("hawk")))
    assert 10 <= tokens / params <= 40
    with pytest.raises(ValueError, match="--budget-minutes"):
        steps_from_tokens(dataclasses.replace(SCALES["cpu"], tokens_per_arm=None, finetune_tokens=None))


def test_the_cpu_scale_has_a_fixed_token_budget_independent_of_the_machine():
    # the default cpu run trains the scale's tokens (whole steps of its rows), whatever the machine's load
    cpu = SCALES["cpu"]
    pretrain, finetune = steps_from_tokens(cpu)
    assert pretrain * cpu.batch_size * cpu.sequence_length == cpu.tokens_per_arm
    assert finetune * cpu.finetune_batch_size * cpu.finetune_sequence_length == cpu.finetune_tokens


def test_eval_sizes_shrink_with_short_budgets_but_cover_every_query_count():
    scale = SCALES["cpu"]
    assert eval_sizes(scale, None) == (scale.eval_books, scale.eval_infilling_items)
    books, items = eval_sizes(scale, 3.0)
    assert books % scale.max_queries == 0 and books >= 4 * scale.max_queries and items >= 16
    assert books < scale.eval_books


@pytest.mark.parametrize("field, value, message", [
    ("arms", ("ntp", "gpt"), "must be distinct arms"),
    ("arms", ("ntp", "ntp"), "must be distinct arms"),
    ("seeds", 0, "must be >= 1"),
    ("scale", "tpu", "must be one of"),
    ("pretrain_steps", 1, "must be >= 2"),
    ("eval_books", 0, "must be >= 1"),
])
def test_a_bad_plan_names_its_field(field, value, message):
    with pytest.raises(ValueError, match=f"ExperimentPlan.{field}=.*{message}"):
        plan(**{field: value})


def test_gpu_configs_validate_with_the_paper_mixture_and_small_validation_batches(tmp_path):
    rung = ExperimentPlan(scale="gpu", arms=ARMS, seeds=1, pretrain_steps=6104, finetune_steps=306,
                          eval_books=256, eval_infilling_items=1000)
    for model in ("hawk", "gated_ssm"):
        config = configs.pretrain_config(rung, model, "birdie", 6104, 0, tmp_path / model)
        assert config.curriculum.mixture == "birdie" and config.train.sequence_length == 2048
        # 104 configurations are measured at each of 40 evaluations: 8 rows each keeps that to ~12% of training
        assert config.curriculum.validation_batch_size == 8
        finetune = configs.finetune_config(rung, model, 0, tmp_path / "export", tmp_path / "ft")
        assert finetune.train.sequence_length == 8192 <= finetune.model.overrides["max_seq_len"]
    for name in ("gpu", "gpu-m", "gpu-l"):  # micro-batches divide the batches (the trainer's own check)
        big = ExperimentPlan(scale=name, arms=ARMS, seeds=1, pretrain_steps=10, finetune_steps=10)
        assert configs.pretrain_config(big, "hawk", "ntp", 10, 0, tmp_path).train.grad_accum == SCALES[name].grad_accum
        assert configs.finetune_config(big, "hawk", 0, tmp_path, tmp_path).train.grad_accum > 1


@pytest.mark.parametrize("fields, message", [
    (dict(book_entries=(3, 2)), "book_entries"),
    (dict(book_entries=(0, 2)), "book_entries"),
    (dict(max_queries=3), "max_queries"),
    (dict(max_queries=0), "max_queries"),
    (dict(number_digits=2), "number_digits"),
    (dict(number_digits=11), "number_digits"),
    (dict(tokens_per_arm=10 ** 6, finetune_tokens=None), "finetune_tokens"),
])
def test_a_bad_scale_names_its_field(fields, message):
    with pytest.raises(ValueError, match=f"Scale.{message}="):
        dataclasses.replace(SCALES["cpu"], **fields)


def test_the_cpu_books_and_evaluation_sets_have_the_scales_size_and_number_length():
    from birdie.experiment import books, evaluate

    scale = SCALES["cpu"]
    low, high = scale.book_entries
    p = plan(eval_books=4 * scale.max_queries)
    records = [r for _, r in zip(range(40), books.cpu_books("train", 0, 1, 0))]
    prompts = [r["prefix"] for r in records] + [i["prompt"] for i in evaluate.phonebook_items(p, 0)]
    answers = [r["target"] for r in records] + [i["answer"] for i in evaluate.phonebook_items(p, 0)]
    for prompt, answer in zip(prompts, answers):
        entries = prompt.split("Phonebook:\n", 1)[1].split("\n\n")[0].split("\n")
        assert low <= len(entries) <= high
        numbers = [entry.rsplit(": ", 1)[1] for entry in entries]
        assert all(n.isdigit() and len(n) == scale.number_digits for n in numbers)
        asked = answer.split(", ")
        assert 1 <= len(asked) <= scale.max_queries and set(asked) <= set(numbers)
