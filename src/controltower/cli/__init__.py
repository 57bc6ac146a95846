"""The `controltower` command line: thin shells over the library."""

from controltower.cli.main import main

__all__ = ["main"]
