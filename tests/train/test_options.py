"""Every training option, exercised by a short run on a tiny preset."""

import importlib
import itertools
import json

import pytest
import torch

from birdie.data.stories import story_texts
from birdie.train.config import ConfigError, ScheduleConfig
from birdie.train.metrics import read_metrics
from birdie.train.optim import decay_mask, lr_factor
from birdie.train.trainer import train

from tests.train.helpers import tiny_config


def _run(tmp_path, **values):
    summary = train(tiny_config(tmp_path, **values))
    return summary, read_metrics(tmp_path / "metrics.jsonl")


def _stories(count):
    return list(itertools.islice(story_texts(3, "train"), count))


@pytest.mark.slow
def test_metrics_hold_the_documented_fields_and_plots_are_written(tmp_path):
    summary, records = _run(tmp_path, **{"logging.plots": True, "optimizer.z_loss": 1e-3,
                                         "schedule.decay": "linear", "train.grad_accum": 2})
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    for record in records:
        assert {"step", "loss", "lr", "grad_norm", "tokens_per_s", "mixture"} <= set(record)
        assert sum(record["mixture"].values()) == pytest.approx(1.0)
    assert "val_loss" in records[0] and len(records[0]["val_loss"]) == 8  # one per demo configuration
    schedule = ScheduleConfig(warmup_steps=1, decay="linear")
    assert [r["lr"] for r in records] == pytest.approx([3e-3 * lr_factor(s, 4, schedule) for s in range(4)])
    assert (tmp_path / "plots" / "losses.png").stat().st_size > 0
    assert (tmp_path / "plots" / "mixture.png").stat().st_size > 0
    assert summary.losses == pytest.approx([r["loss"] for r in records])


@pytest.mark.slow
def test_bf16_autocast_and_cosine_decay(tmp_path):
    summary, records = _run(tmp_path, **{"train.precision": "bf16", "train.steps": 3})
    assert all(torch.isfinite(torch.tensor(summary.losses)))
    assert [r["lr"] for r in records] == pytest.approx([3e-3, 3e-3, 3e-4])  # 1 warm-up step, peak, final ratio


@pytest.mark.slow
@pytest.mark.parametrize("agent", ["ul2", "ntp", "uniform"])
def test_static_agents_keep_their_mixture(tmp_path, agent):
    values = {"curriculum.agent": agent, "model.preset": "gated-ssm-tiny", "train.steps": 2}
    if agent in ("ul2", "ntp"):
        values["curriculum.mixture"] = None  # the agent's own mixture
    _, records = _run(tmp_path, **values)
    assert records[0]["mixture"] == records[-1]["mixture"]
    if agent == "ntp":
        assert records[0]["mixture"] == {"next_token_prediction": 1.0}


@pytest.mark.slow
def test_fixed_ratios_by_class_or_configuration(tmp_path):
    _, records = _run(tmp_path, **{"curriculum.agent": "fixed", "train.steps": 2,
                                   "curriculum.ratios": {"infilling": 2.0, "next_token_prediction": 2.0}})
    mixture = records[-1]["mixture"]
    assert mixture["next_token_prediction"] == pytest.approx(0.5)
    assert sum(v for k, v in mixture.items() if k.startswith("infilling")) == pytest.approx(0.5)
    with pytest.raises(ConfigError, match=r"curriculum\.ratios=\{'nonsense': 1\.0\} names nonsense, not in the mixture"):
        train(tiny_config(tmp_path / "bad", **{"curriculum.agent": "fixed", "curriculum.ratios": {"nonsense": 1}}))


@pytest.mark.slow
def test_local_text_files_and_a_bpe_tokenizer_json(tmp_path):
    from birdie.tokenizers import train_bpe

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"body": text}) + "\n" for text in _stories(400)))
    plain = tmp_path / "plain.txt"
    plain.write_text("\n\n".join(_stories(400)))
    train_bpe([plain], vocab_size=600).save(tmp_path / "tokenizer.json")
    summary, _ = _run(tmp_path / "run", **{"data.source": "files", "data.paths": [str(corpus)],
                                           "data.text_key": "body", "data.tokenizer": str(tmp_path / "tokenizer.json"),
                                           "train.steps": 2, "checkpoint.export": True})
    from birdie import load

    model, tokenizer = load(summary.export)
    assert model.config.vocab_size == tokenizer.vocab_size > 600 - 1


@pytest.mark.slow
def test_pretokenized_shards_and_a_python_callable(tmp_path):
    from birdie.data.shards import tokenize_to_shards
    from birdie.tokenizers import ByteTokenizer

    tokenize_to_shards(_stories(400), tmp_path / "shards", ByteTokenizer(), documents_per_shard=200, progress=False)
    shards, _ = _run(tmp_path / "a", **{"data.source": "shards", "data.paths": [str(tmp_path / "shards")],
                                        "train.steps": 2})
    called, _ = _run(tmp_path / "b", **{"data.source": "callable",
                                        "data.callable": "birdie.data.stories:synthetic_stories", "train.steps": 2})
    assert len(shards.losses) == len(called.losses) == 2
    with pytest.raises(ConfigError, match="data.callable='birdie.data.stories:missing' cannot be imported"):
        train(tiny_config(tmp_path / "c", **{"data.source": "callable", "data.callable": "birdie.data.stories:missing"}))


@pytest.mark.slow
def test_uptraining_from_a_pretrained_export_strict_and_not(tmp_path, capsys):
    first, _ = _run(tmp_path / "base", **{"train.steps": 1, "checkpoint.export": True})
    with pytest.raises(ValueError, match="pass --load-not-strict"):
        train(tiny_config(tmp_path / "up", **{"model.pretrained": str(first.export),
                                              "model.overrides": {"n_layers": 3}}))
    summary, _ = _run(tmp_path / "up2", **{"model.pretrained": str(first.export), "model.strict": False,
                                           "model.overrides": {"n_layers": 3}, "train.steps": 1})
    assert "missing" in capsys.readouterr().out and summary.step == 1


@pytest.mark.parametrize("backend, written", [("tensorboard", "tensorboard/events.out.tfevents.*"),
                                              ("wandb", "wandb/offline-run-*")])
def test_optional_logging_backend_logs_or_says_what_to_install(tmp_path, backend, written):
    config = tiny_config(tmp_path, **{f"logging.{backend}": True, "train.steps": 1})
    try:
        importlib.import_module(backend)
    except ImportError:
        with pytest.raises(ConfigError, match=f"pip install {backend}"):
            train(config)
    else:
        train(config)
        assert list(tmp_path.glob(written))


@pytest.mark.slow
def test_a_diverging_run_stops_with_a_clear_error_before_saving(tmp_path):
    with pytest.raises(FloatingPointError, match="lower optimizer.lr"):
        train(tiny_config(tmp_path, **{"optimizer.lr": 1e6, "optimizer.grad_clip": 0.0, "train.steps": 6,
                                       "schedule.warmup_steps": 0}))
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.slow
def test_torch_compile(tmp_path):
    summary, _ = _run(tmp_path, **{"model.compile": True, "train.steps": 2, "curriculum.agent": "ntp",
                                   "curriculum.mixture": None, "train.sequence_length": 64})
    assert all(torch.isfinite(torch.tensor(summary.losses)))


def test_weight_decay_excludes_norms_embeddings_and_biases():
    from birdie.models import create

    mask = decay_mask(create("transformer-tiny"))
    assert mask["layers.0.attention.in_proj.weight"] and mask["output.weight"]
    assert not mask["tok_embeddings.weight"] and not mask["norm.weight"]
    assert not any(decayed for name, decayed in mask.items() if name.endswith(("norm.weight", ".bias")))


def test_schedule_warms_up_then_decays_to_the_final_ratio():
    for decay in ("cosine", "linear"):
        config = ScheduleConfig(warmup_steps=4, decay=decay, final_lr_ratio=0.1)
        factors = [lr_factor(step, 20, config) for step in range(20)]
        assert factors[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
        assert all(a >= b for a, b in zip(factors[3:], factors[4:]))
        assert factors[-1] == pytest.approx(0.1)
    assert lr_factor(10, 20, ScheduleConfig(warmup_steps=0, decay="constant")) == 1.0
