"""The modeling file ``birdie convert to-hf`` copies into a Hugging Face directory (``trust_remote_code``)."""
