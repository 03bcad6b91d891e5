"""Floor 3 (search): an Optuna study over ``pipeline.train`` keys, trials on Spark executors.

- :mod:`.space`: the YAML search space, checked against the training config, sampled, applied.
- :mod:`.study`: the driver's side: MLflow's Optuna storage, resume, one trial per Spark task.
- :mod:`.trial`: one trial inside a task: the pipeline's Trainer, reports per epoch, pruning.
- :mod:`.report`: the best config as a YAML overlay, the trials table, the plots.
"""
