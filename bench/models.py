"""Training and generation throughput of every registered model family, side by side, on this machine.

    OMP_NUM_THREADS=2 .venv/bin/python bench/models.py [--lengths 512 2048] [--contexts 64 512 2048] [--repeats 3]

Training: tokens/s of forward + backward (mean cross-entropy over every position) on one packed row of T tokens
(four segments, half of each a bidirectional prefix), for models of about the same parameter count, and the ratio
to the Transformer. Generation: tokens/s of cached greedy decoding (``step`` per token) after a prompt of C
tokens; attention re-reads a KV cache that grows with C, recurrent families carry a fixed-size state.
"""

from __future__ import annotations

import argparse
import statistics
import time

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


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


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


def training_tokens_per_second(model, length: int, repeats: int) -> float:
    batch = packed_row(length, model.config.vocab_size)

    def run() -> None:
        model.zero_grad(set_to_none=True)
        _, loss = model(**batch)
        loss.backward()

    return length / median_seconds(run, repeats)


@torch.no_grad()
def generation_tokens_per_second(model, context: int, new_tokens: int, repeats: int) -> float:
    prompt = torch.randint(0, model.config.vocab_size, (1, context))
    _, prefilled = model.hidden_states(prompt, SequenceInfo.single(1, context, prompt.device))
    token = prompt[:, -1]

    def run() -> None:
        states = prefilled
        for index in range(new_tokens):
            _, states = model.step(token, torch.tensor([context + index]), states)

    return new_tokens / median_seconds(run, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[512, 2048])
    parser.add_argument("--contexts", type=int, nargs="+", default=[64, 512, 2048])
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    families = available_families()
    models = {family: create(bench_config(family)) for family in families}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; d_model 256, vocab 512, batch 1")
    print("\nparameters: " + ", ".join(f"{f} {m.num_parameters() / 1e6:.2f}M" for f, m in models.items()))

    print("\ntraining (forward+backward) tokens/s on one packed row")
    print(f"{'family':<12}" + "".join(f"{f'T={t}':>12}{'vs attn':>9}" for t in args.lengths))
    train = {f: [training_tokens_per_second(m, t, args.repeats) for t in args.lengths] for f, m in models.items()}
    baseline = train.get("transformer")
    for family, rates in train.items():
        cells = [f"{rate:>12.0f}{(rate / baseline[i] if baseline else float('nan')):>8.2f}x"
                 for i, rate in enumerate(rates)]
        print(f"{family:<12}" + "".join(cells))

    print(f"\ngeneration tokens/s ({args.new_tokens} cached greedy steps) against prompt length")
    print(f"{'family':<12}" + "".join(f"{f'C={c}':>10}" for c in args.contexts))
    for family, model in models.items():
        rates = [generation_tokens_per_second(model, c, args.new_tokens, args.repeats) for c in args.contexts]
        print(f"{family:<12}" + "".join(f"{rate:>10.0f}" for rate in rates))


if __name__ == "__main__":
    main()
