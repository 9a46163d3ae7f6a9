"""The in-process lm-evaluation-harness model, registered as ``birdie``.

``--model birdie --model_args checkpoint=DIR`` scores a birdie export; ``--model_args module=pkg.mod,tag=T,...``
scores a user module (see :class:`birdie.harness.adapters.UserModuleModel`). Further model args:

* ``scoring=auto|prefix|causal``: feed contexts as the bidirectional prefix or causally; ``auto`` follows how the
  model was trained (the export's ``training.json``; a module's ``PREFIX_LM``). Rolling perplexity is always causal.
* ``state_reuse=true|false``: read each distinct context once (models with a state API); rolling-perplexity windows
  share no context and never reuse state.
* ``prefix_cache=N``: contexts whose state is kept across calls (default 0 = off; a KV cache per entry).
* ``max_length=N``: as in lm-eval's API models: inputs are left-truncated to ``N - 1`` tokens, perplexity windows
  hold ``N - 2``; default: the model's ``model_max_length`` (what ``birdie serve`` advertises at
  ``/tokenizer_info``), so passing that number to ``local-completions`` gives the same numbers.
* ``max_gen_toks=N`` (default 256) and ``seed=N`` (default 1234, for sampled generation).

Truncation, rolling windows, the empty-context prefix token and the stop sequences follow lm-eval's
``local-completions`` client exactly, and what still does not fit (a continuation longer than the window, a
generation budget larger than the room left) is cut as :mod:`birdie.harness.truncation` says, as the server cuts
it; so with ``scoring=causal`` this path and ``birdie serve`` give the same outputs. In prefix mode a warning at
start says where the two differ.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import lm_eval.models  # noqa: F401  -- fill the registry with the built-in models before adding ours
from lm_eval.api.instance import Instance
from lm_eval.api.model import TemplateLM
from lm_eval.api.registry import register_model
from lm_eval.models.utils import handle_stop_sequences

from birdie.harness.adapters import ScoringModel, as_bool, load_scoring_model
from birdie.harness.core import Scorer, ScorerConfig
from birdie.harness.text import encode_text, eos_string
from birdie.harness.truncation import fit_generation, fit_pairs, log

#: what lm-eval's chat options get from a birdie model (trained on plain text, no chat template yet)
NO_CHAT_TEMPLATE = "this model has no chat template (it was trained on plain text): run without --apply_chat_template"

#: lm-eval passes these to every model; they are not model arguments.
_HARNESS_KWARGS = ("max_batch_size",)


@register_model("birdie")
class BirdieLM(TemplateLM):
    """lm-eval model over the birdie scoring core.

    Args:
        checkpoint / module / tag / scoring / device: see :func:`birdie.harness.adapters.load_scoring_model`.
        model: an already-built :class:`~birdie.harness.adapters.ScoringModel` (Python API only).
        batch_size: rows per model call (lm-eval's ``--batch_size``; ``auto`` means 16).
        kwargs: further arguments for a user module's ``load_model``/``load_tokenizer``.
    """

    def __init__(
        self,
        checkpoint: str | None = None,
        module: str | None = None,
        tag: str = "",
        scoring: str = "auto",
        model: ScoringModel | None = None,
        state_reuse: bool | str = True,
        prefix_cache: int | str = 0,
        max_length: int | str | None = None,
        max_gen_toks: int | str = 256,
        seed: int | str = 1234,
        batch_size: int | str = 16,
        device: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        for key in _HARNESS_KWARGS:
            kwargs.pop(key, None)
        if model is None:
            model = load_scoring_model(checkpoint, module, tag, scoring, device, **kwargs)
        elif kwargs or checkpoint or module:
            raise ValueError("pass either model= or checkpoint=/module= with their arguments, not both")
        rows = 16 if str(batch_size).startswith("auto") else int(batch_size)
        config = ScorerConfig(batch_size=rows, state_reuse=as_bool(state_reuse, "state_reuse"),
                              prefix_cache_size=int(prefix_cache))
        self.scorer = Scorer(model, config)
        self.tokenizer = model.tokenizer
        total = int(max_length) if max_length is not None else model.max_length
        if total < 3:
            raise ValueError(f"max_length={total} must be >= 3")
        self._window = total - 1  # lm-eval's API models keep one position for the generated token
        self.max_gen_toks = int(max_gen_toks)
        self.seed = int(seed)
        # lm-eval files results under config._name_or_path when it is given a model object
        self.model_name = getattr(model, "name", type(model).__name__)
        self.config = SimpleNamespace(_name_or_path=self.model_name)
        if model.prefix_lm:
            log.warning("%s is scored as a prefix-LM (scoring=prefix): contexts are read as the bidirectional prefix "
                        "followed by <|begin_generating|>. `birdie serve` with lm-eval's stock local-completions "
                        "scores causally, so its numbers differ; pass scoring=causal here to compare, or "
                        "--model birdie-completions for prefix scoring through the server", self.model_name)

    @property
    def eot_token_id(self) -> int:
        return self.tokenizer.specials.eos

    @property
    def prefix_token_id(self) -> int:
        return self.tokenizer.specials.eos

    @property
    def tokenizer_name(self) -> str:
        raise ValueError(NO_CHAT_TEMPLATE)

    def chat_template(self, chat_template: bool | str = False) -> str | None:
        if chat_template:
            raise ValueError(NO_CHAT_TEMPLATE)
        return None

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        raise ValueError(NO_CHAT_TEMPLATE)

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs: Any) -> list[int]:
        return encode_text(self.tokenizer, string)

    def tok_decode(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(tokens)

    def _loglikelihood_tokens(self, requests: list, disable_tqdm: bool = False, **kwargs: Any) -> list[tuple[float, bool]]:
        pairs = fit_pairs([(context, continuation) for _, context, continuation in requests], self._window)
        answers = []
        for (cache_key, _, _), score in zip(requests, self.scorer.loglikelihood(pairs)):
            answer = (score.logprob, score.is_greedy)
            if cache_key is not None:
                self.cache_hook.add_partial("loglikelihood", cache_key, answer)
            answers.append(answer)
        return answers

    def loglikelihood_rolling(self, requests: list[Instance], disable_tqdm: bool = False) -> list[float]:
        documents = [self.tok_encode(string) for (string,) in (req.args for req in requests)]
        totals = self.scorer.loglikelihood_rolling(documents, self.prefix_token_id, self._window - 1)
        for req, total in zip(requests, totals):
            self.cache_hook.add_partial("loglikelihood_rolling", req.args, total)
        return totals

    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
        """Greedy requests are decoded in batches (:func:`birdie.harness.decoding.greedy_batch`, the same outputs
        as one at a time), grouped by their stop sequences; sampled ones one at a time with ``seed``."""
        from birdie.harness.decoding import greedy_batch

        prepared = []
        for context, gen_kwargs in (req.args for req in requests):
            options = dict(gen_kwargs)
            options.pop("do_sample", None)
            max_tokens = int(options.pop("max_tokens", options.pop("max_gen_toks", self.max_gen_toks)))
            stop = handle_stop_sequences(options.pop("until", None), eos_string(self.tokenizer))
            # The same slice as lm-eval's API client (even when max_tokens >= the window, where it keeps an odd
            # tail), then the server's own fit: so both paths see the same prompt and budget.
            prompt = self.tok_encode(context)[-(self._window - max_tokens) :]
            prompt, max_tokens = fit_generation(prompt, max_tokens, self.scorer.model.max_length, self.prefix_token_id)
            prepared.append((prompt, max_tokens, tuple(stop), float(options.pop("temperature", 0.0))))
        outputs: list[str] = [""] * len(requests)
        greedy: dict[tuple[str, ...], list[int]] = {}
        for index, (prompt, max_tokens, stop, temperature) in enumerate(prepared):
            if temperature == 0:
                greedy.setdefault(stop, []).append(index)
            else:
                outputs[index] = self.scorer.generate(prompt, max_tokens, stop, temperature=temperature,
                                                      seed=self.seed).text
        for stop, indices in greedy.items():
            generations = greedy_batch(self.scorer, [prepared[i][0] for i in indices],
                                       [prepared[i][1] for i in indices], stop)
            for index, generation in zip(indices, generations):
                outputs[index] = generation.text
        for req, text in zip(requests, outputs):
            self.cache_hook.add_partial("generate_until", req.args, text)
        return outputs
