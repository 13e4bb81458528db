"""``python -m bench``: the comparison suite (see bench/compare/suite.py)."""

from bench.compare.suite import main

main()
