"""``python -m huisclos.pipeline.server FILE``: write the OpenAPI description to FILE."""

import sys

from huisclos.pipeline.server.app import main

sys.exit(main())
