"""`birdie demo` end to end on a few steps: it trains, samples, plots and says where everything went."""

import pytest

from birdie.cli import main


@pytest.mark.slow
def test_demo_runs_and_reports_its_outputs(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--steps", "3", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "hawk-tiny on synthetic stories, birdie curriculum, 3 steps" in text
    assert "step     0 mixture: next_token_prediction 0.14" in text  # uniform before the agent's first decision
    assert text.count("  > ") == 3  # three sampled continuations
    for name in ("metrics.jsonl", "decisions.jsonl", "plots/losses.png", "plots/mixture.png", "export/model.safetensors",
                 "checkpoints/step_000003/meta.json", "config.yaml"):
        assert (out / name).is_file(), name
        assert str(out / name.split("/")[0]) in text


def test_demo_reports_a_bad_option_without_a_traceback(tmp_path, capsys):
    # The unknown preset is only found when the trainer builds the model, after the config itself validated.
    assert main(["demo", "--out", str(tmp_path / "demo"), "--steps", "1", "--model", "nope", "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("birdie demo: model.preset='nope'") and "known presets:" in error
