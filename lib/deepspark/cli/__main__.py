"""``python -m deepspark.cli``: the ``deepspark`` command without its console script."""

from deepspark.cli.command import main

if __name__ == "__main__":
    raise SystemExit(main())
