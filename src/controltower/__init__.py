"""controltower: see, steer and protect what your LLMs do."""

__version__ = "0.1.0"

__all__ = ["__version__"]
