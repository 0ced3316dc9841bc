"""Thin wrapper: `python benchmarks/cost.py [options]` is `hf-coreset benchmark cost [options]`
(the code lives in hf_coreset/benchmark/cost.py so the installed command can run it)."""

import sys

from hf_coreset.cli import main

if __name__ == "__main__":
    sys.exit(main(["benchmark", "cost", *sys.argv[1:]]))
