"""``--model birdie-completions``: lm-eval's ``local-completions`` client plus birdie's ``prefix_length`` extension.

The stock OpenAI completions form cannot say where a request's context ends, so ``birdie serve`` scores it
causally. This client sends each log-likelihood request's context length as ``prefix_length`` (and the whole
prompt's length for generation), so a prefix-LM model is scored through the server exactly as the in-process
``--model birdie`` scores it with ``scoring=prefix``:

    birdie-lm-eval run --model birdie-completions \\
        --model_args base_url=http://127.0.0.1:8000/v1/completions,model=birdie,max_length=MODEL_MAX_LENGTH ...

Rolling perplexity stays causal (as in-process). Over-long requests are cut with
:func:`birdie.harness.truncation.fit_pairs`, as the in-process model cuts them. Every other model argument is
``local-completions``'s.
"""

from __future__ import annotations

from typing import Any, Iterable

from lm_eval.api.registry import register_model
from lm_eval.models.openai_completions import LocalCompletionsAPI

from birdie.harness.truncation import fit_pairs


@register_model("birdie-completions")
class BirdieCompletions(LocalCompletionsAPI):
    """``local-completions`` that sends ``prefix_length`` (see the module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._splits: dict[tuple[int, ...], list[int]] = {}
        self._causal = False

    def batch_loglikelihood_requests(self, chunks: Iterable[list]) -> tuple[list[list[int]], list[int], list]:
        inputs, context_lengths, cache_keys = [], [], []
        for chunk in chunks:
            fitted = fit_pairs([(context, continuation) for _, context, continuation in chunk], self.max_length)
            for (cache_key, _, _), (context, continuation) in zip(chunk, fitted):
                row = context + continuation
                inputs.append(row)
                context_lengths.append(len(context))
                cache_keys.append(cache_key)
                if not self._causal:
                    self._splits.setdefault(tuple(row), []).append(len(context))
        return inputs, context_lengths, cache_keys

    def loglikelihood_rolling(self, requests: list, disable_tqdm: bool = False) -> list[float]:
        self._causal = True  # perplexity is causal on both paths
        try:
            return super().loglikelihood_rolling(requests, disable_tqdm)
        finally:
            self._causal = False

    def _create_payload(self, messages: Any, generate: bool = False, gen_kwargs: dict | None = None,
                        seed: int = 1234, eos: Any = None, **kwargs: Any) -> dict:
        payload = super()._create_payload(messages, generate=generate, gen_kwargs=gen_kwargs, seed=seed, eos=eos,
                                          **kwargs)
        if not (isinstance(messages, list) and messages and all(isinstance(m, list) for m in messages)):
            raise ValueError("birdie-completions sends token ids; leave tokenized_requests at its default (true)")
        if generate:
            payload["prefix_length"] = [len(m) for m in messages]
        elif not self._causal:
            payload["prefix_length"] = [self._splits[tuple(m)].pop(0) for m in messages]
        return payload
