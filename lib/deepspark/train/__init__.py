"""Floor 3 (training): Petastorm batches -> DDP, under TorchDistributor, torchrun or one process.

- :mod:`.job`: checks the features' :class:`~deepspark.manifest.FeatureManifest` against the
  model before any process starts, resolves every "auto" setting once, and packs everything a
  worker needs (the whole config included) into a picklable :class:`~.job.TrainJob`.
- :mod:`.worker`: :func:`~.worker.train_worker`, the one top-level training function, over
  :mod:`.trainer`'s :class:`~.trainer.Trainer` (setup -> epoch -> snapshot -> finish).
- :mod:`.state`: :class:`~.state.TrainState`, the checkpoint's plain half and what reached MLflow.
- :mod:`.loop`: an epoch of training, a sharded evaluation.
- :mod:`.launch`: the three ways to start it; :mod:`.resources` checks TLS and GPU settings
  first, and :mod:`.shipped` carries the function to executors that lack deepspark.
- :mod:`.report` and :mod:`.publish`: rank 0's MLflow run, test metrics, model and registry gate.
"""
