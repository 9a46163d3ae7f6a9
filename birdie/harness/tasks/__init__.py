"""birdie's offline lm-eval task pack: harness YAML over small JSONL files, no hub access.

Tasks: ``birdie_mc`` (multiple choice), ``birdie_ll`` (loglikelihood, lambada-style), ``birdie_ppl`` (rolling
perplexity), ``birdie_gen`` (generation until a stop string); group ``birdie_smoke`` runs all four.
"""

from pathlib import Path

#: pass this to lm-eval's ``--include_path`` (``birdie-lm-eval`` adds it when you give none)
TASKS_DIR = str(Path(__file__).resolve().parent)
