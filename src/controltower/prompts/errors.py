"""Errors of the prompt registry, in the OpenAI error format like every APIError."""

from __future__ import annotations

from controltower.errors import APIError, InvalidRequest


class ProtectedLabel(APIError):
    """A protected label was asked to move (or lose its protection) without `force`."""

    status = 409
    type = "invalid_request_error"
    code = "label_protected"


class PromptRenderError(InvalidRequest):
    """A template could not be rendered: a bad variable, a template error, a sandbox refusal."""

    code = "prompt_render_error"
