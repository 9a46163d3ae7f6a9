"""``CurriculumConfig``: the training config's ``curriculum`` section is what ``Birdie`` takes; the mixture and the
"ul2/ntp is its own mixture" rule are resolved in one place."""

import json

import pytest
import torch

from birdie import Birdie, BirdieConfig, CurriculumConfig
from birdie.curriculum import BirdieAgentConfig, RewardModelConfig, Schedule
from birdie.curriculum.config import resolve_curriculum_mixture
from birdie.objectives import resolve_mixture
from birdie.tokenizers import ByteTokenizer
from birdie.train.config import ConfigError
from birdie.train.config_io import build_config
from birdie.train.curriculum_setup import build_curriculum
from birdie.train.distributed import Runtime

SMALL = {"mixture": "demo", "num_validation_batches": 1, "decision_delay_batches": 0,
         "schedule": {"warmup_steps": 3, "steps_between_evaluations": 3},
         "birdie_agent": {"num_candidates": 32, "num_proposals": 8, "seed": 5},
         "reward_model": {"width": 16, "num_layers": 1, "train_steps": 3}}


def test_the_training_section_is_the_dataclass_birdie_takes():
    curriculum = build_config({"curriculum": SMALL}).curriculum
    assert isinstance(curriculum, CurriculumConfig)
    assert curriculum.schedule == Schedule(warmup_steps=3, steps_between_evaluations=3)
    settings = dict(tokenizer=ByteTokenizer(), batch_size=2, sequence_length=256, num_workers=0, num_steps=30)
    typed = Birdie(BirdieConfig(**settings, curriculum=curriculum))
    from_dict = Birdie({**settings, **SMALL})  # the seeds' flat dict, nested sections as dicts
    with typed, from_dict:
        for birdie in (typed, from_dict):
            assert birdie.config.curriculum == curriculum
            assert birdie.agent.schedule == Schedule(total_steps=30, warmup_steps=3, steps_between_evaluations=3)
            assert birdie.agent.config == BirdieAgentConfig(num_candidates=32, num_proposals=8, seed=5)
            assert birdie.agent.model_config == RewardModelConfig(width=16, num_layers=1, train_steps=3)
            assert birdie.keys == [c.key for c in resolve_curriculum_mixture("demo", "birdie")]
        for step in range(7):
            batches = []
            for birdie in (typed, from_dict):
                if birdie.time_for_eval(step):
                    for index, (key, _) in enumerate(birdie.measure_validation_losses()):
                        birdie.log_validation_loss(key, 3.0 - 0.1 * step + 0.01 * index, step)
                batches.append(birdie.get_next_training_sample())
            assert all((batches[0][k] == batches[1][k]).all() for k in batches[0])
        assert [r["mixture"] for r in typed.records] == [r["mixture"] for r in from_dict.records]
        assert typed.records[-1]["decided"]


def test_agent_seed_defaults_to_the_run_seed():
    settings = dict(tokenizer="bytes", batch_size=2, sequence_length=256, num_workers=0, num_steps=30, seed=9)
    with Birdie(BirdieConfig(**settings, curriculum=CurriculumConfig(mixture="demo"))) as birdie:
        assert birdie.agent.seed == 9


def test_a_self_mixture_agent_is_its_own_mixture_and_nothing_else():
    assert [c.key for c in resolve_curriculum_mixture(None, "ul2")] == [c.key for c in resolve_mixture("ul2")]
    assert [c.key for c in resolve_curriculum_mixture("ntp", "ntp")] == [c.key for c in resolve_mixture("ntp")]
    assert [c.key for c in resolve_curriculum_mixture(None, "fixed")] == [c.key for c in resolve_mixture("birdie")]
    with pytest.raises(ValueError, match=r"CurriculumConfig\.mixture='demo' must be unset or 'ul2' with agent='ul2'"):
        resolve_curriculum_mixture("demo", "ul2")
    config = build_config({"curriculum": {"mixture": "demo", "agent": "ntp"}})
    runtime = Runtime(0, 1, 0, torch.device("cpu"), 1, 1, 1, None)
    with pytest.raises(ConfigError, match=r"^curriculum\.mixture='demo' must be unset or 'ntp' with agent='ntp'"):
        build_curriculum(config, ByteTokenizer(), runtime, 2, None)


def test_mixture_spellings(tmp_path):
    path = tmp_path / "mix.json"
    path.write_text(json.dumps([{"name": "copying", "prob": 1}, {"name": "next_token_prediction", "prob": 3}]))
    configs = resolve_curriculum_mixture(str(path), "birdie")
    assert [c.prob for c in configs] == [0.25, 0.75]
    assert [c.objective_class for c in resolve_curriculum_mixture("supervised", "fixed")] == ["supervised"]
    assert len(resolve_curriculum_mixture("demo", "birdie")) == 8
    with pytest.raises(ValueError, match=r"CurriculumConfig\.mixture='nope' is neither a named mixture"):
        resolve_curriculum_mixture("nope", "birdie")
