"""The settings model. Built once by the CLI or the app factory and passed down."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

DEFAULT_DATABASE_URL = "sqlite:///controltower.db"  # where traces go when nothing is configured
DATABASE_URL_ENV = "CONTROLTOWER_DATABASE_URL"  # overrides database_url
MASTER_KEY_ENV = "CONTROLTOWER_MASTER_KEY"  # overrides master_key (when not empty)
PORT_ENV = "CONTROLTOWER_PORT"  # the port `controltower serve` listens on, when no --port
Strategy = Literal["weighted", "least-latency", "least-busy"]


def _status_as_text(value: Any) -> Any:
    # YAML reads `failure: 503` as a number; the docs write it that way
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


MockFailure = Annotated[
    Literal[
        "none",
        "500",
        "503",
        "429",
        "timeout",
        "malformed",
        "cut",
        "context_window",
        "content_policy",
    ],
    BeforeValidator(_status_as_text),
]


class FieldProblem(ValueError):
    """A cross-field mistake, with the location of the field it is about and a fix."""

    def __init__(self, loc: tuple[str | int, ...], message: str, fix: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.fix = fix


class FieldProblems(ValueError):
    """Several cross-field mistakes, found in one pass."""

    def __init__(self, problems: Sequence[FieldProblem]) -> None:
        super().__init__("; ".join(f"{p}: {p.fix}" for p in problems))
        self.problems = list(problems)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PriceOverride(_Strict):
    """Prices in USD per million tokens; they replace the price table for a deployment."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached_input: float | None = Field(default=None, ge=0)


class MockToolCall(_Strict):
    """A scripted reply of the mock provider that calls a tool instead of answering."""

    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class MockRule(_Strict):
    """A reply the mock gives when its request's messages match a regular expression."""

    match: str = Field(min_length=1)  # searched in the text of all messages, joined by newlines
    reply: str | MockToolCall

    @field_validator("match")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression ({exc})") from None
        return value


class MockOptions(_Strict):
    """Behaviour of the built-in mock provider: replies, latency and injected failures."""

    reply: str = "echo"  # "echo" repeats the last user message; anything else is sent as is
    # the first rule whose `match` is found in the messages answers (demos, judges)
    rules: list[MockRule] = Field(default_factory=list)
    replies: list[str | MockToolCall] = Field(default_factory=list)  # scripted, used in turn
    ttft_ms: float = Field(default=0.0, ge=0)
    token_ms: float = Field(default=0.0, ge=0)
    failure: MockFailure = "none"
    failure_rate: float = Field(default=1.0, ge=0, le=1)
    failure_times: int | None = Field(default=None, ge=0)  # only the first N calls fail
    retry_after_s: float = Field(default=1.0, ge=0)
    cut_after: int = Field(default=2, ge=0)  # events sent before a "cut" stream breaks
    embedding_dims: int = Field(default=8, ge=1, le=4096)


class Deployment(_Strict):
    """One concrete model at one provider that serves an alias."""

    provider: str
    model: str
    name: str | None = None
    api_base: str | None = None
    api_key: SecretStr | None = None
    api_version: str | None = None  # set for Azure OpenAI
    headers: dict[str, str] = Field(default_factory=dict)
    weight: float = Field(default=1.0, gt=0)
    timeout_s: float | None = Field(default=None, gt=0)
    price: PriceOverride | None = None
    # the most tokens one answer may hold: what a budget reserves for a call that does
    # not set max_tokens (unset: 4,096)
    max_output_tokens: int | None = Field(default=None, gt=0)
    mock: MockOptions | None = None

    @property
    def label(self) -> str:
        """The name traces and metrics use for this deployment."""
        return self.name or f"{self.provider}/{self.model}"


class AliasCache(_Strict):
    """The exact cache of one alias: an answer given once is given again, for $0."""

    ttl_s: float = Field(default=3600.0, gt=0, le=31_536_000)  # how long answers are kept


class CacheSettings(_Strict):
    """Where cached answers live: in each process (the most recently used `max_entries`)
    or in Redis at `redis_url`, shared by every replica."""

    backend: Literal["memory", "redis"] = "memory"
    max_entries: int = Field(default=10_000, gt=0)


class ModelAlias(_Strict):
    """What clients send as `model`: deployments to balance and aliases to fall back to."""

    name: str = Field(min_length=1)
    deployments: list[Deployment] = Field(min_length=1)
    fallbacks: list[str] = Field(default_factory=list)
    strategy: Strategy = "weighted"
    timeout_s: float = Field(default=60.0, gt=0)
    retries: int = Field(default=2, ge=0, le=10)
    cooldown_s: float = Field(default=30.0, ge=0)
    failure_threshold: int = Field(default=3, ge=1)
    cache: AliasCache | None = None  # unset: never cached


class Retention(_Strict):
    """How long traces are kept: days for every project, and per-project overrides."""

    days: int | None = Field(default=None, gt=0)
    projects: dict[str, Annotated[int, Field(gt=0)]] = Field(default_factory=dict)
    interval_s: float = Field(default=3600.0, gt=0)


BudgetScope = Literal["project", "key", "user", "model", "tag"]
BudgetWindow = Literal["total", "hour", "day", "week", "month"]


class Budget(_Strict):
    """A cap on spend (USD) and/or tokens, for one scope's value or each of its values,
    over all time or a rolling window. Calls reserve their most cost before they run."""

    name: str | None = Field(default=None, min_length=1, max_length=100)
    scope: BudgetScope
    match: str = Field(default="*", min_length=1)  # the scope's value; `*`: each apart
    usd: float | None = Field(default=None, gt=0)
    tokens: int | None = Field(default=None, gt=0)
    window: BudgetWindow = "total"
    # when the shared counters (Redis) cannot be reached: refuse calls, or let them in
    redis_down: Literal["closed", "open"] = "closed"

    @model_validator(mode="after")
    def _has_a_limit(self) -> Budget:
        if self.usd is None and self.tokens is None:
            raise FieldProblem((), "a budget needs a limit", "set `usd: 10` or `tokens: 1000000`")
        return self

    @property
    def label(self) -> str:
        """How errors and reports name the budget."""
        if self.name:
            return self.name
        return f"{self.scope}:{self.match}" + ("" if self.window == "total" else f"/{self.window}")


class RateLimit(_Strict):
    """Requests and tokens per minute and per day, for one scope's value or each of its
    values. Tokens are charged from the request's estimate and corrected after the call."""

    name: str | None = Field(default=None, min_length=1, max_length=100)
    scope: Literal["project", "key", "user", "model"]
    match: str = Field(default="*", min_length=1)
    rpm: int | None = Field(default=None, gt=0)
    tpm: int | None = Field(default=None, gt=0)
    rpd: int | None = Field(default=None, gt=0)
    tpd: int | None = Field(default=None, gt=0)
    redis_down: Literal["closed", "open"] = "open"

    @model_validator(mode="after")
    def _has_a_limit(self) -> RateLimit:
        if all(v is None for v in (self.rpm, self.tpm, self.rpd, self.tpd)):
            raise FieldProblem(
                (), "a rate limit needs a limit", "set one of `rpm`, `tpm`, `rpd`, `tpd`"
            )
        return self

    @property
    def label(self) -> str:
        """How errors and headers name the limit."""
        return self.name or f"rate:{self.scope}:{self.match}"


class Settings(_Strict):
    """Everything the gateway needs to start."""

    models: list[ModelAlias] = Field(default_factory=list)
    database_url: str | None = None
    master_key: SecretStr | None = None
    # Host names the server answers besides the address it is reached at and loopback
    # names (any other Host gets 421, against DNS rebinding): `name`, `name:port`,
    # `.example.com` (a domain and its subdomains) or `*`; pages served from a listed
    # name may also write (POST, PUT, DELETE) from the browser.
    allowed_hosts: list[str] = Field(default_factory=list)
    # behind a reverse proxy: trust X-Forwarded-Proto and X-Forwarded-For from these
    # addresses (the scheme makes the login cookie Secure, the address is what throttles)
    proxy_headers: bool = False
    trusted_proxies: list[str] = Field(default_factory=lambda: ["127.0.0.1", "::1"])
    max_request_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    trace_queue_size: int = Field(default=10_000, gt=0)
    trace_batch_size: int = Field(default=256, gt=0)
    trace_flush_interval_s: float = Field(default=0.5, gt=0)
    prompt_refresh_s: float = Field(default=1.0, gt=0)
    backoff_base_s: float = Field(default=0.25, ge=0)
    backoff_max_s: float = Field(default=8.0, ge=0)
    max_retry_after_s: float = Field(default=30.0, ge=0)
    retention: Retention = Field(default_factory=lambda: Retention())
    budgets: list[Budget] = Field(default_factory=list)
    rate_limits: list[RateLimit] = Field(default_factory=list)
    # shared counters for budgets across replicas (unset: each process counts alone)
    redis_url: str | None = None
    cache: CacheSettings = Field(default_factory=lambda: CacheSettings())

    @field_validator("master_key")
    @classmethod
    def _empty_key_is_no_key(cls, value: SecretStr | None) -> SecretStr | None:
        # `master_key: ""` or `${VAR:-}` must not pass for a key that guards the gateway
        if value is not None and not value.get_secret_value().strip():
            return None
        return value

    @model_validator(mode="after")
    def _check_references(self) -> Settings:
        names = [alias.name for alias in self.models]
        problems = reference_problems(names, [alias.fallbacks for alias in self.models])
        groups: tuple[tuple[str, Sequence[Budget | RateLimit]], ...] = (
            ("budgets", self.budgets),
            ("rate_limits", self.rate_limits),
        )
        for field, rules in groups:
            seen: dict[str, int] = {}
            for index, rule in enumerate(rules):
                if rule.label in seen:
                    problems.append(
                        FieldProblem(
                            (field, index),
                            f"{rule.label!r} is the same as {field}[{seen[rule.label]}]",
                            "give one of them another `name`, or merge them",
                        )
                    )
                seen.setdefault(rule.label, index)
        if self.cache.backend == "redis" and not self.redis_url:
            problems.append(
                FieldProblem(
                    ("cache", "backend"),
                    "the redis cache needs a Redis server",
                    "set `redis_url: redis://127.0.0.1:6379/0`, or `backend: memory`",
                )
            )
        if problems:
            raise FieldProblems(problems)
        return self

    def alias(self, name: str) -> ModelAlias | None:
        """The alias called `name`, if declared."""
        for m in self.models:
            if m.name == name:
                return m
        return None


def reference_problems(
    names: Sequence[object], fallbacks: Sequence[Sequence[object]]
) -> list[FieldProblem]:
    """Duplicate model names, and fallbacks to the model itself or to an undeclared one.

    Takes plain values so that the loader can check a file whose other fields are invalid.
    """
    problems: list[FieldProblem] = []
    seen: list[str] = []
    for i, name in enumerate(names):
        if isinstance(name, str) and name in seen:
            fix = "give each model a name of its own"
            problems.append(
                FieldProblem(("models", i, "name"), f"duplicate model name {name!r}", fix)
            )
        elif isinstance(name, str):
            seen.append(name)
    for i, (name, targets) in enumerate(zip(names, fallbacks, strict=True)):
        for j, target in enumerate(targets):
            problem = _fallback_problem(name, target, seen)
            if problem is not None:
                problems.append(FieldProblem(("models", i, "fallbacks", j), *problem))
    return problems


def _fallback_problem(name: object, target: object, seen: list[str]) -> tuple[str, str] | None:
    if not isinstance(target, str):
        return None
    if target == name:
        return f"{target!r} falls back to itself", "name another model, or remove this fallback"
    if target in seen:
        return None
    fix = f"declare it under models, or use one of {sorted(seen)}"
    close = difflib.get_close_matches(target, seen, n=1)
    return f"unknown model {target!r}", (f"did you mean `{close[0]}`? " if close else "") + fix


def demo_settings(database_url: str | None = None) -> Settings:
    """Settings with one mock model, so the quick start works offline."""
    demo = ModelAlias(
        name="demo",
        deployments=[
            Deployment(
                provider="mock",
                model="demo",
                price=PriceOverride(input=0.0, output=0.0),
                mock=MockOptions(ttft_ms=0, token_ms=0),
            )
        ],
    )
    return Settings(models=[demo], database_url=database_url)


def with_demo_model(settings: Settings) -> Settings:
    """The settings, with the demo mock model when they declare no model at all."""
    if settings.models:
        return settings
    return settings.model_copy(update={"models": demo_settings().models})
