"""Errors that cross layers, each knowing its OpenAI-format status and body."""

from __future__ import annotations

import email.utils
import time
from typing import Any

import orjson


class ControlTowerError(Exception):
    """Base of every error controltower raises on purpose."""


class ConfigError(ControlTowerError):
    """An invalid configuration: each problem names the file, the field and the fix."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class APIError(ControlTowerError):
    """An error answered to a client in the OpenAI error format."""

    status = 500
    type = "api_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.retry_after = retry_after

    def body(self) -> bytes:
        """The JSON error body the official OpenAI clients parse."""
        error: dict[str, Any] = {
            "message": self.message,
            "type": self.type,
            "param": self.param,
            "code": self.code,
        }
        return orjson.dumps({"error": error})

    def headers(self) -> list[tuple[bytes, bytes]]:
        """Extra response headers (Retry-After on 429 and 503)."""
        if self.retry_after is None:
            return []
        return [(b"retry-after", str(max(1, round(self.retry_after))).encode())]


class InvalidRequest(APIError):
    status = 400
    type = "invalid_request_error"


class Unauthorized(APIError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class NotFound(APIError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class Forbidden(APIError):
    """A write from a page of another origin (CSRF)."""

    status = 403
    type = "invalid_request_error"
    code = "cross_origin_request"


class PermissionDenied(APIError):
    """An API key whose role, project or model list does not allow the request."""

    status = 403
    type = "permission_error"
    code = "permission_denied"


class ModelNotAllowed(PermissionDenied):
    code = "model_not_allowed"


class MisdirectedRequest(APIError):
    """A Host header the server does not answer as (DNS rebinding)."""

    status = 421
    type = "invalid_request_error"
    code = "invalid_host"


class ModelNotFound(NotFound):
    code = "model_not_found"


class RequestTooLarge(APIError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class RateLimited(APIError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"
    # a gateway rate limit's x-ratelimit-* headers, sent with the 429
    headers_for_limits: list[tuple[bytes, bytes]] = []


class BudgetExceeded(APIError):
    """A call that would take a budget past its limit; the body says which and until when."""

    status = 429
    type = "insufficient_quota"
    code = "budget_exceeded"

    def __init__(self, message: str, *, budget: dict[str, Any], retry_after: float | None) -> None:
        super().__init__(message, retry_after=retry_after)
        self.budget = budget

    def body(self) -> bytes:
        """The OpenAI error body, with the budget (name, scope, value, limit, used, resets_at)."""
        data = orjson.loads(super().body())
        data["error"]["budget"] = self.budget
        return orjson.dumps(data)


class BudgetsUnavailable(APIError):
    """The shared budget counters cannot be reached, and a budget fails closed."""

    status = 503
    type = "api_error"
    code = "budgets_unavailable"


class UpstreamError(APIError):
    """The provider failed (5xx, bad gateway, malformed answer, connection error)."""

    status = 502
    type = "api_error"
    code = "upstream_error"


class UpstreamTimeout(UpstreamError):
    status = 504
    type = "timeout"
    code = "upstream_timeout"


class ContextWindowExceeded(InvalidRequest):
    code = "context_length_exceeded"


class ContentPolicy(InvalidRequest):
    code = "content_policy_violation"


class UpstreamBadRequest(InvalidRequest):
    """The provider refused the request as invalid; passed back with its own status."""

    def __init__(self, message: str, *, status: int = 400, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.status = status


def is_retryable(error: Exception) -> bool:
    """Whether the same model may succeed on another try (rate limits, 5xx, timeouts)."""
    return isinstance(error, RateLimited | UpstreamError)


def wants_fallback(error: Exception) -> bool:
    """Whether another model alias should be tried after this error."""
    return isinstance(error, RateLimited | UpstreamError | ContextWindowExceeded | ContentPolicy)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date), if any."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class StoreUnavailable(APIError):
    """The store cannot be reached, or is busy, for now: the request or the data is not at
    fault, so try again later (the trace writer retries, the read API answers 503)."""

    status = 503
    type = "api_error"
    code = "store_unavailable"

    def __init__(self, message: str, *, retry_after: float | None = 1.0) -> None:
        super().__init__(message, retry_after=retry_after)


class UnsupportedMediaType(APIError):
    status = 415
    type = "invalid_request_error"
    code = "unsupported_media_type"


class QueueFull(APIError):
    """The trace queue has no room: nothing of the request was taken; retry later."""

    status = 503
    type = "api_error"
    code = "queue_full"
