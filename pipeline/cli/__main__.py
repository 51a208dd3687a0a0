"""``python -m huisclos.pipeline.cli``: the ``huisclos`` command."""

import sys

from huisclos.pipeline.cli import main

sys.exit(main())
