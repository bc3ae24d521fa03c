"""``python -m fapm_jax.cli``: the ``fapm`` command."""

import sys

from .parser import main

sys.exit(main())
