"""The Birdie paper's evaluations: multi-phone-number retrieval, story infilling and SQuAD v2.

* :mod:`birdie.eval.phonebook` -- phone-book sets, fine-tuning examples, digit-accuracy scoring.
* :mod:`birdie.eval.story_infilling` -- four-way multiple-choice items from stories, accuracy.
* :mod:`birdie.eval.squad` -- SQuAD v2 loading and the official normalised metrics plus "contains label".
* :mod:`birdie.eval.scoring` -- batched option losses and greedy generation with a birdie model.
* :mod:`birdie.eval.cache` -- generated sets as JSONL with a checksummed manifest.
* :mod:`birdie.eval.registry` -- a task is one registered :class:`~birdie.eval.registry.EvalTask` class;
  :mod:`birdie.eval.tasks` lists them, :mod:`birdie.eval.lm_eval_tasks` exposes each to lm-eval.

``birdie eval TASK --help`` shows the command line; ``docs/evals.md`` the formats and recipes.
"""
