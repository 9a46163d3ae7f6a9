"""The `supervised` objective: a prompt/completion pair as one example, validated config, text is skipped."""

import numpy as np
import pytest

from birdie.objectives import OBJECTIVE_CONFIG_BY_NAME, Example, Skip, Supervised, make_objective
from birdie.tokenizers import ByteTokenizer

TOKENIZER = ByteTokenizer()
PROMPT = np.array([5, 6, 7], dtype=np.int32)
COMPLETION = np.array([8, 9], dtype=np.int32)


def test_a_pair_becomes_prompt_prefix_and_completion_target():
    example = Supervised().pair_example(PROMPT, COMPLETION, budget=6, tokenizer=TOKENIZER)
    assert isinstance(example, Example)
    assert example.prefix.tolist() == [5, 6, 7]
    assert example.target.tolist() == [8, 9, TOKENIZER.specials.eos]
    assert example.length == Supervised().positions(PROMPT, COMPLETION) == 6 and len(example.leftover) == 0
    plain = Supervised(append_eos=False).pair_example(PROMPT, COMPLETION, budget=5, tokenizer=TOKENIZER)
    assert plain.target.tolist() == [8, 9]


def test_a_pair_over_budget_is_skipped_whole():
    result = Supervised().pair_example(PROMPT, COMPLETION, budget=5, tokenizer=TOKENIZER)
    assert isinstance(result, Skip) and "needs 6 positions, budget 5" in result.reason


def test_plain_text_is_skipped_with_its_ids_left_over():
    ids = np.arange(10, dtype=np.int32)
    result = Supervised()(ids, np.random.default_rng(0), 100, TOKENIZER)
    assert isinstance(result, Skip) and result.leftover.tolist() == ids.tolist()


def test_built_from_a_mixture_entry_and_kept_out_of_the_self_supervised_registry():
    assert make_objective({"name": "supervised", "append_eos": False}) == Supervised(append_eos=False)
    assert Supervised().key == "supervised" and Supervised(append_eos=False).key == "supervised_append_eos=false"
    assert "supervised" not in OBJECTIVE_CONFIG_BY_NAME


@pytest.mark.parametrize("field, value, message", [
    ("paradigm", "prepend", "must be 'none'"), ("length", (1, 4), "must be None"), ("append_eos", 1, "true or false"),
])
def test_bad_fields_are_rejected_by_name(field, value, message):
    with pytest.raises(ValueError, match=f"Supervised.{field}=.*{message}"):
        Supervised(**{field: value})
