"""Interoperability: models in and out of the Hugging Face format (``birdie convert``).

* :func:`~birdie.convert.from_hf.convert_from_hf` -- a local Llama / Mistral directory -> a birdie export.
"""
