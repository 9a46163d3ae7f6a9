"""The seeds' own API as a user pastes it: the README's config keys (``start_generating_paradigm`` included), the
older method names, and a model whose forward takes exactly the seeds' four keyword arguments."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from birdie import Birdie
from birdie.data.packing import IGNORE_INDEX
from birdie.tokenizers import ByteTokenizer

from .helpers import FAST_SECTIONS, readme_loop

SEPARATOR = "\n<|assistant|>\n"  # the seeds' README value (and their default)


class SeedModel(torch.nn.Module):
    """A model written for the seeds: its forward takes exactly their four keyword arguments."""

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(vocab_size, 16)
        self.out = torch.nn.Linear(16, vocab_size)

    def forward(self, input_ids, label_ids, segment_ids, attention_mask):
        logits = self.out(self.embed(input_ids) * (segment_ids > 0).unsqueeze(-1))
        return F.cross_entropy(logits.flatten(0, 1), label_ids.flatten(), ignore_index=IGNORE_INDEX)


def seed_readme_config(**overrides):
    """The seeds' README config (their keys only), sized for a test, plus a fast agent."""
    config = {
        "batch_size": 2, "sequence_length": 128, "num_workers": 0, "steps_between_evaluations": 4, "num_steps": 12,
        "tokenizer": ByteTokenizer(), "objectives": [{"name": "next_token_prediction"}, {"name": "infilling"}],
        "start_generating_paradigm": SEPARATOR, **FAST_SECTIONS, "warmup_steps": 4,
    }
    config.update(overrides)
    return config


def test_a_four_argument_model_runs_the_seeds_loop_unchanged():
    torch.manual_seed(0)
    config = seed_readme_config()
    model = SeedModel(ByteTokenizer().vocab_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    with Birdie(config) as birdie:
        readme_loop(birdie, model, optimizer, range(config["num_steps"]))  # the seeds' README loop, verbatim
        batch = birdie.get_next_training_sample()
        assert set(batch) == {"input_ids", "label_ids", "segment_ids", "attention_mask"}
        assert [r["step"] for r in birdie.records][:2] == [0, 4]
        assert [r["decided"] for r in birdie.records][:2] == [False, True]


def test_batch_keys_adds_position_ids_for_models_that_read_them():
    with Birdie(seed_readme_config(batch_keys=("input_ids", "label_ids", "segment_ids", "attention_mask",
                                               "position_ids"))) as birdie:
        batch = birdie.get_next_training_sample()
        assert "position_ids" in batch
        for key, validation in birdie.measure_validation_losses():
            assert "position_ids" in validation
            birdie.log_validation_loss(key, 1.0, 0)
    with pytest.raises(ValueError, match="batch_keys=.*must include input_ids"):
        Birdie(seed_readme_config(batch_keys=("label_ids",)))


def _segments(batch):
    """Every packed segment of a batch: (input ids, label ids, attention mask) numpy arrays."""
    for row in range(batch["input_ids"].shape[0]):
        segments = batch["segment_ids"][row].numpy()
        for k in range(1, segments.max() + 1):
            where = segments == k
            yield (batch["input_ids"][row].numpy()[where], batch["label_ids"][row].numpy()[where],
                   batch["attention_mask"][row].numpy()[where])


@pytest.mark.parametrize("paradigm", [None, SEPARATOR])
def test_start_generating_paradigm_separates_prefix_and_target_as_in_the_paper(paradigm):
    tokenizer = ByteTokenizer()
    separator = ([tokenizer.specials.begin_generating] if paradigm is None
                 else list(tokenizer.encode(paradigm)))
    with Birdie(seed_readme_config(start_generating_paradigm=paradigm)) as birdie:
        batches = [birdie.get_next_training_sample() for _ in range(3)]
        batches += [batch for _, batch in birdie.measure_validation_losses()]
    seen = 0
    for batch in batches:
        for input_ids, label_ids, mask in _segments(batch):
            n, s = int(mask.sum()), len(separator)
            assert mask[:n].all() and not mask[n:].any()  # the prefix, then the causal region
            # The separator follows the prefix; only its last token predicts (the target's first token).
            assert input_ids[n:n + s].tolist() == separator
            assert (label_ids[:n + s - 1] == IGNORE_INDEX).all()
            assert (label_ids[n + s - 1:] != IGNORE_INDEX).all()
            # Teacher forcing: after the separator, the inputs are the targets shifted by one.
            np.testing.assert_array_equal(input_ids[n + s:], label_ids[n + s - 1:-1])
            seen += 1
    assert seen > 10


def test_the_seeds_older_method_names_are_thin_aliases():
    with Birdie(seed_readme_config(steps_between_evaluations=2, warmup_steps=2)) as birdie:
        assert birdie.time_for_eval()  # no step: the number of batches taken (0)
        assert birdie.get_validation_losses() is None and not birdie.update()
        samples = birdie.get_validation_samples()
        assert [key for key, _ in samples] == [key for key, _ in birdie.measure_validation_losses()]
        for index, (key, _) in enumerate(samples):
            birdie.log_validation_loss(key, 2.0 + index, 0)
        assert birdie.update() and birdie.update(0) and not birdie.update(2)
        expected = {key: np.mean([2.0 + i for i, (k, _) in enumerate(samples) if k == key]) for key in birdie.keys}
        assert birdie.get_validation_losses() == pytest.approx(expected)
        assert not birdie.time_for_eval()  # step 0 was evaluated
        birdie.get_next_training_sample()
        assert not birdie.time_for_eval()  # one batch taken: step 1
        birdie.get_next_training_sample()
        assert birdie.time_for_eval() == birdie.time_for_eval(2) is True


def test_agent_options_is_an_error_naming_the_typed_sections():
    with pytest.raises(ValueError, match="'agent_options' is replaced by typed sections.*'reward_model'"):
        Birdie(seed_readme_config(agent_options={"train_steps": 5}))
    with pytest.raises(ValueError, match="'reward_model' has unknown key.*widht"):
        Birdie(seed_readme_config(reward_model={"widht": 8}))
    with pytest.raises(ValueError, match="gives 'warmup_steps' twice"):
        Birdie(seed_readme_config(schedule={"warmup_steps": 2}))
