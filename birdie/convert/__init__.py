"""Interoperability with Hugging Face and open_lm (``docs/interop.md``).

* :func:`~birdie.convert.from_hf.convert_from_hf` -- a local Llama / Mistral directory -> a birdie export.
* :func:`~birdie.convert.to_hf.convert_to_hf` -- a birdie export -> a ``transformers`` directory.
* :func:`~birdie.convert.from_open_lm.convert_from_open_lm` -- an open_lm checkpoint -> a birdie export.
* :func:`~birdie.convert.linearize.linearize` -- a softmax Transformer export -> SUPRA for uptraining.
"""
