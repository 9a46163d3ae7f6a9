"""PPO throughput: rollout tokens/s with birdie's decoding cache vs recomputing the whole prefix per token, and the
share of a PPO step spent in generation, scoring and training; with ``--trl``, GRPO steps of birdie side by side
with TRL's ``GRPOTrainer`` on the same tiny model (``bench/ppo_trl.py``).

    python bench/ppo.py [--preset transformer-tiny] [--prompts 4] [--rollouts 4] [--new-tokens 32] [--repeats 3]
    python bench/ppo.py --trl [--steps 8]

Random-weight model, byte tokenizer, embedded story-question prompts, the story-answer reward (scoring is then a
string comparison: a reward model would add one forward per rollout). The cached and recomputed rollouts sample
the same tokens (same generator seed), so they differ only in how the logits are computed; the two modes run
interleaved so load changes move both alike. CPU unless --device cuda.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from birdie.finetune.ppo import PPOConfig, PPOTrainer  # noqa: E402
from birdie.finetune.rewards import StoryAnswerReward, checked_scores  # noqa: E402
from birdie.finetune.rollout import prompt_ids, response_mask  # noqa: E402
from birdie.finetune.story_qa import story_questions  # noqa: E402
from birdie.models import create  # noqa: E402
from birdie.models.generation import filter_logits  # noqa: E402
from birdie.tokenizers import ByteTokenizer  # noqa: E402


@torch.no_grad()
def recomputed(model: torch.nn.Module, prompt: torch.Tensor, copies: int, new_tokens: int, temperature: float,
               generator: torch.Generator) -> torch.Tensor:
    """Sampling without a cache: one full forward over prompt + tokens so far for every new token."""
    rows = prompt[None].expand(copies, -1)
    for _ in range(new_tokens):
        logits, _ = model(rows)
        probs = filter_logits(logits[:, -1].float() / temperature).softmax(-1)
        rows = torch.cat([rows, torch.multinomial(probs, 1, generator=generator)], dim=1)
    return rows[:, prompt.shape[0]:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="transformer-tiny")
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--rollouts", type=int, default=4)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--trl", action="store_true", help="GRPO: birdie vs TRL's GRPOTrainer (needs trl)")
    parser.add_argument("--steps", type=int, default=8, help="--trl: GRPO steps of each side")
    args = parser.parse_args()
    if args.trl:
        from ppo_trl import side_by_side

        side_by_side(args.steps)
        return
    torch.manual_seed(0)
    device = torch.device(args.device)
    tokenizer = ByteTokenizer()
    model = create(args.preset, vocab_size=tokenizer.vocab_size).to(device).eval()
    questions = story_questions("train", args.prompts)
    prompts = [torch.from_numpy(prompt_ids([{"role": "user", "content": q.prompt}], tokenizer)).to(device)
               for q in questions]
    texts = [q.prompt for q in questions]
    print(f"{args.preset}, {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, {args.prompts} "
          f"prompts x {args.rollouts} rollouts x {args.new_tokens} new tokens, {device}, torch {torch.__version__}, "
          f"{platform.processor() or platform.machine()}")
    cached_s = recomputed_s = 0.0
    tokens = args.prompts * args.rollouts * args.new_tokens
    for _ in range(args.repeats):  # interleaved: no EOS stop, so both produce exactly new_tokens per row
        started = time.perf_counter()
        for prompt in prompts:
            model.generate(prompt[None].expand(args.rollouts, -1), args.new_tokens, temperature=1.0,
                           generator=torch.Generator(device).manual_seed(0))
        cached_s += time.perf_counter() - started
        started = time.perf_counter()
        for prompt in prompts:
            recomputed(model, prompt, args.rollouts, args.new_tokens, 1.0, torch.Generator(device).manual_seed(0))
        recomputed_s += time.perf_counter() - started
    print(f"rollout tokens/s: cached {tokens * args.repeats / cached_s:.0f}, recomputed "
          f"{tokens * args.repeats / recomputed_s:.0f} ({recomputed_s / cached_s:.1f}x)")

    reward = StoryAnswerReward({q.prompt: q.answer for q in questions})
    trainer = PPOTrainer(model.train(), tokenizer, reward,
                         PPOConfig(rollouts_per_prompt=args.rollouts, max_new_tokens=args.new_tokens, temperature=1.0))
    trainer.critic.to(device)
    trainer.reference.to(device)
    parts = {"generation": 0.0, "scoring": 0.0, "training": 0.0}
    for _ in range(args.repeats):
        started = time.perf_counter()
        rollouts = trainer.rollout(prompts, texts)
        total_rollout = time.perf_counter() - started
        started = time.perf_counter()  # rollout() scored too: time the scoring again and count the rest as generation
        checked_scores(reward, [t for t in texts for _ in range(args.rollouts)], rollouts.completions)
        scoring = time.perf_counter() - started
        parts["scoring"] += scoring
        parts["generation"] += total_rollout - scoring
        started = time.perf_counter()
        trainer.train_on(rollouts)
        parts["training"] += time.perf_counter() - started
        real = float(response_mask(rollouts.responses, trainer.eos).sum())
    total = sum(parts.values())
    print("PPO step: " + ", ".join(f"{name} {value / total:.0%} ({value / args.repeats:.2f} s)"
                                  for name, value in parts.items()) + f"; {real:.0f} response tokens per step")


if __name__ == "__main__":
    main()
