"""Tiny Hugging Face models and tokenizers built locally (no hub) for the conversion tests."""

from __future__ import annotations

from pathlib import Path

TEXT = ("Once upon a time a little fox found a red ball in the tall grass. She rolled it to her friend the owl, "
        "who rolled it back. They played until the moon came up and the stars were bright.\n") * 20


def bpe_tokenizer_json(path: Path, vocab_size: int = 300) -> int:
    """Train a byte-level BPE on :data:`TEXT` and save it as ``path``; returns its vocabulary size."""
    from tokenizers import ByteLevelBPETokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([TEXT], vocab_size=vocab_size, min_frequency=1, show_progress=False,
                            special_tokens=["<unk>", "<s>", "</s>"])
    bpe.save(str(path))
    return bpe.get_vocab_size()


def sentencepiece_model(path: Path, vocab_size: int = 120) -> int:
    """Train a SentencePiece BPE model on :data:`TEXT` and write it to ``path``; returns its piece count."""
    import io

    import sentencepiece

    proto = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(sentence_iterator=iter(TEXT.splitlines()), model_writer=proto,
                                             vocab_size=vocab_size, model_type="bpe", minloglevel=2)
    path.write_bytes(proto.getvalue())
    return sentencepiece.SentencePieceProcessor(model_file=str(path)).get_piece_size()


def hf_model(out: Path, kind: str = "llama", vocab_size: int = 300, seed: int = 0, shard: bool = False, **config):
    """Build, save (safetensors) and return a random ``LlamaForCausalLM`` / ``MistralForCausalLM`` in fp32."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM

    base = dict(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, initializer_range=0.1, max_position_embeddings=128)
    base.update(config)
    config_cls, model_cls = (LlamaConfig, LlamaForCausalLM) if kind == "llama" else (MistralConfig, MistralForCausalLM)
    torch.manual_seed(seed)
    model = model_cls(config_cls(**base)).float().eval()
    model.save_pretrained(out, safe_serialization=True, max_shard_size="20KB" if shard else "5GB")
    return model
