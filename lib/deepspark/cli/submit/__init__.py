"""``deepspark submit``: a stage under spark-submit, set up from the config.

- :mod:`~deepspark.cli.submit.command`: the command line (``deepspark submit``);
- :mod:`~deepspark.cli.submit.options`: the spark-submit options the resolved config implies;
- :mod:`~deepspark.cli.submit.resource`: the script spark-submit runs, alone in its folder.
"""
