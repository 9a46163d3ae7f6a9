"""Training: the config, the loop, checkpoints, distributed wrapping, export and the demo.

``birdie train`` (:mod:`birdie.train.cli`) runs :func:`birdie.train.trainer.train`; see ``docs/training.md``.
"""
