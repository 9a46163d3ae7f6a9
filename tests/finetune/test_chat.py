"""Golden tests of the Tulu rendering and its loss mask (easylm.md §1.2-§1.3)."""

import json

import numpy as np
import pytest

from birdie.finetune.chat import ChatFormatError, render_chat, render_chat_text, truncate
from birdie.finetune.chat_template import ChatTemplate
from birdie.tokenizers import ByteTokenizer

CONVERSATION = [
    {"role": "system", "content": " Be brief. "},
    {"role": "user", "content": "u1\n"},
    {"role": "assistant", "content": "a1"},
    {"role": "user", "content": "u2"},
    {"role": "assistant", "content": " a2 "},
]


def trained_text(tokenizer, ids, mask):
    return tokenizer.decode(ids[mask])


def test_golden_string_easylm_example():
    messages = CONVERSATION[1:]
    assert render_chat_text(messages) == "<s><|user|>\nu1\n<|assistant|>\na1</s>\n<|user|>\nu2\n<|assistant|>\na2</s>"


def test_golden_string_with_system_and_birdie_specials():
    tokenizer = ByteTokenizer()
    ids, mask = render_chat(CONVERSATION, tokenizer)
    expected = ("<|bos|><|system|>\nBe brief.\n<|user|>\nu1\n<|assistant|>\na1<|eos|>\n<|user|>\nu2\n"
                "<|assistant|>\na2<|eos|>")
    assert tokenizer.decode(ids) == expected
    assert ids[0] == tokenizer.specials.id("bos")
    assert ids.dtype == np.int64 and mask.dtype == bool and ids.shape == mask.shape


def test_mask_is_assistant_content_and_eos_only():
    tokenizer = ByteTokenizer()
    ids, mask = render_chat(CONVERSATION, tokenizer)
    assert trained_text(tokenizer, ids, mask) == "a1<|eos|>a2<|eos|>"
    assert not mask[0]  # BOS is never a target
    last_ids, last_mask = render_chat(CONVERSATION, tokenizer, train_on="last_assistant")
    np.testing.assert_array_equal(last_ids, ids)
    assert trained_text(tokenizer, last_ids, last_mask) == "a2<|eos|>"


def test_user_text_does_not_change_trained_count():
    tokenizer = ByteTokenizer()
    longer = [dict(m) for m in CONVERSATION]
    longer[1]["content"] = "a much longer user question than before"
    assert render_chat(longer, tokenizer)[1].sum() == render_chat(CONVERSATION, tokenizer)[1].sum()


def test_conversation_ending_on_user_renders_without_trailing_newline():
    messages = CONVERSATION[1:4]
    assert render_chat_text(messages) == "<s><|user|>\nu1\n<|assistant|>\na1</s>\n<|user|>\nu2"


def test_truncation_cuts_ids_and_mask_together():
    tokenizer = ByteTokenizer()
    ids, mask = render_chat(CONVERSATION, tokenizer)
    cut_ids, cut_mask, truncated = truncate(ids, mask, 30)
    assert truncated and len(cut_ids) == 30
    np.testing.assert_array_equal(cut_mask, mask[:30])
    assert truncate(ids, mask, len(ids))[2] is False


@pytest.mark.parametrize("messages, message", [
    ([], "empty"),
    ([{"role": "tool", "content": "x"}], "unknown role 'tool'"),
    ([{"role": "user"}], "'role' and 'content'"),
    ([{"role": "user", "content": 3}], "must be a string"),
    ("hello", "must be a list"),
])
def test_bad_conversations_name_the_row(messages, message):
    with pytest.raises(ChatFormatError, match=message) as info:
        render_chat(messages, ByteTokenizer(), where="data.jsonl row 7")
    assert "data.jsonl row 7" in str(info.value)


TULU_JINJA = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ '<|system|>\n' + message['content'] + '\n' }}"
    "{% elif message['role'] == 'user' %}{{ '<|user|>\n' + message['content'] + '\n' }}"
    "{% else %}{% if not loop.last %}{{ '<|assistant|>\n' + message['content'] + eos_token + '\n' }}"
    "{% else %}{{ '<|assistant|>\n' + message['content'] + eos_token }}{% endif %}{% endif %}"
    "{% if loop.last and add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
    "{% endfor %}")


def test_jinja_template_from_tokenizer_config_matches_builtin(tmp_path):
    pytest.importorskip("jinja2")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(
        {"chat_template": TULU_JINJA, "bos_token": "<s>", "eos_token": {"content": "</s>"}}))
    template = ChatTemplate.from_tokenizer_config(tmp_path)
    messages = [dict(m, content=m["content"].strip()) for m in CONVERSATION]
    tokenizer = ByteTokenizer()
    ids, mask = render_chat(messages, tokenizer, template=template)
    builtin_ids, builtin_mask = render_chat(messages, tokenizer)
    # the template has no BOS; otherwise the same ids and mask
    np.testing.assert_array_equal(ids, builtin_ids[1:])
    np.testing.assert_array_equal(mask, builtin_mask[1:])


@pytest.mark.parametrize("train_on", ["all_assistant", "last_assistant"])
def test_exported_tulu_template_renders_like_render_chat(tmp_path, train_on):
    pytest.importorskip("jinja2")
    from birdie.finetune.chat_template import write_tokenizer_config

    write_tokenizer_config(tmp_path)
    template = ChatTemplate.from_tokenizer_config(tmp_path)
    tokenizer = ByteTokenizer()
    for messages in (CONVERSATION, CONVERSATION[1:3]):
        ids, mask = render_chat(messages, tokenizer, train_on, template=template)
        builtin_ids, builtin_mask = render_chat(messages, tokenizer, train_on)
        np.testing.assert_array_equal(ids, builtin_ids)
        np.testing.assert_array_equal(mask, builtin_mask)
    prompt = template.render(CONVERSATION[1:4], add_generation_prompt=True)
    assert prompt == "<|bos|><|user|>\nu1\n<|assistant|>\na1<|eos|>\n<|user|>\nu2\n<|assistant|>\n"
    assert template.render(CONVERSATION[1:4]) == render_chat_text(CONVERSATION[1:4], "<|bos|>", "<|eos|>")


def test_jinja_template_that_is_not_prefix_stable_is_an_error(tmp_path):
    pytest.importorskip("jinja2")
    template = ChatTemplate("{{ messages | length }}{% for m in messages %}{{ m['content'] }}{% endfor %}")
    with pytest.raises(ChatFormatError, match="prefix-stable"):
        render_chat(CONVERSATION, ByteTokenizer(), template=template)
