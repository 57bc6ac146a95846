"""The prompt registry: versioned templates, labels, rendering in a sandbox."""

from controltower.prompts.content import (
    VersionDiff,
    check_label_name,
    check_prompt_name,
    check_split,
    content_from_dict,
    content_hash,
    content_to_dict,
    diff_versions,
)
from controltower.prompts.errors import PromptRenderError, ProtectedLabel
from controltower.prompts.files import PromptFile, dump_prompt, parse_prompt, read_prompt_file
from controltower.prompts.memory import InMemoryPromptStore
from controltower.prompts.render import PromptRenderer, RenderedPrompt, render
from controltower.prompts.store import PromptStore
from controltower.prompts.sync import Pulled, Pushed, pull_dir, push_dir

__all__ = [
    "InMemoryPromptStore",
    "PromptFile",
    "PromptRenderError",
    "PromptRenderer",
    "PromptStore",
    "ProtectedLabel",
    "Pulled",
    "Pushed",
    "RenderedPrompt",
    "VersionDiff",
    "check_label_name",
    "check_prompt_name",
    "check_split",
    "content_from_dict",
    "content_hash",
    "content_to_dict",
    "diff_versions",
    "dump_prompt",
    "parse_prompt",
    "pull_dir",
    "push_dir",
    "read_prompt_file",
    "render",
]
