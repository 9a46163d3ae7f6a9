"""birdie ppo end to end on tiny runs: exact resume, prompt files, clear errors."""

import json

import pytest
import torch

from birdie.cli import main
from tests.finetune.helpers import make_base

FAST = ["--no-progress", "--ppo.max_new_tokens", "3", "--ppo.rollouts_per_prompt", "2", "--prompts-per-step", "2"]


def metrics(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_resume_is_bit_exact(tmp_path):
    base = make_base(tmp_path / "base")
    common = ["--pretrained", str(base), *FAST]
    assert main(["ppo", "--out", str(tmp_path / "straight"), "--steps", "3", *common]) == 0
    assert main(["ppo", "--out", str(tmp_path / "cut"), "--steps", "2", *common]) == 0
    assert main(["ppo", "--out", str(tmp_path / "cut"), "--steps", "3", "--resume", *common]) == 0
    straight = torch.load(tmp_path / "straight/checkpoints/step_3.pt", weights_only=True)
    resumed = torch.load(tmp_path / "cut/checkpoints/step_3.pt", weights_only=True)
    for part in ("policy", "critic"):
        for key, value in straight[part].items():
            assert torch.equal(value, resumed[part][key]), (part, key)
    drop = ("time/", "tokens/rollout_per_s", "tokens/train_per_s")
    same = [{k: v for k, v in m.items() if not k.startswith(drop)} for m in metrics(tmp_path / "straight")]
    again = [{k: v for k, v in m.items() if not k.startswith(drop)} for m in metrics(tmp_path / "cut")]
    assert same == again


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
def test_torchrun_two_processes_run_and_resume(tmp_path, capsys):
    from tests.train.helpers import run_torchrun

    base = make_base(tmp_path / "base")
    out = tmp_path / "two"
    args = ["-m", "birdie", "ppo", "--pretrained", str(base), "--out", str(out), "--device", "cpu", *FAST]
    done = run_torchrun([*args, "--steps", "2"], timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    done = run_torchrun([*args, "--steps", "3", "--resume"], timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert [m["step"] for m in metrics(out)] == [1, 2, 3]  # rank 0 alone writes, one line per step
    assert main(["ppo", "--pretrained", str(base), "--out", str(out), "--steps", "4", "--resume", *FAST]) == 2
    assert "written by 2 processes; resume it with as many" in capsys.readouterr().err
