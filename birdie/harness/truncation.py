"""What to do with requests longer than the model takes: truncate from the left and cap generation to the room left.

Both front-ends (the in-process lm-eval model and ``birdie serve``) call these functions, so an over-long request
is cut identically on both paths, the way lm-eval's Hugging Face backend cuts it: the *oldest* context tokens go
first, and a generation never runs past the model's last position. Each call that had to cut anything logs one
warning that says how many requests were cut and to what length.
"""

from __future__ import annotations

import logging
from typing import Sequence

log = logging.getLogger("birdie.harness")

TokenIds = Sequence[int]


def fit_pairs(pairs: Sequence[tuple[TokenIds, TokenIds]], window: int) -> list[tuple[list[int], list[int]]]:
    """Left-truncate each ``(context, continuation)`` so that ``len(context) + len(continuation) <= window``.

    The context loses its oldest tokens first (what lm-eval's API and HF backends do). A continuation that does not
    fit with one context token is itself cut from the left: its first token that is kept is conditioned on the token
    before it, and only the last ``window - 1`` continuation tokens are scored (lm-eval's HF backend refuses these).

    Args:
        pairs: token-id pairs; continuations must be non-empty.
        window: tokens a scored row may hold (>= 2).
    """
    if window < 2:
        raise ValueError(f"window={window} must be >= 2 (one context token and one continuation token)")
    out, cut, cut_continuations = [], 0, 0
    for context, continuation in pairs:
        context, continuation = list(context), list(continuation)
        if len(context) + len(continuation) > window:
            cut += 1
            if len(continuation) >= window:
                cut_continuations += 1
                whole = (context + continuation)[-window:]
                context, continuation = whole[:1], whole[1:]
            else:
                context = context[len(context) + len(continuation) - window :]
        out.append((context, continuation))
    if cut:
        extra = f", {cut_continuations} of them inside the continuation (scored on its last {window - 1} tokens)" \
            if cut_continuations else ""
        log.warning("%d of %d requests exceed %d tokens and were truncated from the left%s", cut, len(out), window,
                    extra)
    return out


def fit_generation(prompt: TokenIds, max_new_tokens: int, max_positions: int, empty_prompt_token: int
                   ) -> tuple[list[int], int]:
    """The prompt and token budget that fit ``max_positions``: keep the prompt's last ``max_positions - 1`` tokens,
    then cap ``max_new_tokens`` to the positions left.

    An empty prompt becomes ``[empty_prompt_token]`` (lm-eval conditions empty contexts on the EOS/BOS token).
    Logs one warning when anything is cut.
    """
    if max_positions < 2:
        raise ValueError(f"max_positions={max_positions} must be >= 2")
    ids = list(prompt) or [empty_prompt_token]
    kept = ids[-(max_positions - 1) :]
    budget = min(max_new_tokens, max_positions - len(kept))
    if len(kept) < len(ids) or budget < max_new_tokens:
        log.warning("a generation request (%d prompt tokens + max_gen_toks %d) exceeds the model's %d positions: "
                    "the prompt keeps its last %d tokens and generation is capped at %d tokens", len(ids),
                    max_new_tokens, max_positions, len(kept), budget)
    return kept, budget
