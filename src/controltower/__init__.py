"""controltower: see, steer and protect what your LLMs do."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("controltower")
except PackageNotFoundError:  # a source checkout that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
