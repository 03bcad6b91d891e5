"""Evaluation and interpretation of a trained model on the test features (no Spark needed).

:mod:`~deepspark.evaluate.metrics` and :mod:`~deepspark.evaluate.attribution` are computations on
arrays; :mod:`~deepspark.evaluate.classify` and :mod:`~deepspark.evaluate.forecast` run a model
over a test split held in memory and write their tables and plots into a folder, which
:mod:`deepspark.stages.evaluate` logs to MLflow.
"""
