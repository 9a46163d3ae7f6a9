"""An export keeps its own special-token table: growing the objective registry later renumbers nothing in it."""

import torch

import birdie.special_tokens
from birdie.models import create
from birdie.tokenizers import ByteTokenizer, load_tokenizer
from birdie.train.export import export_model, load


def test_an_old_export_loads_with_its_own_table_after_the_registry_grows(tmp_path, monkeypatch):
    tokenizer = ByteTokenizer()
    torch.manual_seed(0)
    model = create("transformer-tiny", vocab_size=tokenizer.vocab_size)
    export_model(tmp_path, model, model.config.to_dict(), tokenizer)

    grown = (*birdie.special_tokens.OBJECTIVE_NAMES[:2], "new_paradigm", *birdie.special_tokens.OBJECTIVE_NAMES[2:])
    monkeypatch.setattr(birdie.special_tokens, "OBJECTIVE_NAMES", grown)
    fresh = ByteTokenizer()
    assert fresh.specials.id("<|new_paradigm|>") and fresh.specials.sentinels[0] != tokenizer.specials.sentinels[0]

    _, loaded = load(tmp_path)
    assert loaded.specials == tokenizer.specials and loaded.vocab_size == tokenizer.vocab_size
    assert loaded.specials.paradigm("copying") == tokenizer.specials.paradigm("copying")
    assert load_tokenizer(tokenizer.spec()).specials == tokenizer.specials


def test_a_spec_without_a_table_still_loads_with_the_current_registry():
    spec = {"kind": "bytes", "num_sentinels": 4}  # written before the table was recorded
    assert load_tokenizer(spec).specials == ByteTokenizer(4).specials
