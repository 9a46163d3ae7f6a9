"""What a replication runs: the scales (model, lengths, phone-book sizes), the arms, and the per-arm token budget.

A :class:`Scale` is a fixed recipe sized for one machine class. ``cpu`` (the default) fits about an hour on two
CPU cores (a fixed token budget); ``gpu``, ``gpu-m`` and ``gpu-l`` are a compute-matched ladder for one GPU (about 20 tokens per
parameter, Chinchilla-style, as the paper's 1.4B models were trained) toward the paper's scale, with Hawk and the
Gated SSM. An :class:`ExperimentPlan` fixes everything a run needs (scale, arms, seeds, steps per stage); it is
written to ``OUT/plan.json`` when a run starts, and a resumed run must ask for the same plan.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from birdie.checks import check
from birdie.eval.phonebook import DIGITS_PER_NUMBER, MIN_NUMBER_DIGITS

#: The arms, in the order they run. ``second_stage`` continues an NTP-trained model with the Birdie curriculum.
ARMS = ("ntp", "ul2", "birdie", "second_stage")
ARM_HELP = {
    "ntp": "next-token prediction only",
    "ul2": "UL2's fixed ratios (80% span corruption R+X, 20% prefix-LM)",
    "birdie": "the Birdie reward-driven curriculum over all objective classes",
    "second_stage": "NTP for half the tokens, then the Birdie curriculum for the other half",
}
#: Share of an arm's time budget spent pretraining and fine-tuning; the rest is left for the evaluations.
PRETRAIN_SHARE = 0.55
FINETUNE_SHARE = 0.25
MIN_PRETRAIN_STEPS = 20
MIN_FINETUNE_STEPS = 10


@dataclass(frozen=True)
class Scale:
    """One recipe size.

    Attributes:
        name: the ``--scale`` value.
        models: ``(label, preset, overrides)`` of every model trained (each gets every arm).
        sequence_length, batch_size: pretraining rows and rows per step.
        lr: pretraining peak learning rate (cosine decay to 10%).
        finetune_sequence_length, finetune_batch_size, finetune_lr: the phone-book fine-tuning (fixed LR, no weight
            decay, loss on the answer only: the paper's A.9 recipe, scaled).
        book_entries: ``(min, max)`` names per phone book, for fine-tuning and evaluation.
        max_queries: numbers asked for at once, 1..max_queries (evaluated at each value).
        number_digits: digits per phone number (10: the paper's ``XXX-XXX-XXXX``; fewer: plain digits), for
            fine-tuning and evaluation.
        tokens_per_arm: the pretraining token budget of one arm when ``--budget-minutes`` is not given; None =
            the scale needs ``--budget-minutes``.
        finetune_tokens: fine-tuning tokens per arm with ``tokens_per_arm``.
        eval_books, eval_infilling_items: evaluation set sizes.
        evaluations: validation-loss measurements per pretraining run (the Birdie agent decides at each).
        mixture: the objective configurations every arm trains from and is validated on (``curriculum.mixture``);
            arms differ only in who weights them, so every arm reports the same per-objective losses.
        books: the phone-book fine-tuning source (``data.callable``), sized like ``book_entries``/``max_queries``.
        grad_accum, finetune_grad_accum: micro-steps per optimizer step (rows per micro-batch = batch / accum), so
            the GPU rungs' activations fit one 80 GB GPU; they do not change the tokens per step.
    """

    name: str
    models: tuple[tuple[str, str, tuple[tuple[str, Any], ...]], ...]
    sequence_length: int
    batch_size: int
    lr: float
    finetune_sequence_length: int
    finetune_batch_size: int
    finetune_lr: float
    book_entries: tuple[int, int]
    max_queries: int
    number_digits: int = 10
    tokens_per_arm: int | None = None
    finetune_tokens: int | None = None
    eval_books: int = 64
    eval_infilling_items: int = 200
    evaluations: int = 10
    mixture: str = "demo"
    books: str = "birdie.experiment.books:cpu_books"
    grad_accum: int = 1
    finetune_grad_accum: int = 1

    def __post_init__(self) -> None:
        low, high = self.book_entries
        check(self, "book_entries", 1 <= low <= high, "must be (min, max) names per book with 1 <= min <= max")
        check(self, "max_queries", 1 <= self.max_queries <= low,
              f"must be in [1, {low}] (a book cannot answer more queries than its fewest entries)")
        check(self, "number_digits", MIN_NUMBER_DIGITS <= self.number_digits <= DIGITS_PER_NUMBER,
              f"must be in [{MIN_NUMBER_DIGITS}, {DIGITS_PER_NUMBER}]")
        check(self, "finetune_tokens", (self.tokens_per_arm is None) == (self.finetune_tokens is None),
              "must be given together with tokens_per_arm (a fixed token budget has both)")

    def model_overrides(self, label: str) -> dict[str, Any]:
        """The preset overrides of model ``label`` (``max_seq_len`` covers the fine-tuning rows)."""
        for name, _, overrides in self.models:
            if name == label:
                return {**dict(overrides), "max_seq_len": max(self.sequence_length, self.finetune_sequence_length)}
        raise KeyError(label)

    def preset(self, label: str) -> str:
        return next(preset for name, preset, _ in self.models if name == label)


def _gpu_rung(name: str, d_model: int, hawk_layers: int, ssm_layers: int, params: int, grad_accum: int,
              finetune_grad_accum: int) -> Scale:
    """One rung of the GPU ladder: ~20 tokens per parameter, 2,048-token rows, fine-tuning at 8,192 (books of
    100-250 entries, up to ~6,800 bytes)."""
    tokens = 20 * params
    return Scale(
        name=name,
        models=(("hawk", "hawk-1.4b", (("vocab_size", 512), ("d_model", d_model), ("n_layers", hawk_layers),
                                       ("state_dim", d_model * 5 // 4), ("n_heads", max(1, d_model // 128)))),
                ("gated_ssm", "gated-ssm-1.4b", (("vocab_size", 512), ("d_model", d_model),
                                                 ("n_layers", ssm_layers), ("state_dim", d_model * 5 // 4)))),
        sequence_length=2048, batch_size=64, lr=1e-3 if d_model < 1024 else 6e-4,
        finetune_sequence_length=8192, finetune_batch_size=16, finetune_lr=1e-4,
        book_entries=(100, 250), max_queries=16, tokens_per_arm=tokens, finetune_tokens=max(tokens // 20, 2 ** 24),
        eval_books=256, eval_infilling_items=1000, evaluations=40, mixture="birdie",
        books="birdie.experiment.books:gpu_books", grad_accum=grad_accum, finetune_grad_accum=finetune_grad_accum,
    )


SCALES: dict[str, Scale] = {
    # Two cores: hawk-tiny-shaped Hawk (d_model 96, 2 layers, byte tokens), 256-token pretraining rows, phone books
    # of 1-3 entries with 4-digit numbers (~130-280 bytes), one number asked, fine-tuned on 512-token rows. The
    # paper's books (10 digits, more entries) stay on the answer-format plateau at this size; on these, fine-tuning
    # alone leaves it after ~800 steps (docs/results.md, the probe), so 800 steps leave room for pretraining to help.
    # A fixed token budget: the same tokens on any machine (about 70 minutes for 4 arms x 3 seeds on 2 cores).
    "cpu": Scale(
        name="cpu", models=(("hawk", "hawk-tiny", (("d_model", 96), ("state_dim", 96))),),
        sequence_length=256, batch_size=8, lr=3e-3,
        finetune_sequence_length=512, finetune_batch_size=8, finetune_lr=3e-3,
        book_entries=(1, 3), max_queries=1, number_digits=4, tokens_per_arm=1000 * 8 * 256,
        finetune_tokens=800 * 8 * 512, eval_books=96, eval_infilling_items=120, evaluations=8,
    ),
    # The GPU ladder (byte tokens keep the data pipeline identical to the CPU run; vocab 512 covers them).
    # Parameters (`birdie experiment replicate --help` prints them for a run): Hawk / Gated SSM 29 M / 27 M,
    # 209 M / 211 M, 1.03 B / 1.26 B; the token budget is 20 x their rounded mean.
    # Micro-batches: 16 / 4 / 2 rows of 2,048 and 4 / 2 / 1 rows of 8,192 (an estimate for 80 GB, not measured).
    "gpu": _gpu_rung("gpu", 512, 8, 16, 28_000_000, grad_accum=4, finetune_grad_accum=4),
    "gpu-m": _gpu_rung("gpu-m", 1024, 16, 32, 210_000_000, grad_accum=16, finetune_grad_accum=8),
    "gpu-l": _gpu_rung("gpu-l", 2048, 20, 48, 1_150_000_000, grad_accum=32, finetune_grad_accum=16),
}
#: The ``--budget-minutes`` at and above which the evaluation sets have the scale's full size.
DEFAULT_BUDGET_MINUTES = 60.0


@dataclass(frozen=True)
class ExperimentPlan:
    """Everything a replication run needs; a pure function of the command line and the measured throughput.

    Attributes:
        scale: a :data:`SCALES` name.
        arms: the arms to run (a subset of :data:`ARMS`, in that order).
        seeds: how many seeds (0..seeds-1) repeat every arm.
        pretrain_steps, finetune_steps: optimizer steps per arm (equal across arms: the token control).
        budget_minutes: the wall-clock budget the steps were derived from (None: the scale's fixed tokens).
        tokens_per_s: the throughput the steps were derived from (None: the scale's fixed tokens).
        data: training text files (None: the embedded synthetic stories).
        eval_books, eval_infilling_items: evaluation set sizes (the scale's, smaller for short budgets).
    """

    scale: str
    arms: tuple[str, ...]
    seeds: int
    pretrain_steps: int
    finetune_steps: int
    budget_minutes: float | None = None
    tokens_per_s: float | None = None
    data: tuple[str, ...] | None = None
    eval_books: int = 64
    eval_infilling_items: int = 200
    version: int = field(default=1)

    def __post_init__(self) -> None:
        object.__setattr__(self, "arms", tuple(self.arms))
        if self.data is not None:
            object.__setattr__(self, "data", tuple(self.data))
        check(self, "scale", self.scale in SCALES, f"must be one of {', '.join(SCALES)}")
        check(self, "arms", bool(self.arms) and all(a in ARMS for a in self.arms) and len(set(self.arms)) ==
              len(self.arms), f"must be distinct arms among {', '.join(ARMS)}")
        check(self, "seeds", self.seeds >= 1, "must be >= 1")
        check(self, "pretrain_steps", self.pretrain_steps >= 2, "must be >= 2 (second_stage splits it in two)")
        check(self, "finetune_steps", self.finetune_steps >= 1, "must be >= 1")
        check(self, "eval_books", self.eval_books >= self.spec.max_queries,
              f"must be >= {self.spec.max_queries} (one book per number of queries)")
        check(self, "eval_infilling_items", self.eval_infilling_items >= 1, "must be >= 1")

    @property
    def spec(self) -> Scale:
        return SCALES[self.scale]

    @property
    def pretrain_tokens(self) -> int:
        """Training tokens per arm (rows x length, padding included: what the compute pays for)."""
        return self.pretrain_steps * self.spec.batch_size * self.spec.sequence_length

    @property
    def finetune_tokens(self) -> int:
        return self.finetune_steps * self.spec.finetune_batch_size * self.spec.finetune_sequence_length

    def runs(self) -> list[tuple[str, str, int]]:
        """Every ``(model, arm, seed)`` in run order: seed-major, so a stopped run has whole seeds done."""
        return [(model, arm, seed) for seed in range(self.seeds) for model, _, _ in self.spec.models
                for arm in self.arms]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def steps_from_budget(scale: Scale, budget_minutes: float, runs: int, tokens_per_s: float) -> tuple[int, int]:
    """``(pretrain_steps, finetune_steps)`` so that ``runs`` arm runs fit ``budget_minutes`` at ``tokens_per_s``.

    Each run gets ``budget / runs`` seconds: :data:`PRETRAIN_SHARE` of it pretraining, :data:`FINETUNE_SHARE`
    fine-tuning, the rest for the evaluations; at least :data:`MIN_PRETRAIN_STEPS` / :data:`MIN_FINETUNE_STEPS`.
    """
    if budget_minutes <= 0 or runs < 1 or tokens_per_s <= 0:
        raise ValueError(f"steps_from_budget: need budget_minutes > 0 ({budget_minutes}), runs >= 1 ({runs}) and "
                         f"tokens_per_s > 0 ({tokens_per_s})")
    per_run = budget_minutes * 60.0 / runs
    pretrain = math.floor(PRETRAIN_SHARE * per_run * tokens_per_s / (scale.batch_size * scale.sequence_length))
    finetune = math.floor(FINETUNE_SHARE * per_run * tokens_per_s /
                          (scale.finetune_batch_size * scale.finetune_sequence_length))
    return max(pretrain, MIN_PRETRAIN_STEPS), max(finetune, MIN_FINETUNE_STEPS)


def eval_sizes(scale: Scale, budget_minutes: float | None) -> tuple[int, int]:
    """``(books, infilling items)``: the scale's sizes, shrunk in proportion for budgets under the default hour
    (a smoke run's evaluation must not outlast its training), at least 4 books per number of queries and 16 items."""
    share = 1.0 if budget_minutes is None else min(1.0, budget_minutes / DEFAULT_BUDGET_MINUTES)
    books = max(4 * scale.max_queries, round(scale.eval_books * share / scale.max_queries) * scale.max_queries)
    return books, max(16, round(scale.eval_infilling_items * share))


def steps_from_tokens(scale: Scale) -> tuple[int, int]:
    """``(pretrain_steps, finetune_steps)`` of a scale with a fixed token budget (the GPU ladder)."""
    if scale.tokens_per_arm is None or scale.finetune_tokens is None:
        raise ValueError(f"scale {scale.name!r} has no fixed token budget; give --budget-minutes")
    pretrain = math.ceil(scale.tokens_per_arm / (scale.batch_size * scale.sequence_length))
    finetune = math.ceil(scale.finetune_tokens / (scale.finetune_batch_size * scale.finetune_sequence_length))
    return pretrain, finetune
