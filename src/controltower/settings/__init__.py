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
    with_demo_model,
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
    "with_demo_model",
]
