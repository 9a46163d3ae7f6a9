"""Story infilling: item structure, determinism, user corpora, and the lowest-normalised-loss choice."""

import itertools
import json
import re

import pytest
import torch
from torch import nn

from birdie.eval.story_infilling import (
    INSTRUCTION,
    QUESTION,
    InfillingConfig,
    evaluate_story_infilling,
    items_from_stories,
    load_story_corpus,
    score_choices,
    split_events,
    synthetic_items,
)
from birdie.tokenizers import ByteTokenizer


def check_item(item, stories, config):
    events, options = item["events"], item["options"]
    assert config.min_events <= len(events) <= config.max_events
    assert events.count("(blank)") == 1 and events[item["blank"]] == "(blank)"
    assert len(options) == 4 and len(set(options)) == 4
    answer = options[item["answer"]]
    for distractor in options[: item["answer"]] + options[item["answer"] + 1:]:
        assert distractor not in events
    # The window with the blank filled in is a run of consecutive events of one story.
    filled = events[:item["blank"]] + [answer] + events[item["blank"] + 1:]
    assert any(story[i:i + len(filled)] == filled for story in stories for i in range(len(story)))
    lines = item["prompt"].split("\n")
    assert lines[0] == INSTRUCTION and lines[-1] == QUESTION
    assert [f"{n}. {e}" for n, e in enumerate(events, 1)] == lines[1:1 + len(events)]
    assert re.findall(r"^\(([A-D])\) ", item["prompt"], flags=re.M) == ["A", "B", "C", "D"]


def test_synthetic_items_are_valid_deterministic_and_varied():
    from birdie.data.stories import stories

    config = InfillingConfig(num_items=40, seed=2)
    items = synthetic_items(config)
    assert items == synthetic_items(config)
    corpus = [list(s.events) for s in itertools.islice(stories(2, "validation"), 40)]
    for item in items:
        check_item(item, corpus, config)
    assert {len(item["events"]) for item in items} == set(range(3, 8))
    assert len({item["answer"] for item in items}) == 4  # the answer letter is not fixed
    assert len({item["blank"] for item in items}) >= 4


def test_user_corpus_jsonl_and_text(tmp_path):
    stories = [[f"Story {s} event {e} happens." for e in range(6)] for s in range(5)]
    jsonl = tmp_path / "stories.jsonl"
    jsonl.write_text("\n".join(json.dumps({"events": story}) if s % 2 else json.dumps({"text": " ".join(story)})
                               for s, story in enumerate(stories)))
    text = tmp_path / "stories.txt"
    text.write_text("\n\n".join(" ".join(story) for story in stories))
    assert load_story_corpus(jsonl) == stories == load_story_corpus(text)
    config = InfillingConfig(num_items=12, min_events=3, max_events=5, seed=1)
    for item in items_from_stories(stories, config):
        check_item(item, stories, config)


def test_split_events_keeps_dialogue_together():
    assert split_events('"Where is it?" asked Tom. He looked. "Here!" said Mia.  3 cats ran.') == [
        '"Where is it?" asked Tom.', "He looked.", '"Here!" said Mia.', "3 cats ran."]


def test_bad_corpora_fail_clearly(tmp_path):
    with pytest.raises(ValueError, match="no story has >= 3 events"):
        items_from_stories([["one.", "two."]], InfillingConfig(num_items=2))
    with pytest.raises(ValueError, match="distractors"):
        items_from_stories([["a.", "b.", "c."]], InfillingConfig(num_items=1))
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"story": "x"}))
    with pytest.raises(ValueError, match="bad.jsonl:1"):
        load_story_corpus(bad)


class PreferLetter(nn.Module):
    """Hand-built scorer: at every position, log-probability log(0.9) for ``letter`` and the rest spread evenly."""

    def __init__(self, vocab_size: int, letter: str) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.favourite = ord(letter)
        self.anchor = nn.Parameter(torch.zeros(()))

    def forward(self, input_ids, label_ids=None, attention_mask=None, segment_ids=None, position_ids=None):
        rest = torch.log(torch.tensor(0.1 / (self.vocab_size - 1)))
        logits = torch.full((*input_ids.shape, self.vocab_size), float(rest)) + self.anchor
        logits[..., self.favourite] = float(torch.log(torch.tensor(0.9)))
        return logits, None


def test_scorer_picks_the_option_the_model_prefers_by_normalised_loss():
    tokenizer = ByteTokenizer()
    model = PreferLetter(tokenizer.vocab_size, "z")
    # In the second item "za" has the lowest summed loss but "zzzzzzzzza" the lowest loss per token, so only
    # length normalisation picks option 3 there.
    items = [
        {"prompt": "p", "options": ["abc", "zzzzzzzzza", "zaa", "zaaaaa"], "answer": 1},
        {"prompt": "q", "options": ["za", "zaaaaaaaaa", "abcabc", "zzzzzzzzza"], "answer": 3},
        {"prompt": "r", "options": ["zz", "za", "aa", "zaz"], "answer": 0},
    ]
    scores, choices = evaluate_story_infilling(model, tokenizer, items, batch_size=2)
    assert choices == [1, 3, 0]
    assert scores["accuracy"] == 1.0


def test_score_choices():
    items = [{"answer": a} for a in (0, 1, 2, 3)]
    assert score_choices(items, [0, 1, 0, 0])["accuracy"] == 0.5
    assert score_choices(items, [0, 1, 2, 3])["random_accuracy"] == 0.25
    with pytest.raises(ValueError):
        score_choices(items, [0])
