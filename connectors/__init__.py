"""Where documents come from: scanning roots and turning files into text."""

import huisclos.config  # noqa: F401  (privacy switches before any third-party import)
