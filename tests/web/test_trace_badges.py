"""The trace page says at a glance when a call retried or fell back, and a failed trace
shows its error at the top."""

from __future__ import annotations

import re

import httpx
import openai
import pytest

from tests.conftest import config, running_gateway
from tests.server.test_resilience import FALLBACK, MESSAGES

FAILING = """
models:
  - name: broken
    retries: 0
    deployments:
      - provider: mock
        model: m
        mock: {failure: '500'}
"""


def page_text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_a_fallback_and_its_attempts_are_badges_at_the_top() -> None:
    with running_gateway(config(FALLBACK)) as gw:
        raw = gw.client().chat.completions.with_raw_response.create(
            model="primary", messages=MESSAGES
        )
        trace_id = raw.headers["x-controltower-trace-id"]
        gw.trace(trace_id)
        html = httpx.get(f"{gw.url}/traces/{trace_id}").text
    head = html[html.index('class="trace-head"') : html.index('class="stats"')]
    assert "fell back to backup" in head
    assert "3 attempts" in head and "2 of 3 attempts failed" in head
    assert 'role="alert"' not in head  # it answered in the end


def test_a_failed_trace_shows_its_error_first() -> None:
    with running_gateway(config(FAILING)) as gw:
        with pytest.raises(openai.InternalServerError) as info:
            gw.client().chat.completions.create(model="broken", messages=MESSAGES)
        trace_id = info.value.response.headers["x-controltower-trace-id"]
        gw.trace(trace_id)
        html = httpx.get(f"{gw.url}/traces/{trace_id}").text
    alert = html.index('role="alert"')
    assert alert < html.index('class="stats"')
    assert "failed:" in page_text(html[alert : alert + 600])
    assert "HTTP 500" in html[alert : alert + 600]


def test_a_call_that_answered_at_once_has_no_badges() -> None:
    with running_gateway(config(FALLBACK.replace("{failure: '500'}", "{}"))) as gw:
        raw = gw.client().chat.completions.with_raw_response.create(
            model="primary", messages=MESSAGES
        )
        trace_id = raw.headers["x-controltower-trace-id"]
        gw.trace(trace_id)
        html = httpx.get(f"{gw.url}/traces/{trace_id}").text
    assert "fell back" not in html and "attempts<" not in html and 'role="alert"' not in html
