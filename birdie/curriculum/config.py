"""``CurriculumConfig``: every setting of the curriculum, typed to the leaves, and the one place the mixture is
resolved.

The training config's ``curriculum`` section and :class:`~birdie.Birdie` take the same dataclass::

    CurriculumConfig(mixture="demo", agent="birdie", decision_delay_batches=4,
                     schedule=Schedule(warmup_steps=100, steps_between_evaluations=100),
                     birdie_agent=BirdieAgentConfig(num_candidates=512),
                     reward_model=RewardModelConfig(train_steps=100))

:func:`resolve_curriculum_mixture` turns ``(mixture, agent)`` into the objective configurations; it is also where
an agent that is its own mixture (``ul2``, ``ntp``) is handled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

import yaml

from birdie.checks import ConfigError, check, is_int, option
from birdie.curriculum.agent import BirdieAgentConfig
from birdie.curriculum.reward_model import RewardModelConfig
from birdie.curriculum.schedule import Schedule

AGENT_KINDS = ("birdie", "ul2", "ntp", "uniform", "fixed")
#: Agents that are a published mixture at its own ratios: the agent names the mixture too.
SELF_MIXTURE_AGENTS = ("ul2", "ntp")
#: The demo's mixture: one or two configurations per objective class, sized for 256-token rows.
DEMO_MIXTURE = Path(__file__).with_name("demo_mixture.yaml")


@dataclass
class CurriculumConfig:
    """What the curriculum trains on, who chooses the mixture, when it evaluates, and the agent's own settings.

    Attributes:
        mixture: a named mixture (``birdie``, ``ul2``, ``ul2_decoder``, ``ntp``), ``demo``, ``supervised``, the
            path of a YAML/JSON list of objective entries, or such a list itself; None: ``birdie``, or the agent's
            own mixture for ``agent`` ``ul2``/``ntp``.
        agent: ``birdie`` (the reward-driven agent), ``ul2``/``ntp`` (that mixture at its published ratios),
            ``fixed`` (``ratios``, default the mixture's own) or ``uniform`` (every class the same share).
        ratios: ``agent="fixed"``: ``{configuration key or objective class: weight}``; a class's weight is split
            equally over its configurations, configurations not named get 0.
        num_validation_batches, validation_batch_size: the held-out batches per configuration and their rows
            (None: the training micro-batch).
        decision_delay_batches: a new mixture takes effect this many batches after it could at once; None:
            ``min(32, gap // 4)`` for the schedule's shortest gap between a decision and the next evaluation.
        background_decisions: compute delayed decisions on a background thread; None: when batches go to an
            accelerator.
        schedule, birdie_agent, reward_model: the nested settings (:class:`Schedule`, :class:`BirdieAgentConfig`,
            :class:`RewardModelConfig`).
    """

    mixture: str | list[Any] | None = option(
        None, "objective mixture: a named mixture (birdie, ul2, ul2_decoder, ntp), demo (8 configurations for "
              "short rows), supervised (the records' own prompt/completion pairs; use agent=fixed), or the path of "
              "a YAML/JSON list of objective entries (default: birdie, or the agent's own for agent=ul2/ntp)")
    agent: Literal["birdie", "ul2", "ntp", "fixed", "uniform"] = option(
        "birdie", "who sets the mixture: the Birdie reward agent, the UL2 or NTP mixtures, fixed ratios "
                  "(curriculum.ratios, default the mixture's own), or uniform over classes")
    ratios: dict[str, float] = option(dict, "agent=fixed: objective class or configuration key -> weight")
    num_validation_batches: int = option(2, "held-out batches per objective configuration at each evaluation")
    validation_batch_size: int | None = option(None, "rows of a validation batch (default: the micro-batch)")
    decision_delay_batches: int | None = option(
        None, "a new mixture takes effect this many batches after it could at once, so training need not wait "
              "for the decision (default: min(32, a quarter of the shortest decision gap); 0 = at once)")
    background_decisions: bool | None = option(
        None, "compute delayed decisions on a background thread (default: on an accelerator, not on the CPU)")
    schedule: Schedule = option(Schedule, "when the curriculum evaluates, takes control and explores")
    birdie_agent: BirdieAgentConfig = option(BirdieAgentConfig, "agent=birdie: the candidate search")
    reward_model: RewardModelConfig = option(RewardModelConfig, "agent=birdie: the reward model's size and fit")

    def __post_init__(self) -> None:
        check(self, "agent", self.agent in AGENT_KINDS, f"must be one of {', '.join(AGENT_KINDS)}")
        weights = isinstance(self.ratios, dict) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in self.ratios.values())
        check(self, "ratios", weights, "must map objective classes or configuration keys to weights >= 0")
        check(self, "ratios", not self.ratios or self.agent == "fixed", "is only read with agent=fixed")
        check(self, "num_validation_batches", is_int(self.num_validation_batches) and self.num_validation_batches >= 1,
              "must be >= 1: the agent learns from validation losses")
        check(self, "validation_batch_size", self.validation_batch_size is None
              or (is_int(self.validation_batch_size) and self.validation_batch_size >= 1), "must be >= 1 (or None)")
        check(self, "decision_delay_batches", self.decision_delay_batches is None
              or (is_int(self.decision_delay_batches) and self.decision_delay_batches >= 0),
              "must be an int >= 0 (or None for the default)")
        check(self, "background_decisions", self.background_decisions in (None, True, False),
              "must be True, False or None (automatic)")
        for name, kind in (("schedule", Schedule), ("birdie_agent", BirdieAgentConfig),
                           ("reward_model", RewardModelConfig)):
            check(self, name, isinstance(getattr(self, name), kind), f"must be a {kind.__name__}")


def mixture_spec(mixture: Any, agent: str) -> Any:
    """What :func:`birdie.objectives.resolve_mixture` reads for ``(mixture, agent)``: a named mixture, ``demo``
    (:data:`DEMO_MIXTURE`), ``supervised``, a YAML/JSON file's entries, or the entries/configs given."""
    from birdie.objectives.mixtures import MIXTURES

    if mixture is None:
        return agent if agent in SELF_MIXTURE_AGENTS else "birdie"
    if not isinstance(mixture, (str, Path)):
        return mixture
    if mixture in MIXTURES:
        return mixture
    if mixture == "supervised":
        return [{"name": "supervised"}]
    path = DEMO_MIXTURE if mixture == "demo" else Path(mixture)
    if not path.is_file():
        raise _error("mixture", mixture, f"is neither a named mixture ({', '.join(MIXTURES)}, demo, supervised) "
                                         "nor an existing YAML/JSON file")
    entries = json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())
    if not isinstance(entries, list):
        raise _error("mixture", mixture, "must hold a list of objective entries")
    return entries


def _error(field: str, value: Any, requirement: str) -> ConfigError:
    """A :class:`ConfigError` about ``CurriculumConfig.field`` (re-worded with the section path by the trainer)."""
    return ConfigError(f"CurriculumConfig.{field}={value!r} {requirement}", field, value, requirement)


def resolve_curriculum_mixture(mixture: Any, agent: str) -> list[Any]:
    """The objective configurations (``ObjectiveConfig``, probabilities normalised) a curriculum of ``agent``
    trains on. ``ul2``/``ntp`` agents train on their own mixture: ``mixture`` must be None, that name, or those
    very configurations.

    Raises:
        ConfigError: an unknown mixture name or file, or another mixture for a ``ul2``/``ntp`` agent.
    """
    from birdie.objectives.mixtures import resolve_mixture

    spec = mixture_spec(mixture, agent)
    try:
        configs = resolve_mixture(spec)
    except (TypeError, ValueError) as error:
        raise _error("mixture", mixture, f"is not a valid mixture: {error}") from None
    if agent in SELF_MIXTURE_AGENTS:
        own = resolve_mixture(agent)
        if [c.key for c in configs] != [c.key for c in own]:
            shown = mixture if isinstance(mixture, (str, Path)) else f"{len(configs)} configurations"
            raise _error("mixture", shown, f"must be unset or {agent!r} with agent={agent!r} (that agent trains on "
                                           "its own mixture); use agent='fixed' for your own objectives")
    return configs


def fixed_ratios(ratios: dict[str, float], configs: Sequence[Any]) -> list[float]:
    """One weight per configuration from ``{configuration key or objective class: weight}``.

    A class weight is split equally over the class's configurations; configurations not named get 0.
    """
    keys = [c.key for c in configs]
    classes = [c.objective_class for c in configs]
    unknown = sorted(set(ratios) - set(keys) - set(classes))
    if unknown:
        raise _error("ratios", ratios, f"names {', '.join(unknown)}, not in the mixture; valid: "
                                       f"{', '.join(dict.fromkeys(classes))} (classes) or {', '.join(keys)} "
                                       "(configurations)")
    weights = [float(ratios.get(key, 0.0)) for key in keys]
    for name, weight in ratios.items():
        if name in classes and name not in keys:
            members = [i for i, c in enumerate(classes) if c == name]
            for i in members:
                weights[i] += float(weight) / len(members)
    if sum(weights) <= 0:
        raise _error("ratios", ratios, "gives every configuration weight 0")
    return weights
