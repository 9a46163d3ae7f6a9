"""Conversion cost and HF-exported generation speed.

    python bench/convert.py [--layers 22] [--new-tokens 64] [--workdir /tmp/birdie-convert-bench] [--generation-only]

1. ``convert from-hf`` of a 1.1B-parameter random Llama (TinyLlama's shape: d 2048, 22 layers, 32 heads / 4 KV,
   MLP 5632, vocabulary 32000; bf16, two safetensors shards), run in a child process: wall time and the child's
   peak resident memory, against the model's size (streaming per tensor keeps the peak far below it).
2. ``convert to-hf`` of the result back to a native Llama directory, timed the same way.
3. Greedy generation tokens/s of a random hawk-tiny export: birdie's own cached ``generate`` vs the
   ``trust_remote_code`` model ``to-hf`` writes, through ``transformers``' ``generate`` with its recurrent-state
   cache (``use_cache=True``, the default) and without (``use_cache=False`` re-runs the sequence at every step).
   The three are timed round-robin, best of ``--repeats``, after one warm-up each.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from birdie.convert.safetensors_stream import StreamingWriter  # noqa: E402
from tests.convert.hf_fixtures import bpe_tokenizer_json  # noqa: E402

SHAPE = dict(hidden_size=2048, intermediate_size=5632, num_attention_heads=32, num_key_value_heads=4,
             vocab_size=32000)


def write_random_llama(out: Path, layers: int) -> int:
    """A random bf16 Llama directory written tensor by tensor (two shards + index); returns its parameter count."""
    out.mkdir(parents=True, exist_ok=True)
    dim, hidden, vocab = SHAPE["hidden_size"], SHAPE["intermediate_size"], SHAPE["vocab_size"]
    kv = SHAPE["num_key_value_heads"] * dim // SHAPE["num_attention_heads"]
    shapes = {"model.embed_tokens.weight": (vocab, dim), "model.norm.weight": (dim,), "lm_head.weight": (vocab, dim)}
    for i in range(layers):
        p = f"model.layers.{i}."
        shapes.update({p + "input_layernorm.weight": (dim,), p + "post_attention_layernorm.weight": (dim,),
                       p + "self_attn.q_proj.weight": (dim, dim), p + "self_attn.k_proj.weight": (kv, dim),
                       p + "self_attn.v_proj.weight": (kv, dim), p + "self_attn.o_proj.weight": (dim, dim),
                       p + "mlp.gate_proj.weight": (hidden, dim), p + "mlp.up_proj.weight": (hidden, dim),
                       p + "mlp.down_proj.weight": (dim, hidden)})
    names = list(shapes)
    halves = {"model-00001-of-00002.safetensors": names[: len(names) // 2],
              "model-00002-of-00002.safetensors": names[len(names) // 2:]}
    for file, part in halves.items():
        with StreamingWriter(out / file, [(n, shapes[n], torch.bfloat16) for n in part]) as writer:
            for name in part:
                writer.write(name, (torch.randn(shapes[name]) * 0.02).to(torch.bfloat16))
    weight_map = {name: file for file, part in halves.items() for name in part}
    (out / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    config = dict(SHAPE, model_type="llama", architectures=["LlamaForCausalLM"], num_hidden_layers=layers,
                  rms_norm_eps=1e-5, rope_theta=10000.0, max_position_embeddings=2048, tie_word_embeddings=False)
    (out / "config.json").write_text(json.dumps(config))
    bpe_tokenizer_json(out / "tokenizer.json")
    return sum(torch.Size(s).numel() for s in shapes.values())


def timed_child(code: str) -> tuple[float, float]:
    """Run ``code`` in a fresh Python; (wall seconds, that process's own peak RSS in GiB)."""
    report = "\nimport resource; print('peak-kib', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code + report], check=True, cwd=ROOT, capture_output=True,
                          text=True)
    seconds = time.perf_counter() - start
    peak = int(done.stdout.split("peak-kib")[-1])
    return seconds, peak / 2**20


def generation_speed(work: Path, new_tokens: int, repeats: int) -> tuple[dict[str, float], bool]:
    """Tokens/s of each way to generate (best of ``repeats``) and whether all gave the same tokens."""
    from transformers import AutoModelForCausalLM

    from birdie.convert.to_hf import convert_to_hf
    from birdie.models import create
    from birdie.tokenizers import ByteTokenizer
    from birdie.train.export import export_model

    tokenizer = ByteTokenizer()
    torch.manual_seed(0)
    model = create("hawk-tiny", vocab_size=tokenizer.vocab_size).eval()
    export_model(work / "hawk", model, model.config.to_dict(), tokenizer)
    convert_to_hf(work / "hawk", work / "hawk-hf")
    hf = AutoModelForCausalLM.from_pretrained(work / "hawk-hf", trust_remote_code=True, dtype=torch.float32).eval()
    prompt = torch.as_tensor(tokenizer.encode("Once upon a time, a fox"), dtype=torch.long)[None]

    def hf_run(use_cache: bool):
        return lambda: hf.generate(prompt, max_new_tokens=new_tokens, do_sample=False, min_new_tokens=new_tokens,
                                   use_cache=use_cache)[:, prompt.shape[1]:]

    runs = {"birdie": lambda: model.generate(prompt, new_tokens, temperature=0),
            "hf-cache": hf_run(True), "hf-no-cache": hf_run(False)}
    outputs = {name: run() for name, run in runs.items()}  # warm-up
    rates = dict.fromkeys(runs, 0.0)
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            rates[name] = max(rates[name], new_tokens / (time.perf_counter() - start))
    same = all(torch.equal(out, outputs["birdie"]) for out in outputs.values())
    return rates, same


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=22)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", default="/tmp/birdie-convert-bench")
    parser.add_argument("--generation-only", action="store_true", help="skip the 1B conversions (part 3 only)")
    args = parser.parse_args()
    work = Path(args.workdir)
    if work.exists():
        raise SystemExit(f"{work} exists; pass a new --workdir")
    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    if not args.generation_only:
        convert_1b(work, args.layers)
    rates, same = generation_speed(work, args.new_tokens, args.repeats)
    print(f"hawk-tiny greedy, {args.new_tokens} new tokens, tok/s: birdie generate {rates['birdie']:7.1f}; HF generate "
          f"(to-hf, trust_remote_code) with cache {rates['hf-cache']:7.1f} ({rates['birdie'] / rates['hf-cache']:.1f}x "
          f"slower than birdie), without {rates['hf-no-cache']:7.1f} ({rates['birdie'] / rates['hf-no-cache']:.1f}x); "
          f"same tokens: {same}")


def convert_1b(work: Path, layers: int) -> None:
    """Parts 1 and 2: time and peak memory of from-hf and to-hf of a random 1.1B Llama."""
    params = write_random_llama(work / "llama-hf", layers)
    size = params * 2 / 2**30
    print(f"random Llama: {params / 1e9:.2f}B parameters, bf16 {size:.2f} GiB in 2 shards")
    seconds, peak = timed_child(f"from birdie.convert.from_hf import convert_from_hf; "
                                f"convert_from_hf({str(work / 'llama-hf')!r}, {str(work / 'birdie')!r})")
    print(f"from-hf: {seconds:6.1f} s, peak RSS {peak:.2f} GiB ({peak / size:.2f}x the model)")
    seconds, peak = timed_child(f"from birdie.convert.to_hf import convert_to_hf; "
                                f"convert_to_hf({str(work / 'birdie')!r}, {str(work / 'back-hf')!r})")
    print(f"to-hf:   {seconds:6.1f} s, peak RSS {peak:.2f} GiB ({peak / size:.2f}x the model)")


if __name__ == "__main__":
    main()
