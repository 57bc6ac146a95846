"""Render limits: time, output and value sizes, checked before the template allocates."""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from controltower.domain.prompt import PromptContent, PromptVersion
from controltower.prompts import PromptRenderer, PromptRenderError, content_hash
from controltower.prompts.sandbox import RenderLimitExceeded, RenderLimits

SLOW = "{% for a in range(10000) %}{% for b in range(10000) %}{% endfor %}{% endfor %}"
# a macro that calls itself 2**40 times and never writes: each call is checked
FORK = "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}"
NS = "{% set ns = namespace(v=START) %}{% for i in range(40) %}{% set ns.v = STEP %}{% endfor %}."


def version(text: str) -> PromptVersion:
    content = PromptContent(text=text, model="fast")
    return PromptVersion("p", 1, content, content_hash(content), 0)


def renderer(time_s: float = 0.3, workers: int = 2) -> PromptRenderer:
    return PromptRenderer(RenderLimits(time_s=time_s), workers)


def doubling(start: str, step: str) -> str:
    return NS.replace("START", start).replace("STEP", step)


@pytest.mark.parametrize(
    ("template", "phrase"),
    [
        (SLOW, "did not render within 0.3 s"),
        (FORK, "did not render within 0.3 s"),
        ("{% for i in range(10000) %}{{ 'x' * 10000 }}{% endfor %}", "wrote more than"),
        ("{% set x %}{% for i in range(9999) %}{{ 'y' * 9999 }}{% endfor %}{% endset %}", "wrote"),
        ("{{ range(10**9)|list }}", "range(1000000000) would give"),
        ("{{ 'x' * 100000000 }}", "`*` would make a string of 100000000 characters"),
        ("{{ [0] * 100000000 }}", "`*` would make a list of 100000000 items"),
        ("{{ 2 ** 10000000 }}", "`**` would make a number"),
        (doubling("3", "ns.v * ns.v"), "`*` would make a number"),
        (doubling("'ab'", "ns.v ~ ns.v"), "`~` would make a string"),
        (doubling("'ab'", "ns.v + ns.v"), "`+` would make a string"),
        (doubling("[1]", "ns.v + ns.v"), "`+` would make a list"),
        ("{{ '%0999999999d' % 1 }}", "`%` formatting would make"),
        ("{{ '%0999999999d'|format(1) }}", "the `format` filter would make"),
        ("{{ ('{0}' * 1000).format('x' * 100000) }}", "`format` would make"),
        ("{{ 'x'|center(100000000) }}", "the `center` filter would make"),
        ("{{ 'x'.ljust(100000000) }}", "`str.ljust` would make"),
        ("{{ ('a' * 1000).replace('a', 'b' * 100000) }}", "`str.replace` would make"),
        ("{{ ('a' * 1000)|replace('a', 'b' * 100000) }}", "the `replace` filter would make"),
        ("{{ (['x' * 100000] * 1000)|join }}", "the `join` filter would make"),
        ("{{ ','.join(['x' * 100000] * 1000) }}", "`str.join` would make"),
        ("{{ ('a\n' * 1000)|indent(100000) }}", "the `indent` filter would make"),
        ("{{ ('\t' * 1000).expandtabs(100000) }}", "`str.expandtabs` would make"),
        ("{{ [1]|batch(100000000, 0)|list }}", "the `batch` filter would make"),
        ("{{ lipsum(1000000) }}", "lipsum(1000000"),
    ],
)
def test_templates_over_a_limit_are_refused_with_their_code(template: str, phrase: str) -> None:
    started = time.monotonic()
    with pytest.raises(RenderLimitExceeded, match=re.escape(phrase)) as caught:
        renderer().render(version(template), {})
    assert caught.value.status == 400 and caught.value.code == "prompt_render_limit"
    assert caught.value.message.startswith("text: ")  # where in the version
    assert time.monotonic() - started < 10  # stopped by the limit, not by finishing


def test_the_output_limit_counts_every_message() -> None:
    content = PromptContent(
        messages=tuple({"role": "user", "content": "{{ 'x' * 600 }}"} for _ in range(2)),
        model="fast",
    )
    two = PromptVersion("p", 1, content, content_hash(content), 0)
    with pytest.raises(RenderLimitExceeded, match="longer than 1000 characters"):
        PromptRenderer(RenderLimits(max_output_chars=1000)).render(two, {})


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        (
            "{{ 'ab' * 3 }}{{ [1, 2] * 2 }}{{ 2 ** 10 }}{{ 'a' + 'b' }}{{ 1 + 2 }}",
            "ababab[1, 2, 1, 2]1024ab3",
        ),
        (
            "{{ '%s-%03d' % ('a', 7) }} {{ '%(x)s'|format(x=1) }}{{ '{}!'.format('hi') }}",
            "a-007 1hi!",
        ),
        ("{{ 'x' ~ 1 ~ none }}{{ [1, 2]|join(',') }}{{ 'a b'|replace(' ', '-') }}", "x1None1,2a-b"),
        (
            "{{ 'ab'|center(6) }}|{{ 'a\nb'|indent(2) }}|{{ 'x'.rjust(3, '.') }}",
            "  ab  |a\n  b|..x",
        ),
        ("{% for i in range(3) if i %}{{ loop.index }}{{ i }}{% else %}none{% endfor %}", "1122"),
        ("{% for i in [] %}{{ i }}{% else %}none{% endfor %}", "none"),
        (
            "{% for x in [[1, [2]]] recursive %}{% if x is iterable %}{{ loop(x) }}{% else %}"
            "{{ x }}{% endif %}{% endfor %}",
            "12",
        ),
        (
            "{% macro m(a) %}<{{ a }}{{ caller() }}>{% endmacro %}{% call m(1) %}c{% endcall %}",
            "<1c>",
        ),
        (
            "{% filter upper %}ab{% endfilter %}{{ [3, 1]|sort|sum }}"
            "{{ [[1], [2]]|sum(start=[]) }}",
            "AB4[1, 2]",
        ),
        (
            "{{ range(3)|list }}{{ [1, 2, 3]|batch(2, 0)|list }}{{ lipsum(1, false)|length > 9 }}",
            "[0, 1, 2][[1, 2], [3, 0]]True",
        ),
    ],
)
def test_ordinary_templates_render_as_before(template: str, expected: str) -> None:
    assert renderer().render(version(template), {}).text == expected


def test_other_errors_keep_their_code() -> None:
    with pytest.raises(PromptRenderError) as caught:
        renderer().render(version("{{ 1 / 0 }}"), {})
    assert caught.value.code == "prompt_render_error"


async def test_render_async_leaves_the_loop_free_and_answers_at_the_limit() -> None:
    slow = renderer(time_s=0.3)
    ticks = 0

    async def count() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    counting = asyncio.ensure_future(count())
    try:
        with pytest.raises(RenderLimitExceeded, match=r"did not render within 0\.3 s"):
            await slow.render_async(version(SLOW), {})
    finally:
        counting.cancel()
    assert ticks > 1  # the loop kept running while the template did
    assert (await slow.render_async(version("{{ 1 + 1 }}"), {})).text == "2"
    slow.close()


async def test_a_render_nobody_waits_for_stops_and_frees_its_thread() -> None:
    slow = renderer(time_s=60, workers=1)
    task = asyncio.ensure_future(slow.render_async(version(SLOW), {}))
    await asyncio.sleep(0.2)
    task.cancel()  # the client went away
    with pytest.raises(asyncio.CancelledError):
        await task
    # the one thread is free again long before the template's 60 s
    quick = await asyncio.wait_for(slow.render_async(version("ok"), {}), 10)
    assert quick.text == "ok"
    slow.close()
