"""The ``huisclos`` command line: a thin layer over :class:`huisclos.pipeline.Huisclos`.

``main`` parses the arguments and dispatches each subcommand to its handler;
the subcommands live by area: :mod:`.main` (index, watch, search, ask, serve,
status, models, repair), :mod:`.privacy` (forget, include, keys, audit,
register, retention) and :mod:`.eval` (eval retrieval, eval answers).
"""

from huisclos.pipeline.cli.main import main

__all__ = ["main"]
