"""Candidate scoring, the Birdie and fixed agents, the factory, and resume."""

import io

import numpy as np
import pytest
import torch

from birdie.curriculum import BirdieAgent, FixedAgent, Schedule, make_agent
from birdie.curriculum.candidates import (
    class_proposals,
    score_candidates,
    simplex_candidates,
    top_k_mean,
    uniform_over_classes,
)
from birdie.objectives import mixture_probabilities, resolve_mixture
from .helpers import FAST, fast, toy_losses

CLASS_IDS = np.array([0, 1, 1, 1, 2, 2])


def test_scoring_weights_configs_by_one_over_class_size():
    """Candidate 0 earns reward 1 on the single config of class 0 (class mean 1); candidate 1 earns 1 on two of
    class 1's three configs (raw sum 2, class mean 2/3): the class-scaled score must prefer candidate 0."""
    predicted = np.zeros((3, 6))
    predicted[0, 0] = 1.0
    predicted[1, 1:3] = 1.0
    predicted[2, 4] = 0.5
    scores = score_candidates(predicted, CLASS_IDS)
    np.testing.assert_allclose(scores, [1.0, 2 / 3, 0.25])
    candidates = np.eye(6)[[0, 1, 4]]
    np.testing.assert_allclose(top_k_mean(candidates, scores, 1), np.eye(6)[0])
    np.testing.assert_allclose(top_k_mean(candidates, scores, 2), (np.eye(6)[0] + np.eye(6)[1]) / 2)


def test_candidates_are_mixtures_and_proposals_concentrate_on_classes():
    rng = np.random.default_rng(0)
    for candidates in (simplex_candidates(rng, CLASS_IDS, 500), class_proposals(rng, CLASS_IDS, 500, floor=0.05)):
        assert candidates.shape == (500, 6) and (candidates >= 0).all()
        np.testing.assert_allclose(candidates.sum(axis=1), 1.0)
    proposals = class_proposals(rng, CLASS_IDS, 200, floor=0.05)
    shares = np.stack([proposals[:, CLASS_IDS == c].sum(1) for c in range(3)], axis=1)
    top_two = np.sort(shares, axis=1)[:, -2:].sum(axis=1)
    assert (top_two >= 0.95 - 1e-9).all()
    simplex_shares = np.stack([c[:, CLASS_IDS == k].sum(1) for c in [simplex_candidates(rng, CLASS_IDS, 2000)]
                               for k in range(3)], axis=1)
    assert simplex_shares[:, 0].max() > 0.9  # a one-config class can still get most of the mass


def test_uniform_over_classes():
    np.testing.assert_allclose(uniform_over_classes(CLASS_IDS), [1 / 3, 1 / 9, 1 / 9, 1 / 9, 1 / 6, 1 / 6])


def run_agent(agent, steps):
    return [agent.observe(step, toy_losses(step, agent.num_configs)) for step in steps]


def test_birdie_agent_keeps_uniform_in_warmup_then_decides():
    agent = BirdieAgent(CLASS_IDS, Schedule(total_steps=3000), **_configs(FAST))
    decisions = run_agent(agent, agent.schedule.evaluation_steps())
    assert [d.step for d in decisions] == [10, 50, 250, 500, 1000, 1500, 2000]
    for decision in decisions[:2]:
        assert not decision.decided
        np.testing.assert_allclose(decision.action, uniform_over_classes(CLASS_IDS))
    assert decisions[0].rewards is None and decisions[1].rewards is not None
    assert all(d.decided for d in decisions[2:])
    assert len(agent.history_rows) == len(decisions) - 1
    for decision in decisions:
        assert decision.action.min() >= 0 and decision.action.sum() == pytest.approx(1.0)


def test_fixed_agents_never_change_but_report_rewards():
    configs = resolve_mixture("ul2")
    agent = make_agent("ul2", None, 3000)
    decisions = run_agent(agent, agent.schedule.evaluation_steps())
    for decision in decisions:
        np.testing.assert_allclose(decision.action, mixture_probabilities(configs))
        assert not decision.decided
    assert decisions[-1].total_reward is not None
    fixed = make_agent("fixed", resolve_mixture("birdie")[:3], 100, ratios=[1, 1, 2])
    np.testing.assert_allclose(fixed.action, [0.25, 0.25, 0.5])
    uniform = make_agent("uniform", resolve_mixture("birdie"), 100)
    np.testing.assert_allclose(uniform.action, mixture_probabilities(resolve_mixture("birdie")))


def test_factory_errors_name_the_problem():
    birdie_configs = resolve_mixture("birdie")
    with pytest.raises(ValueError, match="valid kinds: birdie, ul2, ntp, uniform, fixed"):
        make_agent("ppo", birdie_configs, 100)
    with pytest.raises(ValueError, match="trains on its own mixture"):
        make_agent("ul2", birdie_configs, 100)
    with pytest.raises(TypeError, match="num_candidate"):
        make_agent("birdie", birdie_configs, 100, num_candidate=5)
    with pytest.raises(ValueError, match="ratios are read by kind 'fixed' only"):
        make_agent("uniform", birdie_configs, 100, ratios=[1.0] * len(birdie_configs))
    with pytest.raises(ValueError, match="one per configuration"):
        make_agent("fixed", birdie_configs[:2], 100, ratios=[1.0])
    assert make_agent("ntp", None, 10).configs == resolve_mixture("ntp")


def test_observe_rejects_wrong_shapes_and_old_steps():
    agent = FixedAgent(CLASS_IDS, Schedule(total_steps=100))
    with pytest.raises(ValueError, match="expected 6 validation losses"):
        agent.observe(10, np.ones(5))
    agent.observe(10, np.ones(6))
    with pytest.raises(ValueError, match="must increase"):
        agent.observe(10, np.ones(6))
    with pytest.raises(ValueError, match="every class id"):
        FixedAgent(np.array([0, 2]), Schedule(total_steps=100))


def test_resume_decides_exactly_like_an_uninterrupted_run():
    schedule = Schedule(total_steps=2600)
    steps = schedule.evaluation_steps()
    uninterrupted = run_agent(BirdieAgent(CLASS_IDS, schedule, **_configs(FAST)), steps)

    first = BirdieAgent(CLASS_IDS, schedule, **_configs(FAST))
    run_agent(first, steps[:4])
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    run_agent(first, steps[4:6])  # the saved state must not alias the live agent
    buffer.seek(0)
    resumed = BirdieAgent(CLASS_IDS, schedule, **_configs(fast(123)))
    resumed.load_state_dict(torch.load(buffer, weights_only=False))
    continued = run_agent(resumed, steps[4:])
    assert sum(d.decided for d in continued) == 3
    for expected, got in zip(uninterrupted[4:], continued, strict=True):
        np.testing.assert_array_equal(expected.action, got.action)
        assert expected.explored == got.explored and expected.reward_model_loss == got.reward_model_loss


def test_load_state_dict_of_another_kind_fails():
    agent = make_agent("birdie", resolve_mixture("ntp"), 100, **FAST)
    with pytest.raises(ValueError, match="kind 'fixed'"):
        agent.load_state_dict(make_agent("fixed", resolve_mixture("ntp"), 100).state_dict())


def _configs(options):
    return {"config": options["birdie_agent"], "model_config": options["reward_model"]}
