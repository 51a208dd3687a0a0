"""What is kept and how: the encrypted store, the manifest, keys, the vault."""

import huisclos.config  # noqa: F401  (privacy switches before any third-party import)
