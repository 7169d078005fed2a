"""Benchmarks of kdzoo's searchers, beside the search core: the tabular benchmark
(:mod:`kdzoo.benchmarks.tabular`) replays searchers against tables of trained distillers
(``kdzoo/benchmarks/data``) through the entry point of ``tools/search.py``."""
