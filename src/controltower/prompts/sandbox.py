"""The sandbox templates render in: Jinja2's, with limits on time, output and value sizes.

A template is code: it may loop for ever, or build a string of gigabytes in one
expression. Each render spends a budget (a deadline, and the characters it may write).
It is checked where a template does work: each loop iteration (the loops' iterables are
wrapped when the template compiles), each call, each output, and before each operator,
filter or method that multiplies sizes (`*`, `**`, `+`, `%`, `~`, `center`, `replace`,
`join` ...) allocates its result.
"""

from __future__ import annotations

import math
import re
import string
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import update_wrapper
from inspect import BoundArguments, Signature, signature, unwrap
from typing import Any

from jinja2 import StrictUndefined, Template, nodes, pass_context
from jinja2.runtime import Context, LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import generate_lorem_ipsum
from jinja2.visitor import NodeTransformer

from controltower.prompts.errors import PromptRenderError

# names no template can spell (`:` ends a filter name), given to the filters the
# compile step wraps loops, `~` and outputs in
_ITERATE, _CONCAT, _WRITE = "controltower:iterate", "controltower:concat", "controltower:write"
_SIZED = (str, bytes, list, tuple)
_PERCENT_SPEC = re.compile(
    r"%(?:\((?P<key>[^)]*)\))?[-#0 +]*(?P<width>\*|\d+)?(?:\.(?P<precision>\*|\d+))?[hlL]?"
    r"(?P<kind>[diouxXeEfFgGcrsa%])"
)


class RenderLimitExceeded(PromptRenderError):
    """A template went past a render limit: its time, its output or the size of a value."""

    code = "prompt_render_limit"


@dataclass(frozen=True, slots=True)
class RenderLimits:
    """What one render of a version (all its messages) may take."""

    time_s: float = 1.0
    max_output_chars: int = 10_000_000  # about the gateway's default request size limit
    max_range: int = 10_000  # numbers in a range(), paragraphs of lipsum, slices
    max_items: int = 1_000_000  # items in a list the template builds
    max_int_bits: int = 100_000  # of a number the template computes (`**`, `*`)
    # text written by output statements, captured blocks and macros included, that the
    # rendered messages may be built from (a captured block is written twice)
    write_factor: int = 4


class RenderBudget:
    """What one render may still spend; `stop` makes its next check fail."""

    __slots__ = ("deadline", "limits", "output", "started", "stopped", "written")

    def __init__(self, limits: RenderLimits, deadline: float | None = None) -> None:
        self.limits = limits
        self.deadline = time.monotonic() + limits.time_s if deadline is None else deadline
        self.written = 0
        self.output = 0
        self.started = False
        self.stopped = False

    def start(self) -> None:
        """Start the clock now (a render queued for a thread is not charged the wait)."""
        self.deadline = time.monotonic() + self.limits.time_s
        self.started = True

    def tick(self) -> None:
        """Fail once the deadline has passed, or the render was stopped."""
        if self.stopped or time.monotonic() > self.deadline:
            raise self.too_slow()

    def stop(self) -> None:
        """Make the render fail at its next check (nobody waits for it any more)."""
        self.stopped = True

    def too_slow(self) -> RenderLimitExceeded:
        """The error of a render that ran out of time (or never got a thread)."""
        if not self.started:
            return RenderLimitExceeded(
                f"the prompt renderer was busy with other templates for {self.limits.time_s:g} s "
                "or more; try again"
            )
        return RenderLimitExceeded(
            f"the template did not render within {self.limits.time_s:g} s; "
            "make its loops shorter, or move the work out of the template"
        )

    def write(self, chars: int) -> None:
        """Count characters written by an output statement."""
        self.written += chars
        limit = self.limits.max_output_chars * self.limits.write_factor
        if self.written > limit:
            raise RenderLimitExceeded(
                f"the template wrote more than {limit} characters while rendering"
            )

    def add_output(self, chars: int) -> None:
        """Count the characters of a rendered message (or text)."""
        self.output += chars
        if self.output > self.limits.max_output_chars:
            raise RenderLimitExceeded(
                f"the rendered prompt is longer than {self.limits.max_output_chars} characters"
            )

    def check_chars(self, chars: int, what: str) -> None:
        """Refuse to build a string of more than the output limit."""
        if chars > self.limits.max_output_chars:
            raise RenderLimitExceeded(
                f"{what} would make a string of {chars} characters; "
                f"a template may build at most {self.limits.max_output_chars}"
            )

    def check_items(self, items: int, what: str) -> None:
        """Refuse to build a list of more than max_items."""
        if items > self.limits.max_items:
            raise RenderLimitExceeded(
                f"{what} would make a list of {items} items; "
                f"a template may build at most {self.limits.max_items}"
            )

    def check_value(self, value: Any, what: str) -> None:
        """Refuse a string or collection over its limit (so that none feeds the next step)."""
        if isinstance(value, str | bytes):
            self.check_chars(len(value), what)
        elif isinstance(value, list | tuple | dict | set | frozenset):
            self.check_items(len(value), what)


class LimitedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with each render's budget checked as it works."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, limits: RenderLimits | None = None) -> None:
        super().__init__(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
        self.limits = limits or RenderLimits()
        self._local = threading.local()
        self.globals["range"] = self._range
        self.globals["lipsum"] = self._lipsum
        self.filters = {name: self._guard(name, f) for name, f in self.filters.items()}
        self.filters.update({_ITERATE: _iterate, _CONCAT: _concat, _WRITE: _write})

    # -- the budget of the render on this thread -----------------------------------------

    def current(self) -> RenderBudget:
        """The budget of the render running on this thread (an unlimited one outside)."""
        budget: RenderBudget | None = getattr(self._local, "budget", None)
        if budget is None:  # constant folding while compiling: sizes still count
            return RenderBudget(self.limits, deadline=math.inf)
        return budget

    @contextmanager
    def spending(self, budget: RenderBudget) -> Iterator[RenderBudget]:
        """Charge the renders on this thread to `budget` for the duration."""
        previous = getattr(self._local, "budget", None)
        self._local.budget = budget
        try:
            yield budget
        finally:
            self._local.budget = previous

    def compile_template(self, source: str) -> Template:
        """Compile with every loop, `~` and output routed through the budget checks."""
        tree = _Guards().visit(self.parse(source))
        tree.set_environment(self)
        return self.from_string(tree)

    # -- the sandbox's hooks ----------------------------------------------------------

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """Check an intercepted operator's result size before computing it."""
        budget = self.current()
        budget.tick()
        if operator == "*":
            _check_repeat(budget, left, right)
        elif operator == "**":
            _check_power(budget, left, right)
        elif operator == "+" and isinstance(left, _SIZED) and isinstance(right, _SIZED):
            _check_sized(budget, len(left) + len(right), left, "`+`")
        elif operator == "%" and isinstance(left, str):
            budget.check_chars(_percent_size(left, right), "`%` formatting")
        return self.binop_table[operator](left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        """Check the budget at every call, and a string method's result size before it."""
        budget = __self.current()
        budget.tick()
        if isinstance(__obj, LoopContext) and args:  # a recursive loop's next level
            args = (_ticking(args[0], budget), *args[1:])
        elif isinstance(getattr(__obj, "__self__", None), str):
            args = _check_str_method(budget, __obj, args, kwargs)
        result = super().call(__context, __obj, *args, **kwargs)
        budget.check_value(result, f"calling {getattr(__obj, '__name__', 'a function')}")
        return result

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """`str.format` and `format_map`, with widths and result size checked first."""
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        template: str = value.__self__
        by_name = value.__name__ == "format_map"

        def checked(*args: Any, **kwargs: Any) -> str:
            values = list(args[0].values()) if by_name and args else [*args, *kwargs.values()]
            budget = self.current()
            budget.tick()
            budget.check_chars(_format_size(template, values), "`format`")
            return wrapped(*args, **kwargs)

        return update_wrapper(checked, value)

    # -- globals and filters --------------------------------------------------------------

    def _range(self, *args: int) -> range:
        numbers = range(*args)
        count: float
        try:
            count = len(numbers)
        except OverflowError:  # more than fits in a machine word
            count = math.inf
        if count > self.limits.max_range:
            raise RenderLimitExceeded(
                f"range({', '.join(map(str, args))}) would give {count} numbers; "
                f"a template may use ranges of at most {self.limits.max_range}"
            )
        return numbers

    def _lipsum(self, n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
        if n > self.limits.max_range or max > self.limits.max_range:
            raise RenderLimitExceeded(f"lipsum({n}, max={max}) would be too long")
        return generate_lorem_ipsum(n, html, min, max)

    def _guard(self, name: str, filter_: Callable[..., Any]) -> Callable[..., Any]:
        """A filter that spends the budget, and is checked before and after it runs."""
        precheck = _FILTER_CHECKS.get(name)
        binder = _arguments(filter_) if precheck is not None else None
        # pass_context and the like: the first argument is Jinja's, not the template's
        lead = 1 if getattr(filter_, "jinja_pass_arg", None) is not None else 0

        def guarded(*args: Any, **kwargs: Any) -> Any:
            budget = self.current()
            budget.tick()
            if precheck is not None and binder is not None:
                bound = binder.bind(*args[lead:], **kwargs)
                precheck(budget, bound)
                args, kwargs = (*args[:lead], *bound.args), bound.kwargs
            result = filter_(*args, **kwargs)
            budget.check_value(result, f"the `{name}` filter")
            return result

        return update_wrapper(guarded, filter_)  # keeps jinja_pass_arg (pass_context ...)


class _Guards(NodeTransformer):
    """Routes each loop's items, each `~` and each output through the budget filters."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = _filter(node.iter, _ITERATE)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _filter(nodes.List(node.nodes, lineno=node.lineno), _CONCAT)

    def visit_Output(self, node: nodes.Output) -> nodes.Node:
        self.generic_visit(node)
        node.nodes = [_filter(child, _WRITE) for child in node.nodes]
        return node


def _arguments(filter_: Callable[..., Any]) -> Signature:
    """The parameters a template passes to a filter (Jinja's own first one left out)."""
    found = signature(filter_)  # of the sync function, for Jinja's async variants
    if getattr(unwrap(filter_), "jinja_pass_arg", None) is not None:
        found = found.replace(parameters=list(found.parameters.values())[1:])
    return found


def _filter(node: nodes.Node, name: str) -> nodes.Filter:
    return nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)


def _budget(context: Context) -> RenderBudget:
    env = context.environment
    return env.current() if isinstance(env, LimitedSandbox) else RenderBudget(RenderLimits())


# pass_context keeps the compiler from folding these into constants at compile time
@pass_context
def _iterate(context: Context, iterable: Iterable[Any]) -> Iterator[Any]:
    return _ticking(iterable, _budget(context))


@pass_context
def _concat(context: Context, parts: list[Any]) -> str:
    texts = [str(part) for part in parts]
    budget = _budget(context)
    budget.check_chars(sum(map(len, texts)), "`~`")
    return "".join(texts)


@pass_context
def _write(context: Context, value: Any) -> str:
    text = str(value)
    budget = _budget(context)
    budget.tick()
    budget.write(len(text))
    return text


def _ticking(iterable: Iterable[Any], budget: RenderBudget) -> Iterator[Any]:
    for item in iterable:
        budget.tick()
        yield item


# -- size predictions, made before the work is done -----------------------------------------


def _check_sized(budget: RenderBudget, size: int, sample: Any, what: str) -> None:
    if isinstance(sample, str | bytes):
        budget.check_chars(size, what)
    else:
        budget.check_items(size, what)


def _check_repeat(budget: RenderBudget, left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int):
        if left.bit_length() + right.bit_length() > budget.limits.max_int_bits:
            raise RenderLimitExceeded("`*` would make a number too large for a template")
        return
    sequence, times = (left, right) if isinstance(left, _SIZED) else (right, left)
    if isinstance(sequence, _SIZED) and isinstance(times, int):
        _check_sized(budget, len(sequence) * max(times, 0), sequence, "`*`")


def _check_power(budget: RenderBudget, base: Any, exponent: Any) -> None:
    if not (isinstance(base, int) and isinstance(exponent, int)) or exponent <= 0:
        return
    if abs(base) > 1 and exponent * base.bit_length() > budget.limits.max_int_bits:
        raise RenderLimitExceeded(f"`**` would make a number of about {exponent} bits or more")


def _longest(values: Iterable[Any]) -> int:
    return max((len(str(v)) for v in values), default=0)


def _percent_size(template: str, args: Any) -> int:
    """An upper bound of the length of `template % args`."""
    if isinstance(args, Mapping):
        values: list[Any] = list(args.values())
    elif isinstance(args, tuple):
        values = list(args)
    else:
        values = [args]
    longest = _longest(values)
    size = len(template)
    for spec in _PERCENT_SPEC.finditer(template):
        width, precision = spec.group("width"), spec.group("precision")
        if "*" in (width, precision):
            raise RenderLimitExceeded("`%` formatting with a `*` width is not allowed")
        size += longest + int(width or 0) + int(precision or 0)
    return size


def _format_size(template: str, values: list[Any]) -> int:
    """An upper bound of the length of `template.format(...)` with these arguments."""
    longest = _longest(values)
    size = len(template)
    for _, field, spec, _ in string.Formatter().parse(template):
        if field is None:
            continue
        if spec and "{" in spec:
            raise RenderLimitExceeded("a nested field in a format spec is not allowed")
        widths = [int(n) for n in re.findall(r"\d+", spec or "")]
        size += longest + sum(widths)
    return size


def _replace_size(text: str | bytes, old: Any, new: Any, count: Any) -> int:
    if not isinstance(old, str | bytes) or not isinstance(new, str | bytes):
        return len(text)
    found = text.count(old) if old else len(text) + 1  # type: ignore[arg-type]
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(text) + found * max(0, len(new) - len(old))


def _check_str_method(
    budget: RenderBudget, method: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Any, ...]:
    """Check a str method that can grow its string; the arguments to call it with."""
    text: str = method.__self__
    name = method.__name__
    what = f"`str.{name}`"
    if name in ("center", "ljust", "rjust", "zfill") and args and isinstance(args[0], int):
        budget.check_chars(max(len(text), args[0]), what)
    elif name == "expandtabs":
        size = args[0] if args else kwargs.get("tabsize", 8)
        if isinstance(size, int):
            budget.check_chars(len(text) + text.count("\t") * max(size, 0), what)
    elif name == "replace" and len(args) >= 2:
        count = args[2] if len(args) > 2 else kwargs.get("count", -1)
        budget.check_chars(_replace_size(text, args[0], args[1], count), what)
    elif name == "join" and args:
        items = list(args[0])
        budget.check_items(len(items), what)
        size = sum(len(i) for i in items if isinstance(i, str))
        budget.check_chars(size + len(text) * max(len(items) - 1, 0), what)
        return (items, *args[1:])
    elif name == "translate" and args and isinstance(args[0], Mapping):
        budget.check_chars(len(text) * max(_longest(args[0].values()), 1), what)
    return args


# -- filters that can grow their input, checked before they run ---------------------------


def _sized(value: Any) -> int:
    return len(value) if isinstance(value, _SIZED) else len(str(value))


def _center_check(budget: RenderBudget, bound: BoundArguments) -> None:
    width = bound.arguments.get("width", 80)
    if isinstance(width, int):
        budget.check_chars(max(_sized(bound.arguments["value"]), width), "the `center` filter")


def _indent_check(budget: RenderBudget, bound: BoundArguments) -> None:
    text = str(bound.arguments["s"])
    width = bound.arguments.get("width", 4)
    pad = width if isinstance(width, int) else len(str(width))
    lines = text.count("\n") + 1
    budget.check_chars(len(text) + lines * max(pad, 0), "the `indent` filter")


def _replace_check(budget: RenderBudget, bound: BoundArguments) -> None:
    a = bound.arguments
    text = str(a["s"])
    budget.check_chars(
        _replace_size(text, str(a["old"]), str(a["new"]), a.get("count")), "the `replace` filter"
    )


def _format_check(budget: RenderBudget, bound: BoundArguments) -> None:
    a = bound.arguments
    given: Any = a.get("kwargs") or a.get("args", ())
    budget.check_chars(_percent_size(str(a["value"]), given), "the `format` filter")


def _join_check(budget: RenderBudget, bound: BoundArguments) -> None:
    items = list(bound.arguments["value"])
    bound.arguments["value"] = items
    budget.check_items(len(items), "the `join` filter")
    separator = len(str(bound.arguments.get("d", "")))
    size = sum(len(str(i)) for i in items) + separator * max(len(items) - 1, 0)
    budget.check_chars(size, "the `join` filter")


def _batch_check(budget: RenderBudget, bound: BoundArguments) -> None:
    count = bound.arguments.get("linecount")
    if isinstance(count, int) and bound.arguments.get("fill_with") is not None:
        budget.check_items(count, "the `batch` filter")


def _slice_check(budget: RenderBudget, bound: BoundArguments) -> None:
    count = bound.arguments.get("slices")
    if isinstance(count, int) and count > budget.limits.max_range:
        raise RenderLimitExceeded(
            f"`slice({count})` makes too many slices; at most {budget.limits.max_range}"
        )


def _wordwrap_check(budget: RenderBudget, bound: BoundArguments) -> None:
    a = bound.arguments
    text = str(a["s"])
    width = a.get("width", 79)
    wrap = a.get("wrapstring") or "\n"
    lines = len(text) // max(width, 1) + text.count("\n") + 1 if isinstance(width, int) else 1
    budget.check_chars(len(text) + lines * len(str(wrap)), "the `wordwrap` filter")


def _sum_check(budget: RenderBudget, bound: BoundArguments) -> None:
    start = bound.arguments.get("start", 0)
    if isinstance(start, _SIZED):
        items = list(bound.arguments["iterable"])
        bound.arguments["iterable"] = items
        size = len(start) + sum(len(i) for i in items if isinstance(i, _SIZED))
        _check_sized(budget, size, start, "the `sum` filter")


_FILTER_CHECKS: dict[str, Callable[[RenderBudget, BoundArguments], None]] = {
    "center": _center_check,
    "indent": _indent_check,
    "replace": _replace_check,
    "format": _format_check,
    "join": _join_check,
    "batch": _batch_check,
    "slice": _slice_check,
    "wordwrap": _wordwrap_check,
    "sum": _sum_check,
}
