"""SFT and DPO steps of birdie side by side with TRL's ``SFTTrainer`` and ``DPOTrainer`` on the same model and data.

The model is a causal ``transformer-tiny`` (random weights, the byte tokenizer), exported by birdie and converted
with ``birdie convert to-hf`` into a ``LlamaForCausalLM`` directory, so both sides start from the same weights.
Data: the embedded story conversations and preference pairs, rendered once by birdie. TRL's SFT gets them as
token ids with labels (-100 outside birdie's loss mask), so both train on identical tokens; TRL's DPO gets the
rendered text (prompt, chosen and rejected completions, EOS included) and tokenizes it itself: its token ids are
checked equal to birdie's. Same batch (16 conversations or pairs), rows of ``--sequence-length``, AdamW at birdie's
learning rate, fp32, CPU, one process.

Settings made explicit on TRL's side (its defaults differ from a plain training loop): ``gradient_checkpointing``
off (TRL defaults it on; it recomputes activations), ``bf16`` off (fp32 like birdie), no evaluation, no saving,
``report_to="none"``, no hub, logging every 100 steps (so not during the timed steps), no dataloader workers, no
dataset shuffle before packing. TRL's SFT still computes its per-step entropy and token-accuracy metrics (no switch
turns them off; birdie computes token accuracy too). Packing: birdie packs each step's 16 conversations into rows
with per-conversation resets; TRL's ``packing=True`` (best-fit decreasing, padding-free, per-sequence position ids)
packs the whole dataset into rows, and its batch is set to the number of rows birdie's packing fills per step, so a
step trains about as many tokens on both sides. Padding: both pad every conversation to the full row
(``pad_to_multiple_of`` = row length for TRL). DPO: birdie's reference live (a frozen copy, forward per step) or
cached (log-probs precomputed once); TRL's live (a second model) or ``precompute_ref_log_probs=True``.

Order: birdie (both modes interleaved step by step), TRL, birdie again, so a load change between runs shows as a
gap between the two birdie runs. Rates are over the steps after the first (a warm-up). Run through
``bench/finetune.py --trl``; needs ``trl`` (and its ``datasets``); works offline.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch

from birdie.convert.to_hf import convert_to_hf
from birdie.finetune.batches import global_batch, pack
from birdie.finetune.datasets import Example

Trainer = Any  # birdie's FinetuneTrainer, built by bench/finetune.py's ``trainer``
Interleaved = Callable[[dict[str, Trainer], int], dict[str, float]]  # bench/finetune.py's ``interleaved_seconds``


def _birdie_rates(trainers: dict[str, Trainer], steps: int, interleaved: Interleaved,
                  per_step: Callable[[Trainer, int], float]) -> dict[str, float]:
    """Work per second (``per_step`` units) of each trainer, the modes interleaved step by step; step 0 warms up."""
    seconds = interleaved(trainers, steps)
    return {mode: sum(per_step(t, s) for s in range(1, steps + 1)) / seconds[mode] for mode, t in trainers.items()}


def _real_tokens(t: Trainer, step: int) -> float:
    """Trained positions of birdie's step ``step``: an example of L tokens fills L - 1."""
    indices = global_batch(t.objective.num_examples, t.config.train.batch_size, step, 0)
    return float(sum(len(t.objective.items[i].ids) - 1 for i in indices))


class _Meter:
    """Step times (a TRL callback) and the real tokens each policy forward trained (a forward pre-hook)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.tokens: list[float] = []

    def hook(self, module: torch.nn.Module, args: tuple, kwargs: dict[str, Any]) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        if "attention_mask" in kwargs and kwargs["attention_mask"] is not None:  # padded rows: real = mask - 1/row
            self.tokens.append(float(kwargs["attention_mask"].sum() - ids.shape[0]))
        else:  # padding-free packed row: one position per token, minus one per sequence (position id 0)
            self.tokens.append(float(ids.numel() - (kwargs["position_ids"] == 0).sum()))

    def callback(self) -> Any:
        from transformers import TrainerCallback

        meter = self

        class StepTimer(TrainerCallback):
            def on_step_begin(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201 - HF's callback API
                self.started = time.perf_counter()

            def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
                meter.times.append(time.perf_counter() - self.started)

        return StepTimer()


def _common(out: Path, batch: int, steps: int, lr: float, betas: list[float]) -> dict[str, Any]:
    """TRL/HF training arguments shared by SFT and DPO, every default that would skew a timing set explicitly."""
    return {"output_dir": str(out), "per_device_train_batch_size": batch, "max_steps": steps, "learning_rate": lr,
            "adam_beta1": betas[0], "adam_beta2": betas[1], "weight_decay": 0.0, "lr_scheduler_type": "constant",
            "gradient_checkpointing": False, "bf16": False, "use_cpu": True, "eval_strategy": "no",
            "save_strategy": "no", "report_to": "none", "push_to_hub": False, "logging_steps": 100,
            "dataloader_num_workers": 0, "disable_tqdm": True, "seed": 0}


def _run(trainer: Any, meter: _Meter) -> None:
    from transformers import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(meter.callback())
    handle = trainer.model.register_forward_pre_hook(meter.hook, with_kwargs=True)
    trainer.train()
    handle.remove()


def _pairs(t: Trainer, step: int) -> float:
    return float(t.config.train.batch_size)


def _trl_sft(hf_dir: Path, examples: list[Example], args: argparse.Namespace, lr: float, betas: list[float],
             packing: bool, batch: int, work: Path) -> float:
    """TRL SFTTrainer real tokens/s on the same token ids and loss mask as birdie."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    rows = [{"input_ids": e.ids.tolist(), "labels": [int(i) if m else -100 for i, m in zip(e.ids, e.mask)]}
            for e in examples]
    config = SFTConfig(**_common(work / f"sft-{packing}", batch, args.steps + 1, lr, betas),
                       max_length=args.sequence_length, packing=packing, packing_strategy="bfd",
                       pad_to_multiple_of=None if packing else args.sequence_length, shuffle_dataset=False,
                       completion_only_loss=False, assistant_only_loss=False)
    meter = _Meter()
    trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(hf_dir), args=config,
                         train_dataset=Dataset.from_list(rows), processing_class=AutoTokenizer.from_pretrained(hf_dir))
    _run(trainer, meter)
    return sum(meter.tokens[1:]) / sum(meter.times[1:])


def _pair_texts(pair: Any, decode: Callable[[list[int]], str]) -> dict[str, str]:
    """Birdie's rendered pair as TRL's prompt/chosen/rejected text (the prompt ends where the loss mask starts)."""
    start = int(pair.chosen.mask.argmax())
    return {"prompt": decode(pair.chosen.ids[:start].tolist()), "chosen": decode(pair.chosen.ids[start:].tolist()),
            "rejected": decode(pair.rejected.ids[start:].tolist())}


def _trl_dpo(hf_dir: Path, pairs: list[Any], decode: Callable[[list[int]], str], args: argparse.Namespace, lr: float,
             betas: list[float], precompute: bool, work: Path) -> tuple[float, float]:
    """TRL DPOTrainer (pairs/s, seconds of its constructor: the reference pass when ``precompute``)."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    config = DPOConfig(**_common(work / f"dpo-{precompute}", args.batch_size, args.steps + 1, lr, betas),
                       max_length=args.sequence_length, beta=0.1, loss_type=["sigmoid"],
                       precompute_ref_log_probs=precompute)
    meter = _Meter()
    started = time.perf_counter()
    trainer = DPOTrainer(model=AutoModelForCausalLM.from_pretrained(hf_dir), args=config,
                         train_dataset=Dataset.from_list([_pair_texts(p, decode) for p in pairs]),
                         processing_class=AutoTokenizer.from_pretrained(hf_dir))
    built = time.perf_counter() - started
    first = trainer.train_dataset[0]
    for side in ("chosen", "rejected"):
        assert first["prompt_ids"] + first[f"{side}_ids"] == getattr(pairs[0], side).ids.tolist(), \
            f"TRL tokenized the {side} side differently from birdie"
    _run(trainer, meter)
    return args.batch_size * args.steps / sum(meter.times[1:]), built


def side_by_side(args: argparse.Namespace, trainer: Callable[..., Trainer], interleaved: Interleaved) -> None:
    """Print SFT tokens/s and DPO pairs/s of birdie and TRL as Markdown tables, with the ratios."""
    import datasets
    import transformers
    import trl

    datasets.disable_progress_bars()  # the tables are the output; TRL's warnings stay on
    transformers.logging.disable_progress_bar()
    from birdie.models import create
    from birdie.tokenizers import ByteTokenizer
    from birdie.train.export import export_model

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        tokenizer = ByteTokenizer()
        torch.manual_seed(0)
        model = create(args.preset, vocab_size=tokenizer.vocab_size, bidirectional_layers="none")
        base = export_model(work / "base", model, model.config.to_dict(), tokenizer)
        hf = convert_to_hf(base, work / "hf")
        load_before = os.getloadavg()[0]

        sft = {mode: trainer("sft", base, work / mode, args, data={"packing": mode == "packing"})
               for mode in ("packing", "padding")}
        lr, betas = sft["packing"].config.optimizer.lr, list(sft["packing"].config.optimizer.betas)
        examples = sft["packing"].objective.items
        rows = statistics.mean(
            pack([examples[i] for i in global_batch(len(examples), args.batch_size, s, 0)], args.sequence_length,
                 0)["input_ids"].shape[0] for s in range(1, args.steps + 1))
        sft_rates = {f"birdie {m}": r for m, r in _birdie_rates(sft, args.steps, interleaved, _real_tokens).items()}
        for packing in (True, False):
            sft_rates[f"TRL {'packing' if packing else 'padding'}"] = _trl_sft(
                hf.out, examples, args, lr, betas, packing, max(1, round(rows)) if packing else args.batch_size, work)
        again = _birdie_rates(sft, args.steps, interleaved, _real_tokens)
        sft_rates.update({f"birdie {m} (again)": r for m, r in again.items()})

        started = time.perf_counter()
        dpo = {"cached": trainer("dpo", base, work / "cached", args, dpo={"reference": "cached"})}
        birdie_cache_s = time.perf_counter() - started
        dpo["live"] = trainer("dpo", base, work / "live", args, dpo={"reference": "live"})
        pairs = dpo["live"].objective.items
        dpo_rates = {f"birdie {m}": r for m, r in _birdie_rates(dpo, args.steps, interleaved, _pairs).items()}
        built = {}
        for precompute in (False, True):
            name = f"TRL {'cached' if precompute else 'live'}"
            dpo_rates[name], built[name] = _trl_dpo(hf.out, pairs, tokenizer.decode, args, lr, betas, precompute,
                                                    work)
        dpo_rates.update({f"birdie {m} (again)": r
                          for m, r in _birdie_rates(dpo, args.steps, interleaved, _pairs).items()})

    print(f"{hf.architecture} {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, byte tokenizer; "
          f"batch {args.batch_size}, rows of {args.sequence_length}, {args.steps} timed steps after 1 warm-up; "
          f"torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}, threads "
          f"{torch.get_num_threads()}; load average {load_before:.1f} -> {os.getloadavg()[0]:.1f}")
    print(f"TRL packed batch: {max(1, round(rows))} rows (birdie's packing fills {rows:.1f} rows per step)")
    _table("SFT", "real tokens/s", sft_rates, "birdie packing")
    _table("DPO", "pairs/s", dpo_rates, "birdie cached")
    print("birdie / TRL, each mode (birdie: the mean of its two runs): " + ", ".join(
        f"{kind} {mode} {_paired(rates, mode):.2f}x"
        for kind, rates, modes in (("SFT", sft_rates, ("packing", "padding")), ("DPO", dpo_rates, ("live", "cached")))
        for mode in modes))
    print(f"one-off reference pass over {args.examples} pairs: birdie {birdie_cache_s:.1f} s (with the data load), "
          f"TRL DPOTrainer constructor {built['TRL cached']:.1f} s with precompute_ref_log_probs, "
          f"{built['TRL live']:.1f} s without")


def _paired(rates: dict[str, float], mode: str) -> float:
    return (rates[f"birdie {mode}"] + rates[f"birdie {mode} (again)"]) / 2 / rates[f"TRL {mode}"]


def _table(name: str, unit: str, rates: dict[str, float], against: str) -> None:
    print(f"| {name} | {unit} | {against} / this |\n|---|---|---|")
    for label, rate in rates.items():
        print(f"| {label} | {rate:.1f} | {rates[against] / rate:.2f}x |")
