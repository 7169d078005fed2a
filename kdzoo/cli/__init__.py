"""kdzoo's command-line programs, runnable from an installed package:
``kdzoo-train`` / ``python -m kdzoo.cli.train``, ``kdzoo-test`` / ``python -m
kdzoo.cli.test`` and ``kdzoo-search`` / ``python -m kdzoo.cli.search``. The scripts under
``tools/`` of a source checkout call the same ``main`` functions."""
