"""The prompt registry: versioned templates, labels, rendering in a sandbox."""

from controltower.prompts.store import PromptStore

__all__ = ["PromptStore"]
