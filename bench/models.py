"""Training and generation throughput of every registered model family, side by side, on this machine.

    .venv/bin/python bench/models.py [--lengths 512 2048] [--contexts 64 512 2048] [--repeats 3] [--threads 1]

Training: tokens/s of forward + backward (mean cross-entropy over every position) on one packed row of T tokens
(four segments, half of each a bidirectional prefix), for models of about the same parameter count, and the ratio
to the Transformer. Generation: tokens/s of cached greedy decoding (``step`` per token) after a prompt of C
tokens; attention re-reads a KV cache that grows with C, recurrent families carry a fixed-size state. Families are
timed round-robin and the best of ``--repeats`` rounds is kept, so a shared machine's load hits them alike.
"""

from __future__ import annotations

import argparse
import time
from typing import Any, Callable

import torch

from birdie.models import ModelConfig, SequenceInfo, available_families, create

#: comparable-size configs: d_model 256; the Gated SSM has no MLP, so it gets twice the blocks
BENCH_CONFIGS: dict[str, dict] = {
    "transformer": dict(n_layers=4, bidirectional_layers="all"),
    "supra": dict(n_layers=4, bidirectional_layers="none"),
    "hawk": dict(n_layers=4, state_dim=256, mlp_activation="gelu_tanh", bidirectional_layers="alternate"),
    "gated_ssm": dict(n_layers=8, state_dim=320, bidirectional_layers="alternate"),
}


def bench_config(family: str) -> ModelConfig:
    extra = BENCH_CONFIGS.get(family, dict(n_layers=4, bidirectional_layers="alternate"))
    return ModelConfig(family=family, vocab_size=512, d_model=256, n_heads=4, max_seq_len=2048, **extra)


def best_seconds(tasks: dict[Any, Callable[[], None]], repeats: int) -> dict[Any, float]:
    """Warm each task up, then run ``repeats`` rounds visiting every task in turn; the best time per task.

    Round-robin puts every family under the same background load (the machine is shared); the best round is the
    least disturbed one.
    """
    for task in tasks.values():
        task()
    best = {name: float("inf") for name in tasks}
    for _ in range(repeats):
        for name, task in tasks.items():
            start = time.perf_counter()
            task()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def packed_row(length: int, vocab_size: int) -> dict[str, torch.Tensor]:
    segment_length = length // 4
    position = torch.arange(length) % segment_length
    return {
        "input_ids": torch.randint(0, vocab_size, (1, length)),
        "label_ids": torch.randint(0, vocab_size, (1, length)),
        "attention_mask": (position < segment_length // 2).long()[None],
        "segment_ids": (torch.arange(length) // segment_length + 1)[None],
        "position_ids": position[None],
    }


def training_step(model, length: int) -> Callable[[], None]:
    batch = packed_row(length, model.config.vocab_size)

    def run() -> None:
        model.zero_grad(set_to_none=True)
        _, loss = model(**batch)
        loss.backward()

    return run


@torch.no_grad()
def decoding_steps(model, context: int, new_tokens: int) -> Callable[[], None]:
    prompt = torch.randint(0, model.config.vocab_size, (1, context))
    _, prefilled = model.hidden_states(prompt, SequenceInfo.single(1, context, prompt.device))
    token = prompt[:, -1]

    @torch.no_grad()
    def run() -> None:
        states = prefilled
        for index in range(new_tokens):
            _, states = model.step(token, torch.tensor([context + index]), states)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[512, 2048])
    parser.add_argument("--contexts", type=int, nargs="+", default=[64, 512, 2048])
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads; on a loaded shared machine 2 threads spin-wait and time 3-6x worse")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    families = available_families()
    models = {family: create(bench_config(family)) for family in families}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; d_model 256, vocab 512, batch 1")
    print("\nparameters: " + ", ".join(f"{f} {m.num_parameters() / 1e6:.2f}M" for f, m in models.items()))

    print("\ntraining (forward+backward) tokens/s on one packed row; ratio to the Transformer")
    print(f"{'family':<12}" + "".join(f"{f'T={t}':>10}{'ratio':>8}" for t in args.lengths))
    train = {f: [] for f in models}
    for length in args.lengths:
        seconds = best_seconds({f: training_step(m, length) for f, m in models.items()}, args.repeats)
        for family in models:
            train[family].append(length / seconds[family])
    for family, rates in train.items():
        ratios = [rate / train["transformer"][i] if "transformer" in train else float("nan")
                  for i, rate in enumerate(rates)]
        print(f"{family:<12}" + "".join(f"{rate:>10.0f}{ratio:>7.2f}x" for rate, ratio in zip(rates, ratios)))

    print(f"\ngeneration tokens/s ({args.new_tokens} cached greedy steps) against prompt length C")
    print(f"{'family':<12}" + "".join(f"{f'C={c}':>10}" for c in args.contexts))
    # Every (family, context) pair shares the round-robin, so load drift cannot masquerade as a context effect.
    seconds = best_seconds({(f, c): decoding_steps(m, c, args.new_tokens) for f, m in models.items()
                            for c in args.contexts}, args.repeats)
    for family in models:
        print(f"{family:<12}" + "".join(f"{args.new_tokens / seconds[family, c]:>10.0f}" for c in args.contexts))


if __name__ == "__main__":
    main()
