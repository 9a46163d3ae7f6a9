"""Fine-tuning: chat SFT, DPO and reward models on any birdie family (see ``docs/finetuning.md``).

``render_chat`` renders a conversation in the Tulu format with its loss mask; ``dpo_loss`` and
``reward_model_loss`` are the preference losses. Imported lazily so ``import birdie.finetune`` stays light.
"""

from __future__ import annotations

from birdie.lazy import lazy_getattr

_LAZY = {
    "render_chat": "birdie.finetune.chat",
    "render_chat_text": "birdie.finetune.chat",
    "ChatFormatError": "birdie.finetune.chat",
    "ChatTemplate": "birdie.finetune.chat_template",
    "dpo_loss": "birdie.finetune.losses",
    "reward_model_loss": "birdie.finetune.losses",
    "sequence_logps": "birdie.finetune.losses",
}

__getattr__ = lazy_getattr(__name__, _LAZY)

__all__ = list(_LAZY)
