"""Language models for Birdie: one shell, pluggable sequence mixers (Transformer, Hawk, Gated SSM, SUPRA).

    from birdie import models
    model = models.create("transformer-tiny", vocab_size=512)
    logits, loss = model(**batch)                        # the pipeline's packed batch
    new_ids = model.generate(prompt_ids, max_new_tokens=32, temperature=0.0)

See ``docs/models.md``.
"""

from birdie.models.config import ModelConfig
from birdie.models.lm import LanguageModel, language_model_loss
from birdie.models.mixer import Mixer, SequenceInfo
from birdie.models.presets import count_parameters, create, preset_config, presets
from birdie.models.registry import Family, available_families, get_family, register_family

__all__ = [
    "Family",
    "LanguageModel",
    "Mixer",
    "ModelConfig",
    "SequenceInfo",
    "available_families",
    "count_parameters",
    "create",
    "get_family",
    "language_model_loss",
    "preset_config",
    "presets",
    "register_family",
]
