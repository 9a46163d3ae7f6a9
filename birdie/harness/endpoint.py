"""OpenAI-style completions and vLLM-style tokenizer endpoints over one loaded model, JSON in and JSON out.

This is the part of ``birdie serve`` that knows the wire format lm-eval's ``local-completions`` client expects
(``docs/harness.md``); the HTTP layer and the model pool only move dicts. Every invalid request raises
:class:`RequestError` with an HTTP status and a message saying what to fix.

* ``completions``: ``prompt`` as a string, a list of strings, a list of token ids or a list of such lists (one
  choice per prompt, in order). ``echo=true`` returns causal log-probs of every prompt token and of exactly one
  greedy generated token (``max_tokens`` must be 1), with ``logprobs`` top alternatives per position; otherwise the
  model generates up to ``max_tokens`` tokens, stopping at EOS or a ``stop`` string, and the text is cut before it.
  A generation request longer than the model is cut as :func:`birdie.harness.truncation.fit_generation` says (the
  prompt's oldest tokens first, then ``max_tokens`` capped to the room left), with a warning in the server log.
  The stock OpenAI form is causal: the request does not say where the context ends.
* birdie's extension ``prefix_length`` (an int, or one per prompt; prefix-LM models only): the first
  ``prefix_length`` tokens of a prompt are the bidirectional prefix, followed by ``<|begin_generating|>`` and the
  rest of the prompt, as Birdie trains. Echo then returns null log-probs for the prefix tokens and prefix-LM
  log-probs after it (a client that sends its context length as ``prefix_length`` and slices from it gets the
  in-process ``scoring=prefix`` numbers: ``--model birdie-completions``); generation continues after the prompt.
* ``tokenize`` / ``detokenize`` / ``tokenizer_info``: what lm-eval's remote tokenizer calls.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass
from typing import Any

from birdie.harness.core import Scorer
from birdie.harness.decoding import greedy_batch
from birdie.harness.text import encode_text, eos_string
from birdie.harness.truncation import fit_generation, log

NO_CHAT_TEMPLATE = ("this model has no chat template (it was trained on plain text): send plain prompts, and run "
                    "lm-eval without --apply_chat_template")


class RequestError(Exception):
    """A request the server rejects: ``status`` is the HTTP status (4xx)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class ServerLimits:
    """Request size limits.

    Attributes:
        max_body_bytes: largest request body accepted (413 above it).
        max_prompts: prompts per completions request.
        max_new_tokens: ``max_tokens`` ceiling for generation.
        max_top_logprobs: ceiling for ``logprobs`` (alternatives per position).
        max_tokenize_chars: longest string ``/tokenize`` accepts.
    """

    max_body_bytes: int = 8 << 20
    max_prompts: int = 256
    max_new_tokens: int = 4096
    max_top_logprobs: int = 20
    max_tokenize_chars: int = 1 << 20

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_prompts", "max_new_tokens", "max_top_logprobs", "max_tokenize_chars"):
            if getattr(self, name) < 1:
                raise ValueError(f"ServerLimits.{name}={getattr(self, name)} must be >= 1")


def _field(body: dict[str, Any], name: str, kinds: tuple[type, ...], default: Any, what: str) -> Any:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) and bool not in kinds:
        raise RequestError(400, f"'{name}' must be {what}; got {value!r}")
    if not isinstance(value, kinds):
        raise RequestError(400, f"'{name}' must be {what}; got {type(value).__name__}")
    return value


def _refuse_chat(prompt: Any) -> None:
    """Chat messages (what lm-eval sends with --apply_chat_template) get a 400 that says why."""
    if isinstance(prompt, dict) or (isinstance(prompt, list) and any(isinstance(p, dict) for p in prompt)):
        raise RequestError(400, NO_CHAT_TEMPLATE)


def _finite(value: int | float, name: str) -> float:
    """``value`` as a finite float (a huge integer or a float that JSON parsing overflowed to inf is a 400)."""
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise RequestError(400, f"'{name}'={value!r:.40} must be a finite number")
    return number


class ModelEndpoint:
    """The JSON API of one model (``name``) scored by ``scorer``."""

    def __init__(self, name: str, scorer: Scorer, limits: ServerLimits | None = None) -> None:
        self.name = name
        self.scorer = scorer
        self.tokenizer = scorer.tokenizer
        self.limits = limits or ServerLimits()
        self.max_length = scorer.model.max_length
        if scorer.model.prefix_lm:
            log.warning("%s was trained as a prefix-LM: stock completions requests are scored causally; send "
                        "prefix_length (birdie's extension; lm-eval: --model birdie-completions) to read the context "
                        "as the bidirectional prefix, as birdie-lm-eval does by default", name)

    def handle(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        """Dispatch ``operation`` (``completions``, ``tokenize``, ``detokenize``, ``tokenizer_info``)."""
        handlers = {
            "completions": self.completions,
            "tokenize": self.tokenize,
            "detokenize": self.detokenize,
            "tokenizer_info": lambda _: self.tokenizer_info(),
        }
        if operation not in handlers:
            raise RequestError(404, f"unknown operation {operation!r}")
        return handlers[operation](body)

    # ------------------------------------------------------------------ tokenizer
    def tokenizer_info(self) -> dict[str, Any]:
        specials = self.tokenizer.specials
        return {
            "eos_token": eos_string(self.tokenizer),
            "bos_token": None,  # lm-eval then conditions empty contexts on EOS, as the in-process model does
            "pad_token": specials.name_of(specials.pad),
            "chat_template": None,
            "model_max_length": self.max_length,
            "vocab_size": self.tokenizer.vocab_size,
        }

    def tokenize(self, body: dict[str, Any]) -> dict[str, Any]:
        _refuse_chat(body.get("prompt"))
        text = _field(body, "prompt", (str,), None, "a string")
        if text is None:
            raise RequestError(400, "'prompt' (the string to tokenize) is required")
        if len(text) > self.limits.max_tokenize_chars:
            raise RequestError(413, f"'prompt' has {len(text)} characters; the limit is {self.limits.max_tokenize_chars}")
        tokens = encode_text(self.tokenizer, text)
        return {"tokens": tokens, "count": len(tokens), "max_model_len": self.max_length}

    def detokenize(self, body: dict[str, Any]) -> dict[str, Any]:
        tokens = body.get("tokens")
        return {"prompt": self.tokenizer.decode(self._check_ids(tokens, "'tokens'"))}

    def _check_ids(self, ids: Any, what: str) -> list[int]:
        if not isinstance(ids, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in ids):
            raise RequestError(400, f"{what} must be a list of integer token ids")
        vocab = self.tokenizer.vocab_size
        if any(t < 0 or t >= vocab for t in ids):
            raise RequestError(400, f"{what} holds token ids outside [0, {vocab})")
        return ids

    # ------------------------------------------------------------------ completions
    def _prompts(self, prompt: Any, allow_empty: bool) -> list[list[int]]:
        _refuse_chat(prompt)
        if isinstance(prompt, str):
            prompts: list[Any] = [prompt]
        elif isinstance(prompt, list) and prompt and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
            prompts = [prompt]
        elif isinstance(prompt, list) and prompt and all(isinstance(p, (str, list)) for p in prompt):
            prompts = prompt
        else:
            raise RequestError(
                400, "'prompt' must be a string, a list of strings, a list of token ids or a list of token-id lists"
            )
        if len(prompts) > self.limits.max_prompts:
            raise RequestError(413, f"{len(prompts)} prompts in one request; the limit is {self.limits.max_prompts}")
        ids = [encode_text(self.tokenizer, p) if isinstance(p, str) else self._check_ids(p, "a token-id prompt")
               for p in prompts]
        if not allow_empty and any(not row for row in ids):
            raise RequestError(400, "every prompt needs at least one token to score")
        return ids

    def completions(self, body: dict[str, Any]) -> dict[str, Any]:
        echo = _field(body, "echo", (bool,), False, "true or false")
        prompts = self._prompts(body.get("prompt"), allow_empty=not echo)
        top = _field(body, "logprobs", (int,), None, "an integer")
        temperature = _finite(_field(body, "temperature", (int, float), 1.0, "a number"), "temperature")
        seed = _field(body, "seed", (int,), None, "an integer")
        if seed is not None and not 0 <= seed < 1 << 64:
            raise RequestError(400, f"'seed'={seed} must be in [0, 2**64)")
        n = _field(body, "n", (int,), 1, "an integer")
        stop = body.get("stop")
        stop = [stop] if isinstance(stop, str) else stop
        if stop is not None and not (isinstance(stop, list) and all(isinstance(s, str) for s in stop)):
            raise RequestError(400, "'stop' must be a string or a list of strings")
        if n != 1:
            raise RequestError(400, f"'n'={n} is not supported; send one request per sample")
        if temperature < 0:
            raise RequestError(400, f"'temperature'={temperature} must be >= 0")
        if top is not None and not 0 <= top <= self.limits.max_top_logprobs:
            raise RequestError(400, f"'logprobs'={top} must be in [0, {self.limits.max_top_logprobs}]")
        max_tokens = _field(body, "max_tokens", (int,), 1 if echo else 16, "an integer")
        if echo and max_tokens != 1:
            raise RequestError(400, "echo=true returns the prompt's log-probs plus exactly one generated token; "
                                    "set max_tokens to 1")
        if not 0 <= max_tokens <= self.limits.max_new_tokens:
            raise RequestError(400, f"'max_tokens'={max_tokens} must be in [0, {self.limits.max_new_tokens}]")
        splits = self._prefix_lengths(body.get("prefix_length"), prompts)
        if echo:
            longest = max(len(p) for p in prompts)
            if longest + (splits is not None) > self.max_length:
                raise RequestError(400, f"a prompt has {longest} tokens; the model takes at most {self.max_length} "
                                        "positions (lm-eval: pass max_length=model_max_length from /tokenizer_info)")
            choices = self._echo(prompts, max(top or 0, 1), top is not None, splits)
        else:
            if top is not None:
                raise RequestError(400, "'logprobs' is supported with echo=true only")
            choices = self._generate(prompts, max_tokens, stop or [], temperature, seed, splits)
        completion_tokens = sum(len(c.pop("_generated")) for c in choices)
        prompt_tokens = sum(len(p) for p in prompts)
        return {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": self.name,
            "choices": choices,
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }

    def _token_string(self, token: int) -> str:
        return self.tokenizer.decode([token])

    def _top_dict(self, ids: list[int], values: list[float]) -> dict[str, float]:
        """Top alternatives keyed by token string; a string two ids share gets the id appended for the later one
        (lower log-prob), so the argmax always keeps its own entry and value."""
        out: dict[str, float] = {}
        for token, value in zip(ids, values):
            key = self._token_string(token)
            out[key if key not in out else f"{key}<|id:{token}|>"] = value
        return out

    def _prefix_lengths(self, value: Any, prompts: list[list[int]]) -> list[int] | None:
        """The extension field ``prefix_length``: None (absent: causal), or one length per prompt."""
        if value is None:
            return None
        if not self.scorer.model.prefix_lm:
            raise RequestError(400, f"'prefix_length' needs a prefix-LM model; {self.name} is scored causally")
        values = [value] * len(prompts) if isinstance(value, int) and not isinstance(value, bool) else value
        if not (isinstance(values, list) and len(values) == len(prompts)
                and all(isinstance(v, int) and not isinstance(v, bool) for v in values)):
            raise RequestError(400, "'prefix_length' must be an integer or a list of integers, one per prompt")
        if any(not 0 <= v <= len(p) for v, p in zip(values, prompts)):
            raise RequestError(400, "'prefix_length' must lie in [0, the prompt's token count]")
        return values

    def _echo(self, prompts: list[list[int]], top_k: int, with_logprobs: bool,
              splits: list[int] | None) -> list[dict[str, Any]]:
        choices = []
        for index, scored in enumerate(self.scorer.prompt_logprobs(prompts, top_k, splits)):
            ids = prompts[index] + [scored.next_token]
            strings = [self._token_string(t) for t in ids]
            offsets, position = [], 0
            for piece in strings:
                offsets.append(position)
                position += len(piece)
            logprobs = None
            if with_logprobs:
                logprobs = {
                    "tokens": strings,
                    "token_logprobs": scored.token_logprobs,
                    "top_logprobs": [None if t is None else self._top_dict(*t) for t in scored.top],
                    "text_offset": offsets,
                }
            choices.append({"index": index, "text": self.tokenizer.decode(ids), "logprobs": logprobs,
                            "finish_reason": "length", "_generated": [scored.next_token]})
        return choices

    def _generate(self, prompts: list[list[int]], max_tokens: int, stop: list[str], temperature: float,
                  seed: int | None, splits: list[int] | None) -> list[dict[str, Any]]:
        """Greedy requests (``temperature`` 0) decode their prompts together (:func:`greedy_batch`, token for token
        what one-at-a-time decoding gives); sampled ones one after another from ``seed``."""
        eos = self.tokenizer.specials.eos
        kept, budgets, kept_splits = [], [], []
        for index, prompt in enumerate(prompts):
            ids, budget = fit_generation(prompt, max_tokens, self.max_length, eos)
            kept.append(ids)
            budgets.append(budget)
            kept_splits.append(None if splits is None else max(splits[index] - (len(prompt) - len(ids)), 0))
        prefix = splits is not None
        if temperature == 0:
            results = greedy_batch(self.scorer, kept, budgets, stop, prefix=prefix, prefix_lengths=kept_splits)
        else:
            results = [self.scorer.generate(ids, budget, stop, temperature=temperature, seed=seed, prefix=prefix,
                                            prefix_length=split)
                       for ids, budget, split in zip(kept, budgets, kept_splits)]
        return [{"index": index, "text": result.text, "logprobs": None, "finish_reason": result.finish_reason,
                 "_generated": result.token_ids} for index, result in enumerate(results)]
