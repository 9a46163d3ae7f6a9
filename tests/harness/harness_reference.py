"""Naive reference scoring for the harness tests: one unbatched forward per request, float64 softmax."""

from __future__ import annotations

import numpy as np
import pytest
import torch


def naive_continuation(model, context: list[int], continuation: list[int], prefix: bool) -> tuple[list[float], bool]:
    """Reference: one unbatched full forward per request, float64 log-softmax, greedy = argmax at every position."""
    if prefix:
        row = context + [model.tokenizer.specials.begin_generating] + continuation[:-1]
        start, prefix_length = len(context), len(context)
    else:
        row = context + continuation[:-1]
        start, prefix_length = len(context) - 1, 0
    logits = model.logits(np.asarray([row], dtype=np.int64), np.array([prefix_length]))
    logits = logits.detach().double().numpy() if isinstance(logits, torch.Tensor) else np.asarray(logits, np.float64)
    window = logits[0, start : start + len(continuation)]
    shifted = window - window.max(-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    picked = [float(log_probs[i, t]) for i, t in enumerate(continuation)]
    greedy = all(int(log_probs[i].argmax()) == t for i, t in enumerate(continuation))
    return picked, greedy


def naive_generate(model, prompt: list[int], max_new_tokens: int, stop: list[str], prefix: bool) -> str:
    """Reference greedy decoding: a full forward per new token; stop at EOS, cut before the earliest stop string."""
    tokenizer = model.tokenizer
    row = prompt + ([tokenizer.specials.begin_generating] if prefix else [])
    prefix_length = len(prompt) if prefix else 0
    generated: list[int] = []
    for _ in range(max_new_tokens):
        logits = model.logits(np.asarray([row + generated], dtype=np.int64), np.array([prefix_length]))
        last = logits[0, -1]
        token = int(last.argmax()) if isinstance(last, torch.Tensor) else int(np.argmax(last))
        if token == tokenizer.specials.eos:
            break
        generated.append(token)
        text = tokenizer.decode(generated)
        cuts = [text.find(s) for s in stop if s and s in text]
        if cuts:
            return text[: min(cuts)]
    return tokenizer.decode(generated)


def split_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """lm-eval's context/continuation token split: trailing context spaces move to the continuation, and the
    continuation is what the whole string adds after the context's tokens."""
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    context_ids = [int(t) for t in tokenizer.encode(context)]
    whole = [int(t) for t in tokenizer.encode(context + continuation)]
    return context_ids, whole[len(context_ids):]


def direct_responses(model, samples: dict, prefix: bool) -> dict[str, list]:
    """Per-task, per-sample responses computed directly with the model from logged lm-eval samples."""
    tokenizer = model.tokenizer
    eos = tokenizer.specials.eos
    out: dict[str, list] = {}
    for task, rows in samples.items():
        out[task] = []
        for sample in sorted(rows, key=lambda s: s["doc_id"]):
            responses = []
            arguments = sample["arguments"]
            if isinstance(arguments, dict):  # the JSONL form: {"gen_args_0": {"arg_0": ..., "arg_1": ...}}
                arguments = [tuple(a.values()) for a in arguments.values()]
            for args in arguments:
                first, second = args[0], (args[1] if len(args) > 1 else None)
                if task == "birdie_ppl":
                    document = [int(t) for t in tokenizer.encode(second if second is not None else first)]
                    responses.append(sum(naive_continuation(model, [eos], document, prefix=False)[0]))
                elif isinstance(second, dict):
                    stop = list(second["until"]) + ["<|eos|>"]
                    prompt = [int(t) for t in tokenizer.encode(first)]
                    responses.append(naive_generate(model, prompt, second["max_gen_toks"], stop, prefix))
                else:
                    picked, greedy = naive_continuation(model, *split_pair(tokenizer, first, second), prefix)
                    responses.append((sum(picked), greedy))
            out[task].append(responses)
    return out


def logged_responses(samples: dict) -> dict[str, list]:
    """The same structure from lm-eval's logged samples (one response per request)."""
    return {task: [[r[0] for r in s["resps"]] for s in sorted(rows, key=lambda s: s["doc_id"])]
            for task, rows in samples.items()}


def assert_same_responses(actual: dict, expected: dict, rel: float = 1e-5) -> None:
    """Equal strings and is-greedy flags; log-likelihoods equal to ``rel`` (``rel=0``: bit for bit)."""

    def close(got: float, want: float) -> bool:
        return got == want if rel == 0 else got == pytest.approx(want, rel=rel)

    assert actual.keys() == expected.keys()
    for task in actual:
        assert len(actual[task]) == len(expected[task]), task
        for got_doc, want_doc in zip(actual[task], expected[task]):
            for got, want in zip(got_doc, want_doc, strict=True):
                if isinstance(want, str):
                    assert got == want, task
                elif isinstance(want, tuple):
                    assert close(float(got[0]), float(want[0])) and bool(got[1]) == bool(want[1]), (task, got, want)
                else:
                    assert close(float(got), float(want)), (task, got, want)
