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
    "gae": "birdie.finetune.rl_math",
    "kl_k1": "birdie.finetune.rl_math",
    "kl_k3": "birdie.finetune.rl_math",
    "grpo_advantages": "birdie.finetune.rl_math",
    "rloo_advantages": "birdie.finetune.rl_math",
}

__getattr__ = lazy_getattr(__name__, _LAZY)

__all__ = list(_LAZY)
