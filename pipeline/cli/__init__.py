"""The ``huisclos`` command line: a thin layer over :class:`huisclos.pipeline.Huisclos`.

:func:`main` parses the arguments and calls the handler the subcommand's parser
carries (:mod:`.command` says what a handler is). The subcommands live by area:
:mod:`.indexing` (index, watch, status, repair), :mod:`.answering` (search,
ask), :mod:`.serve`, :mod:`.models` (models list, models fetch),
:mod:`.privacy` (forget, include, keys, audit, register, retention) and
:mod:`.eval` (eval retrieval, eval answers). :func:`build_parser` is public:
the CLI reference is generated from it.
"""

from huisclos.pipeline.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
