"""The package's version: one place that the SDK, the API and the build read."""

from __future__ import annotations

__version__ = "0.1.0"
