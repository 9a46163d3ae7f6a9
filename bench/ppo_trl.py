"""GRPO steps of birdie (``PPOTrainer``, algorithm grpo) side by side with TRL's ``GRPOTrainer`` on the same model.

The model is a causal ``transformer-tiny`` (random weights, the byte tokenizer), exported by birdie and converted
with ``birdie convert to-hf`` into a ``LlamaForCausalLM`` directory, so both trainers start from the same weights
and the same token ids (the rendered chat prompts tokenize identically; checked below). Both sample 8 completions
of up to 16 tokens for 4 embedded story prompts per step at temperature 1, score them with the same Python
function (the story-answer reward), use a KL coefficient of 0.02 against a frozen reference, one optimizer update
per step, AdamW at lr 5e-3 with a constant schedule. Order: birdie, TRL, birdie again (so a load change between
the runs shows as a gap between the two birdie runs). Reported: the median step time after the first step (a
warm-up), generated tokens per second, and the mean reward of the last steps. Run through ``bench/ppo.py --trl``;
needs ``trl`` (and its ``datasets``), works offline.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from birdie.convert.to_hf import convert_to_hf
from birdie.finetune.ppo import PPOConfig, PPOTrainer
from birdie.finetune.rewards import StoryAnswerReward
from birdie.finetune.rollout import prompt_ids
from birdie.finetune.story_qa import story_questions
from birdie.models import create
from birdie.tokenizers import ByteTokenizer
from birdie.train.export import export_model, load

PROMPTS, GENERATIONS, NEW_TOKENS, LR, BETA = 4, 8, 16, 5e-3, 0.02


def _birdie(export: Path, texts: list[str], reward: StoryAnswerReward, steps: int) -> tuple[list[float], float, float]:
    """(step times, generated tokens per step, mean reward of the last half) of birdie's GRPO."""
    policy, tokenizer = load(export)
    config = PPOConfig(algorithm="grpo", rollouts_per_prompt=GENERATIONS, max_new_tokens=NEW_TOKENS, temperature=1.0,
                       kl_coef=BETA, kl_estimator="k3", lr=LR, ppo_epochs=1)
    trainer = PPOTrainer(policy.train(), tokenizer, reward, config)
    ids = [torch.from_numpy(prompt_ids([{"role": "user", "content": t}], tokenizer)) for t in texts]
    times, tokens, rewards = [], [], []
    for step in range(steps):
        chosen = [(step * PROMPTS + i) % len(ids) for i in range(PROMPTS)]
        started = time.perf_counter()
        metrics = trainer.step([ids[i] for i in chosen], [texts[i] for i in chosen])
        times.append(time.perf_counter() - started)
        tokens.append(metrics["tokens/responses_len_mean"] * PROMPTS * GENERATIONS)
        rewards.append(metrics["objective/scores"])
    return times, statistics.mean(tokens), statistics.mean(rewards[steps // 2:])


def _trl(hf_dir: Path, rendered: list[str], reward: StoryAnswerReward, steps: int,
         work: Path) -> tuple[list[float], float, float]:
    """The same for TRL's GRPOTrainer (prompts given as the rendered chat text)."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    times: list[float] = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201 - TRL's callback API
            self.started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
            times.append(time.perf_counter() - self.started)

    def story_reward(prompts: list[str], completions: list[str], **_: object) -> list[float]:
        return reward(prompts, completions)

    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    config = GRPOConfig(output_dir=str(work / "trl"), per_device_train_batch_size=PROMPTS * GENERATIONS,
                        num_generations=GENERATIONS, max_completion_length=NEW_TOKENS, temperature=1.0, beta=BETA,
                        learning_rate=LR, lr_scheduler_type="constant", adam_beta2=0.95, max_steps=steps,
                        gradient_checkpointing=False,
                        logging_steps=1, report_to="none", use_cpu=True, save_strategy="no", bf16=False, seed=0,
                        dataloader_num_workers=0, disable_tqdm=True)
    trainer = GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(hf_dir), reward_funcs=story_reward, args=config,
                          train_dataset=Dataset.from_list([{"prompt": text} for text in rendered]),
                          processing_class=tokenizer, callbacks=[StepTimer()])
    trainer.remove_callback(PrinterCallback)  # its per-step dicts would bury the table
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "reward" in entry]
    tokens = statistics.mean(entry["completions/mean_length"] * PROMPTS * GENERATIONS for entry in logs)
    return times, tokens, statistics.mean(entry["reward"] for entry in logs[steps // 2:])


def _row(name: str, times: list[float], tokens: float, reward: float) -> str:
    median = statistics.median(times[1:] or times)
    return f"| {name} | {median:.3f} | {tokens / median:.0f} | {reward:.3f} |"


def side_by_side(steps: int) -> None:
    """Print the comparison as a Markdown table (median step s, generated tokens/s, late mean reward)."""
    import trl
    import transformers

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.manual_seed(0)
    tokenizer = ByteTokenizer()
    model = create("transformer-tiny", vocab_size=tokenizer.vocab_size, bidirectional_layers="none")
    questions = story_questions("train", 64)
    texts = [q.prompt for q in questions]
    rendered = [tokenizer.decode(prompt_ids([{"role": "user", "content": t}], tokenizer).tolist()) for t in texts]
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        export_model(work / "birdie", model, model.config.to_dict(), tokenizer)
        hf = convert_to_hf(work / "birdie", work / "hf")
        from transformers import AutoTokenizer

        hf_tokenizer = AutoTokenizer.from_pretrained(hf.out)
        first = prompt_ids([{"role": "user", "content": texts[0]}], tokenizer).tolist()
        assert hf_tokenizer(rendered[0], add_special_tokens=False)["input_ids"] == first, "tokenizations differ"
        load_before = os.getloadavg()[0]
        runs = [("birdie GRPO", _birdie(work / "birdie", texts, StoryAnswerReward(dict(zip(texts, (
                    q.answer for q in questions)))), steps)),
                (f"TRL {trl.__version__} GRPOTrainer", _trl(hf.out, rendered, StoryAnswerReward(dict(zip(rendered, (
                    q.answer for q in questions)))), steps, work)),
                ("birdie GRPO (again)", _birdie(work / "birdie", texts, StoryAnswerReward(dict(zip(texts, (
                    q.answer for q in questions)))), steps))]
    print(f"{hf.architecture} {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters; {PROMPTS} prompts "
          f"x {GENERATIONS} completions x <= {NEW_TOKENS} tokens per step, {steps} steps each; torch "
          f"{torch.__version__}, transformers {transformers.__version__}; load average {load_before:.1f} -> "
          f"{os.getloadavg()[0]:.1f}")
    print("| trainer | median step s | generated tokens/s | mean reward, 2nd half |\n|---|---|---|---|")
    for name, (times, tokens, reward) in runs:
        print(_row(name, times, tokens, reward))
