"""birdie ppo end to end on tiny runs: exact resume, prompt files, clear errors."""

import argparse
import json
import warnings

import pytest
import torch
import torch.distributed.checkpoint as dcp

from birdie.cli import main
from birdie.checks import ConfigError
from birdie.finetune.ppo_cli import build_parser, config_from_args
from birdie.finetune.ppo_config import build_ppo_config
from birdie.train.export import read_weights
from tests.finetune.helpers import make_base, run

FAST = ["--no-progress", "--logging.plots", "false", "--ppo.max_new_tokens", "3", "--ppo.rollouts_per_prompt", "2", "--prompts-per-step", "2"]


def metrics(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def checkpoint_tensors(out, step):
    """Every tensor of the DCP checkpoint of ``step`` (policy, critic, both optimizers), read on one process."""
    path = out / "checkpoints" / f"step_{step:06d}"
    reader = dcp.FileSystemReader(str(path))
    entries = reader.read_metadata().state_dict_metadata
    tensors = {key: torch.empty(meta.size, dtype=meta.properties.dtype) for key, meta in entries.items()
               if hasattr(meta, "size") and hasattr(meta.properties, "dtype")}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        dcp.load(tensors, storage_reader=reader, no_dist=True)
    return tensors


def test_resume_is_bit_exact(tmp_path):
    base = make_base(tmp_path / "base")
    common = ["--pretrained", str(base), *FAST]
    assert main(["ppo", "--out", str(tmp_path / "straight"), "--steps", "3", *common]) == 0
    assert main(["ppo", "--out", str(tmp_path / "cut"), "--steps", "2", *common]) == 0
    assert main(["ppo", "--out", str(tmp_path / "cut"), "--steps", "3", "--resume", *common]) == 0
    straight, resumed = checkpoint_tensors(tmp_path / "straight", 3), checkpoint_tensors(tmp_path / "cut", 3)
    assert {key.split(".")[0] for key in straight} >= {"model", "optim", "critic", "critic_optim"}
    assert straight.keys() == resumed.keys()
    for key, value in straight.items():
        assert torch.equal(value, resumed[key]), key
    drop = ("time/", "tokens/rollout_per_s", "tokens/train_per_s")
    same = [{k: v for k, v in m.items() if not k.startswith(drop)} for m in metrics(tmp_path / "straight")]
    again = [{k: v for k, v in m.items() if not k.startswith(drop)} for m in metrics(tmp_path / "cut")]
    assert same == again


def test_a_run_plots_reward_kl_entropy_and_losses_unless_told_not_to(tmp_path):
    base = make_base(tmp_path / "base")
    plotted = [*FAST[:1], *FAST[3:]]
    assert main(["ppo", "--pretrained", str(base), "--out", str(tmp_path / "plotted"), "--steps", "2", *plotted]) == 0
    assert (tmp_path / "plotted" / "plots" / "ppo.png").read_bytes().startswith(b"\x89PNG")
    assert main(["ppo", "--pretrained", str(base), "--out", str(tmp_path / "quiet"), "--steps", "1", *FAST]) == 0
    assert not (tmp_path / "quiet" / "plots").exists()


@pytest.mark.parametrize("victim", ["shared.pt", "rank_0.pt", "__0_0.distcp"])
def test_a_flipped_byte_in_a_checkpoint_is_refused_by_name(tmp_path, capsys, victim):
    base = make_base(tmp_path / "base")
    common = ["--pretrained", str(base), "--out", str(tmp_path / "run"), *FAST]
    assert main(["ppo", "--steps", "1", *common]) == 0
    target = tmp_path / "run" / "checkpoints" / "step_000001" / victim
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    assert main(["ppo", "--steps", "2", "--resume", *common]) == 2
    err = capsys.readouterr().err
    assert f"{target} is corrupt" in err, err
    assert len(metrics(tmp_path / "run")) == 1  # nothing ran


def test_the_config_is_read_like_birdie_train(tmp_path, capsys):
    config = tmp_path / "ppo.yaml"
    config.write_text("ppo:\n  algorithm: grpo\n  kl_coef: 0.1\ntrain:\n  steps: 7\n")
    parser = argparse.ArgumentParser()
    build_parser(parser)
    built = config_from_args(parser.parse_args(["--config", str(config), "--ppo.kl_coef", "0.2", "--no-progress"]))
    assert (built.ppo.algorithm, built.ppo.kl_coef, built.train.steps) == ("grpo", 0.2, 7)
    assert built.logging.progress is False
    assert main(["ppo", "--ppo.kl_estimator", "k2", "--out", str(tmp_path / "run")]) == 2
    assert "ppo.kl_estimator" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="unknown config section 'ppx'"):
        build_ppo_config({"ppx": {"lr": 1.0}})
    with pytest.raises(ConfigError, match="reward.model"):
        build_ppo_config({"reward": {"model": "rm", "callable": "m:f"}})


def test_prompt_file_with_a_reward_callable(tmp_path, capsys):
    base = make_base(tmp_path / "base")
    data = tmp_path / "prompts.jsonl"
    data.write_text(json.dumps({"prompt": "Say a"}) + "\n" + json.dumps(
        {"messages": [{"role": "user", "content": "Say b"}, {"role": "assistant", "content": "b"}]}) + "\n")
    args = ["ppo", "--pretrained", str(base), "--data", str(data), "--out", str(tmp_path / "run"), "--steps", "1",
            *FAST, "--ppo.algorithm", "rloo"]
    assert main([*args, "--reward.callable", "operator:missing"]) == 2
    assert "cannot be imported" in capsys.readouterr().err
    assert main([*args, "--reward.callable", "tests.finetune.test_ppo:count_a"]) == 0
    assert (tmp_path / "run/export/model.safetensors").is_file()
    assert len(metrics(tmp_path / "run")) == 1


@pytest.mark.parametrize("rows, message", [
    ([{"prompt": "   "}], "line 1: the prompt is empty"),
    ([{"question": "x"}], "needs 'messages'"),
    ([{"prompt": "x" * 5000}], "exceeds the model's context"),
])
def test_bad_prompt_files_are_named(tmp_path, capsys, rows, message):
    base = make_base(tmp_path / "base")
    data = tmp_path / "prompts.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert main(["ppo", "--pretrained", str(base), "--data", str(data), "--out", str(tmp_path / "run"),
                 "--reward.callable", "tests.finetune.test_ppo:count_a", *FAST]) == 2
    assert message in capsys.readouterr().err


def test_custom_prompts_need_a_reward(tmp_path, capsys):
    assert main(["ppo", "--data", str(tmp_path / "p.jsonl"), "--out", str(tmp_path / "run"), *FAST]) == 2
    assert "need a reward" in capsys.readouterr().err


@pytest.mark.multiprocess
@pytest.mark.slow
@pytest.mark.parametrize("mesh", ["-1,1,1", "1,-1,1"])  # replicated models, FSDP2
def test_torchrun_two_processes_run_and_resume(tmp_path, capsys, mesh):
    from tests.train.helpers import run_torchrun

    base = make_base(tmp_path / "base")
    out = tmp_path / "two"
    args = ["-m", "birdie", "ppo", "--pretrained", str(base), "--out", str(out), "--device", "cpu",
            f"--distributed.mesh={mesh}", *FAST]
    done = run_torchrun([*args, "--steps", "2"], timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    done = run_torchrun([*args, "--steps", "3", "--resume"], timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert [m["step"] for m in metrics(out)] == [1, 2, 3]  # rank 0 alone writes, one line per step
    assert main(["ppo", "--pretrained", str(base), "--out", str(out), "--steps", "4", "--resume", *FAST]) == 2
    assert "written by 2 processes; resume it with as many" in capsys.readouterr().err


def test_a_reward_model_scores_and_initialises_the_critic(tmp_path):
    base = make_base(tmp_path / "base")
    run("rm", base, tmp_path / "rm", "--steps", "1")
    out = tmp_path / "run"
    assert main(["ppo", "--pretrained", str(base), "--reward-model", str(tmp_path / "rm/export"), "--out", str(out),
                 "--steps", "1", "--ppo.critic_lr", "1e-12", *FAST]) == 0
    critic_head = checkpoint_tensors(out, 1)["critic.head.weight"]
    rm_head = read_weights(tmp_path / "rm/export")["score_head.weight"]
    assert critic_head.shape == rm_head.shape and (critic_head - rm_head).abs().max() < 1e-6  # the RM's head
    assert metrics(out)[0]["objective/scores_std"] > 0  # the reward model tells the rollouts apart
    trained = tmp_path / "trained"  # the critic trains although the reward model it was copied from is frozen
    assert main(["ppo", "--pretrained", str(base), "--reward-model", str(tmp_path / "rm/export"), "--out",
                 str(trained), "--steps", "1", *FAST]) == 0
    assert (checkpoint_tensors(trained, 1)["critic.head.weight"] - rm_head).abs().max() > 1e-4


def test_a_language_model_is_refused_as_the_reward_model(tmp_path, capsys):
    base = make_base(tmp_path / "base")
    assert main(["ppo", "--pretrained", str(base), "--reward-model", str(base), "--out", str(tmp_path / "run"),
                 *FAST]) == 2
    assert "not a reward model" in capsys.readouterr().err
