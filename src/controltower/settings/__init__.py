"""Configuration: the validated settings model and the YAML loader that builds it."""

from controltower.settings.loader import (
    ConfigReport,
    check_config,
    check_settings,
    load_settings,
    mask_url,
    parse_settings,
)
from controltower.settings.model import (
    DATABASE_URL_ENV,
    DEFAULT_DATABASE_URL,
    MASTER_KEY_ENV,
    PORT_ENV,
    Budget,
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
    "DATABASE_URL_ENV",
    "DEFAULT_DATABASE_URL",
    "MASTER_KEY_ENV",
    "PORT_ENV",
    "Budget",
    "ConfigReport",
    "Deployment",
    "MockOptions",
    "MockToolCall",
    "ModelAlias",
    "PriceOverride",
    "Retention",
    "Settings",
    "check_config",
    "check_settings",
    "demo_settings",
    "load_settings",
    "mask_url",
    "parse_settings",
    "with_demo_model",
]
