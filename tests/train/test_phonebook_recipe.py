"""`configs/phonebook_finetune.yaml` trains: supervised pairs, loss on the answers only."""

import json
from pathlib import Path

from birdie.cli import main

RECIPE = Path(__file__).resolve().parents[2] / "configs" / "phonebook_finetune.yaml"


def test_the_phone_book_recipe_trains_on_answers_only(tmp_path):
    out = tmp_path / "phonebook"
    assert main(["train", "--config", str(RECIPE), "--model.pretrained", "none", "--model.preset", "transformer-tiny",
                 "--train.steps", "2", "--train.batch_size", "2", "--train.out", str(out), "--logging.progress",
                 "false", "--logging.plots", "false", "--logging.log_every", "1", "--checkpoint.export", "false",
                 "--curriculum.num_validation_batches", "1", "--curriculum.validation_batch_size", "1"]) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r][-1] == 2
    for record in records:
        assert record["mixture"] == {"supervised": 1.0}
        # 2 rows of 1024 positions hold a few books; only their answers (about 13 tokens per number) carry loss
        assert 0 < record["target_tokens"] < 0.2 * 2 * 1024
