"""Thin wrapper: `python benchmarks/quality.py [options]` is `hf-coreset benchmark quality [options]`
(the code lives in hf_coreset/benchmark/quality.py so the installed command can run it)."""

import sys

from hf_coreset.cli import main

if __name__ == "__main__":
    sys.exit(main(["benchmark", "quality", *sys.argv[1:]]))
