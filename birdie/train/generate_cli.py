"""``birdie generate``: sample continuations of a prompt from an exported model or a checkpoint (cached decoding).

    birdie generate --checkpoint runs/demo/export --prompt "Once upon a time" --max-new-tokens 120
"""

from __future__ import annotations

import argparse
import sys


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True,
                        help="export dir (OUT/export), checkpoint dir (OUT/checkpoints/step_N) or run dir (OUT)")
    parser.add_argument("--prompt", required=True, help="text to continue")
    parser.add_argument("--max-new-tokens", type=int, default=100)
    parser.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    parser.add_argument("--top-k", type=int, default=None)
    parser.add_argument("--top-p", type=float, default=0.95)
    parser.add_argument("--num-samples", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trust-checkpoint", dest="trust_checkpoint", action="store_true",
                        help="allow a checkpoint directory (its DCP .metadata is a pickle, which can run code; "
                             "exports need no trust)")
    parser.set_defaults(func=run)


def sample(model, tokenizer, prompt: str, max_new_tokens: int, temperature: float = 0.8, top_k: int | None = None,
           top_p: float | None = 0.95, num_samples: int = 1, seed: int = 0) -> list[str]:
    """``num_samples`` continuations of ``prompt`` (text after the prompt, up to the first end-of-text)."""
    import torch

    ids = torch.as_tensor(tokenizer.encode(prompt), dtype=torch.long)
    if ids.numel() == 0:
        raise ValueError("the prompt encodes to no tokens; give some text")
    prompts = ids.expand(num_samples, -1).contiguous()
    generator = torch.Generator().manual_seed(seed)
    eos = tokenizer.specials.eos
    with torch.no_grad():
        new = model.generate(prompts, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p, eos=eos,
                             generator=generator)
    texts = []
    for row in new.tolist():
        row = row[: row.index(eos)] if eos in row else row
        texts.append(tokenizer.decode(row))
    return texts


def run(args: argparse.Namespace) -> int:
    from birdie.train.export import load
    from birdie.train.integrity import UntrustedCheckpointError

    try:
        model, tokenizer = load(args.checkpoint, trust_checkpoint=args.trust_checkpoint)
        texts = sample(model, tokenizer, args.prompt, args.max_new_tokens, args.temperature, args.top_k, args.top_p,
                       args.num_samples, args.seed)
    except (FileNotFoundError, ValueError, UntrustedCheckpointError) as error:
        print(f"birdie generate: {error}", file=sys.stderr)
        return 2
    for index, text in enumerate(texts):
        prefix = f"[{index}] " if len(texts) > 1 else ""
        print(f"{prefix}{args.prompt}{text}")
    return 0
