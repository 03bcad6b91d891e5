"""Floor 3 (training): Petastorm batches -> DDP, under TorchDistributor, torchrun or one process.

- :mod:`.job`: checks the features against the model before any process starts, and packs
  everything a worker needs into a picklable :class:`~.job.TrainJob`.
- :mod:`.worker`: :func:`~.worker.train_worker`, the one top-level training function.
- :mod:`.loop`: an epoch of training, a sharded evaluation.
- :mod:`.launch`: the three ways to start it; :mod:`.resources` checks TLS and GPU settings
  first, and :mod:`.shipped` carries the function to executors that lack deepspark.
- :mod:`.report` and :mod:`.publish`: rank 0's MLflow run, test metrics, model and registry gate.
"""
