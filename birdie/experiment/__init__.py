"""Experiments that put birdie's parts together; ``birdie experiment replicate`` (docs/results.md).

* :mod:`birdie.experiment.plan` -- scales, arms, the equal-token budget.
* :mod:`birdie.experiment.configs` -- the training configs (the only module that knows ``TrainConfig``).
* :mod:`birdie.experiment.runner` -- arms one after another, resumable at arm granularity.
* :mod:`birdie.experiment.evaluate` -- phone-book retrieval, story infilling, validation losses of one arm.
* :mod:`birdie.experiment.aggregate`, :mod:`~birdie.experiment.report`, :mod:`~birdie.experiment.plots` -- mean ±
  spread over seeds, ``results.md``/``results.json``, the figures.
"""
