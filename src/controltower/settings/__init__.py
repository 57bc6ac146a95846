"""Configuration: the validated settings model and the YAML loader that builds it."""

from controltower.settings.loader import load_settings, parse_settings
from controltower.settings.model import (
    Deployment,
    MockOptions,
    MockToolCall,
    ModelAlias,
    PriceOverride,
    Retention,
    Settings,
    demo_settings,
)

__all__ = [
    "Deployment",
    "MockOptions",
    "MockToolCall",
    "ModelAlias",
    "PriceOverride",
    "Retention",
    "Settings",
    "demo_settings",
    "load_settings",
    "parse_settings",
]
