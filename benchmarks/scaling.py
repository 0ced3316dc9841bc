"""Thin wrapper: `python benchmarks/scaling.py [options]` is `hf-coreset benchmark scaling [options]`
(the code lives in hf_coreset/benchmark/scaling.py so the installed command can run it)."""

import sys

from hf_coreset.cli import main

if __name__ == "__main__":
    sys.exit(main(["benchmark", "scaling", *sys.argv[1:]]))
