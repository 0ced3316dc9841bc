"""`python -m benchmarks quality|cost|scaling [options]`, from the repository root."""

import sys

from .cli import main

sys.exit(main())
