"""A realistic, reproducible trace dataset for the query benchmark (generated, not stored).

~10 spans per trace (a root, input and output guardrails, an embedding, a retrieval, a
rerank, 1-2 tool calls, 1-3 generations with chat messages of a few hundred bytes, now and
then an event), a handful of models, ~5,000 users with a skewed activity, sessions of
~5 traces, tags, metadata, costs, ~2% errors, spread over 30 days; plus one agent trace of
5,000 spans. The same seed gives the same data, so the two databases hold the same traces.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from controltower.domain import Score, Span, Trace, TraceRecord, Usage

DAY_US = 86_400_000_000
MINUTE_US = 60_000_000

# name, share of traces using it, $ per million input tokens, $ per million output tokens
MODELS = (
    ("gpt-4o-mini", 0.38, 0.15, 0.60),
    ("gpt-4o", 0.22, 2.50, 10.00),
    ("claude-3-5-sonnet", 0.16, 3.00, 15.00),
    ("claude-3-5-haiku", 0.12, 0.80, 4.00),
    ("llama-3.1-70b", 0.07, 0.60, 0.60),
    ("mistral-large", 0.05, 2.00, 6.00),
)
PROVIDERS = {"gpt": "openai", "cla": "anthropic", "lla": "together", "mis": "mistral"}
TRACE_NAMES = (
    ("rag-answer", 0.34),
    ("chat", 0.25),
    ("agent-run", 0.12),
    ("summarize", 0.10),
    ("classify", 0.08),
    ("extract", 0.06),
    ("translate", 0.04),
    ("export-report", 0.01),
)
# tag, probability (production and staging exclude each other)
OPTIONAL_TAGS = (("rag", 0.6), ("agent", 0.3), ("beta", 0.1), ("eval", 0.05), ("vip", 0.01))
REGIONS = ("us-east", "us-west", "eu-west", "eu-central", "ap-south")
CHANNELS = ("web", "mobile", "api", "slack")
VERSIONS = tuple(f"2.{minor}.{patch}" for minor in range(4) for patch in range(3))
TOOLS = ("search_orders", "get_weather", "lookup_account", "create_ticket", "run_sql")
COMMON_WORD = "refund"  # in ~20% of the questions
RARE_WORD = "quokka"  # in ~0.02% of them
COMMON_SHARE = 0.2
RARE_SHARE = 0.0002
ERROR_SHARE = 0.02

_VOCABULARY = (
    "account order payment delivery invoice customer support product price discount "
    "shipping return warranty subscription plan upgrade downgrade cancel billing card "
    "address email password login error message screen button setting profile report "
    "week month year today yesterday tomorrow please could would should help need want "
    "check update change send receive open close start stop again still already never "
    "always sometimes about after before during between under over with without from "
    "into through the a an and or but if then because when where which what how why "
    "this that these those my your our their its we you they it is are was were be "
    "been have has had do does did can will may might must new old fast slow late early "
    "small large free paid monthly annual premium basic standard team company manager "
    "document file upload download export import table chart summary detail total "
    "number amount balance credit debit transfer bank store item cart checkout coupon"
)
_WORDS = _VOCABULARY.split()
_SYSTEM_PROMPTS = (
    "You are a helpful support assistant for an online store. Answer briefly and politely, "
    "cite the order or invoice number when you use one, and never invent policy details.",
    "You answer questions using only the context passages below. If the answer is not in "
    "the context, say that you do not know. Quote the passage you relied on.",
    "You are an agent that can call tools. Think about which tool to call, call it with "
    "valid JSON arguments, then answer the user with the result in plain language.",
    "Summarize the document for a busy manager: five bullet points at most, numbers kept "
    "exact, no speculation, and a one-line conclusion at the end.",
    "Classify the message into one of: billing, shipping, account, product, other. Answer "
    "with the label only, lowercase, and nothing else.",
)


@dataclass(frozen=True)
class Plan:
    """How big the dataset is and where in time it lies."""

    traces: int = 100_000
    users: int = 5_000
    big_spans: int = 5_000
    days: int = 30
    seed: int = 20261123

    @property
    def label(self) -> str:
        """A short name for the dataset's size, used in file and schema names."""
        return f"{self.traces // 1000}k"


@dataclass
class Stats:
    """What the generator produced: counts and the ids the queries ask for."""

    traces: int = 0
    spans: int = 0
    scores: int = 0
    errors: int = 0
    costs: list[float] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    starts: list[tuple[int, str]] = field(default_factory=list)
    user_traces: Counter[str] = field(default_factory=Counter)
    sessions: dict[str, str] = field(default_factory=dict)  # a few session ids -> user
    big_trace_id: str = ""
    typical_trace_id: str = ""

    def add(self, record: TraceRecord) -> None:
        """Count a generated trace."""
        trace = record.trace
        self.traces += 1
        self.spans += len(record.spans)
        self.errors += trace.status == "error"
        self.costs.append(trace.cost or 0.0)
        self.latencies_ms.append(((trace.end_us or trace.start_us) - trace.start_us) / 1000)
        self.starts.append((trace.start_us, trace.id))
        if trace.user_id:
            self.user_traces[trace.user_id] += 1


class TraceFactory:
    """Builds the traces; every random choice comes from one seeded generator."""

    def __init__(self, plan: Plan, end_us: int) -> None:
        self.plan = plan
        self.end_us = end_us
        self.rng = random.Random(plan.seed)
        rng = self.rng
        self.sentences = [self._sentence() for _ in range(3000)]
        self.users = [f"user-{i:05d}" for i in range(plan.users)]
        # skewed activity: a few heavy users, a long tail of occasional ones
        self.user_weights = [1 / (rank + 1) ** 0.8 for rank in range(plan.users)]
        self.tenants = [f"tenant-{i:03d}" for i in range(50)]
        self.names = [name for name, _ in TRACE_NAMES]
        self.name_weights = [share for _, share in TRACE_NAMES]
        self.models = [m[0] for m in MODELS]
        self.model_weights = [m[1] for m in MODELS]
        self.prices = {m[0]: (m[2], m[3]) for m in MODELS}
        rng.shuffle(self.users)

    # -- text -------------------------------------------------------------------------------

    def _sentence(self) -> str:
        words = self.rng.choices(_WORDS, k=self.rng.randint(8, 18))
        return " ".join(words).capitalize() + "."

    def text(self, sentences: int) -> str:
        """A paragraph of a few sentences (~100 bytes each)."""
        return " ".join(self.rng.choices(self.sentences, k=sentences))

    def question(self) -> str:
        """A user's question; some mention the common word, very few the rare one."""
        words = self.text(self.rng.randint(1, 3))
        roll = self.rng.random()
        if roll < RARE_SHARE:
            return f"{words} What about the {RARE_WORD} plan?"
        if roll < COMMON_SHARE:
            return f"{words} Can I get a {COMMON_WORD} for order {self.rng.randint(1000, 99999)}?"
        return words

    # -- ids ------------------------------------------------------------------------------

    def trace_id(self) -> str:
        """32 hex digits."""
        return f"{self.rng.getrandbits(128):032x}"

    def span_id(self) -> str:
        """16 hex digits."""
        return f"{self.rng.getrandbits(64):016x}"

    # -- spans ----------------------------------------------------------------------------

    def generation(
        self,
        trace_id: str,
        parent: str,
        start: int,
        model: str,
        question: str,
        system: str,
        name: str = "chat.completion",
    ) -> Span:
        """A model call with chat messages, parameters, usage and cost."""
        rng = self.rng
        input_tokens, output_tokens = rng.randint(300, 3000), rng.randint(40, 600)
        price_in, price_out = self.prices[model]
        duration = int(rng.lognormvariate(13.5, 0.6))  # median ~0.7 s
        return Span(
            id=self.span_id(),
            trace_id=trace_id,
            parent_id=parent,
            name=name,
            kind="generation",
            start_us=start,
            end_us=start + duration,
            input=[{"role": "system", "content": system}, {"role": "user", "content": question}],
            output={"role": "assistant", "content": self.text(rng.randint(2, 4))},
            model=model,
            provider=PROVIDERS[model[:3]],
            parameters={"temperature": rng.choice((0.0, 0.2, 0.7)), "max_tokens": 1024},
            usage=Usage(input_tokens, output_tokens, rng.choice((0, 0, 256)), 0),
            cost=(input_tokens * price_in + output_tokens * price_out) / 1e6,
            ttft_us=min(duration, int(rng.lognormvariate(12.2, 0.4))),
        )

    def simple(
        self,
        trace_id: str,
        parent: str | None,
        kind: Any,
        name: str,
        start: int,
        duration: int,
        input_: Any = None,
        output: Any = None,
    ) -> Span:
        """A span that is not a model call."""
        return Span(
            id=self.span_id(),
            trace_id=trace_id,
            parent_id=parent,
            name=name,
            kind=kind,
            start_us=start,
            end_us=start + duration,
            input=input_,
            output=output,
        )

    def retrieval(self, trace_id: str, parent: str, start: int, question: str) -> Span:
        """A vector search returning three passages."""
        docs = [
            {
                "id": f"doc-{self.rng.randint(1, 50000)}",
                "score": round(self.rng.random(), 3),
                "text": self.text(1),
            }
            for _ in range(3)
        ]
        duration = int(self.rng.lognormvariate(10.5, 0.5))
        return self.simple(
            trace_id,
            parent,
            "retrieval",
            "vector-search",
            start,
            duration,
            {"query": question, "top_k": 3},
            docs,
        )

    def tool(self, trace_id: str, parent: str, start: int) -> Span:
        """A tool call with JSON arguments and result."""
        name = self.rng.choice(TOOLS)
        duration = int(self.rng.lognormvariate(11.0, 0.8))
        return self.simple(
            trace_id,
            parent,
            "tool",
            name,
            start,
            duration,
            {"arguments": {"id": self.rng.randint(1, 10**6), "limit": 10}},
            {"ok": True, "rows": self.rng.randint(0, 20)},
        )

    # -- traces ---------------------------------------------------------------------------

    def labels(self, trace: Trace) -> None:
        """Tags, metadata, environment and release of a trace."""
        rng = self.rng
        tags = ["production" if rng.random() < 0.8 else "staging"]
        tags += [tag for tag, share in OPTIONAL_TAGS if rng.random() < share]
        trace.tags = tags
        trace.environment = tags[0]
        trace.release = rng.choice(VERSIONS)
        trace.metadata = {
            "region": rng.choice(REGIONS),
            "tenant": rng.choice(self.tenants),
            "channel": rng.choice(CHANNELS),
            "app_version": trace.release,
        }

    def trace(self, start: int, user: str, session: str) -> TraceRecord:
        """One ordinary trace of ~10 spans."""
        rng = self.rng
        trace_id, root_id = self.trace_id(), self.span_id()
        name = rng.choices(self.names, self.name_weights)[0]
        model = rng.choices(self.models, self.model_weights)[0]
        question = self.question()
        system = rng.choice(_SYSTEM_PROMPTS)
        spans: list[Span] = []
        t = start + rng.randint(200, 2000)

        def add(span: Span) -> None:
            nonlocal t
            spans.append(span)
            t = (span.end_us or t) + rng.randint(50, 500)

        add(
            self.simple(
                trace_id,
                root_id,
                "guardrail",
                "input-guard",
                t,
                rng.randint(800, 5000),
                {"text": question[:200]},
                {"flagged": False},
            )
        )
        add(
            self.simple(
                trace_id,
                root_id,
                "embedding",
                "embed-query",
                t,
                int(rng.lognormvariate(10.0, 0.4)),
                {"text": question[:200]},
                {"dimensions": 1536},
            )
        )
        add(self.retrieval(trace_id, root_id, t, question))
        add(
            self.simple(
                trace_id,
                root_id,
                "span",
                "rerank",
                t,
                rng.randint(2000, 30000),
                {"candidates": 20},
                {"kept": 3},
            )
        )
        for _ in range(rng.randint(1, 2)):
            add(self.tool(trace_id, root_id, t))
        for i in range(rng.randint(1, 3)):
            last = self.generation(
                trace_id,
                root_id,
                t,
                model,
                question,
                system,
                "chat.completion" if i == 0 else f"chat.completion.{i}",
            )
            add(last)
        add(
            self.simple(
                trace_id,
                root_id,
                "guardrail",
                "output-guard",
                t,
                rng.randint(800, 4000),
                {"checks": ["pii", "toxicity"]},
                {"flagged": False},
            )
        )
        if rng.random() < 0.5:
            add(self.simple(trace_id, root_id, "event", "feedback-prompt-shown", t, 0))
        answer = last.output
        root = self.simple(
            trace_id, None, "span", name, start, t - start, {"question": question}, answer
        )
        root.id = root_id
        spans.insert(0, root)
        trace = Trace(
            id=trace_id,
            name=name,
            start_us=start,
            end_us=t,
            user_id=user,
            session_id=session,
            input={"question": question},
            output=answer["content"],
        )
        self.labels(trace)
        if rng.random() < ERROR_SHARE:
            self._fail(trace, spans)
        record = TraceRecord(trace=trace, spans=spans, partial=False)
        record.roll_up()
        return record

    def _fail(self, trace: Trace, spans: list[Span]) -> None:
        victim = self.rng.choice([s for s in spans if s.kind in ("generation", "tool")])
        victim.status = "error"
        victim.error = self.rng.choice(
            (
                "RateLimitError: 429 Too Many Requests",
                "Timeout after 30.0 s",
                "ToolError: upstream returned 500",
                "ContextWindowExceeded: 131072 tokens",
            )
        )
        victim.output = None
        spans[0].status = "error"
        trace.status = "error"
        trace.output = None

    def big_trace(self, start: int, user: str, session: str) -> TraceRecord:
        """One long agent run with exactly plan.big_spans spans (steps of 5 spans each)."""
        rng = self.rng
        trace_id, root_id = self.trace_id(), self.span_id()
        question = self.question()
        system = _SYSTEM_PROMPTS[2]
        spans: list[Span] = []
        t = start + 1000
        steps = (self.plan.big_spans - 1) // 5
        for i in range(steps):
            step = self.simple(trace_id, root_id, "span", f"step-{i}", t, 0)
            children = [
                self.generation(trace_id, step.id, t + 100, "gpt-4o", question, system, "plan"),
            ]
            children.append(self.tool(trace_id, step.id, children[-1].end_us or t))
            children.append(self.retrieval(trace_id, step.id, children[-1].end_us or t, question))
            children.append(
                self.generation(
                    trace_id,
                    step.id,
                    children[-1].end_us or t,
                    "gpt-4o-mini",
                    question,
                    system,
                    "observe",
                )
            )
            step.end_us = (children[-1].end_us or t) + 100
            spans += [step, *children]
            t = step.end_us + rng.randint(100, 1000)
        while len(spans) < self.plan.big_spans - 1:
            spans.append(self.simple(trace_id, root_id, "event", "checkpoint", t, 0))
        root = self.simple(
            trace_id,
            None,
            "span",
            "agent-batch-run",
            start,
            t - start,
            {"question": question},
            {"steps": steps},
        )
        root.id = root_id
        spans.insert(0, root)
        trace = Trace(
            id=trace_id,
            name="agent-batch-run",
            start_us=start,
            end_us=t,
            user_id=user,
            session_id=session,
            input={"question": question},
            output=f"Finished {steps} steps.",
        )
        self.labels(trace)
        record = TraceRecord(trace=trace, spans=spans, partial=False)
        record.roll_up()
        return record

    def scores(self, record: TraceRecord) -> list[Score]:
        """User thumbs on ~10% of traces and a judge's score on ~3%."""
        rng, trace = self.rng, record.trace
        made = (trace.end_us or trace.start_us) + rng.randint(1, 600) * 1_000_000
        scores = []
        if rng.random() < 0.10:
            scores.append(
                Score(
                    id=self.span_id() * 2,
                    trace_id=trace.id,
                    name="thumbs",
                    value=rng.random() < 0.8,
                    created_us=made,
                    source="user",
                    comment=None if rng.random() < 0.7 else self.text(1),
                )
            )
        if rng.random() < 0.03:
            scores.append(
                Score(
                    id=self.span_id() * 2,
                    trace_id=trace.id,
                    name="relevance",
                    value=round(rng.random(), 2),
                    created_us=made + 1,
                    source="judge",
                    author="gpt-4o",
                )
            )
        return scores

    # -- the whole dataset ----------------------------------------------------------------

    def session_starts(self) -> Iterator[tuple[int, str, str, int]]:
        """(start_us, user, session id, trace count) of each session, until plan.traces."""
        rng, plan = self.rng, self.plan
        first = self.end_us - plan.days * DAY_US
        made = 0
        while made < plan.traces:
            count = min(rng.randint(1, 9), plan.traces - made)
            user = rng.choices(self.users, self.user_weights)[0]
            start = rng.randint(first, self.end_us - 60 * MINUTE_US)
            yield start, user, f"sess-{rng.getrandbits(48):012x}", count
            made += count


def generate(
    plan: Plan, end_us: int, batch_traces: int, stats: Stats
) -> Iterator[tuple[list[TraceRecord], list[Score]]]:
    """Batches of whole trace records (and their scores); fills `stats` as it goes."""
    factory = TraceFactory(plan, end_us)
    batch: list[TraceRecord] = []
    scores: list[Score] = []
    for start, user, session, count in factory.session_starts():
        t = start
        for _ in range(count):
            record = factory.trace(t, user, session)
            stats.add(record)
            batch.append(record)
            scores += factory.scores(record)
            t = (record.trace.end_us or t) + factory.rng.randint(20, 300) * 1_000_000
        if len(stats.sessions) < 20:
            stats.sessions[session] = user
        if len(batch) >= batch_traces:
            yield batch, scores
            batch, scores = [], []
    heavy = stats.user_traces.most_common(1)[0][0]
    big = factory.big_trace(end_us - 2 * 3600 * 1_000_000, heavy, f"sess-{'b' * 12}")
    stats.big_trace_id = big.trace.id
    stats.typical_trace_id = batch[0].trace.id if batch else stats.starts[0][1]
    stats.add(big)
    yield [*batch, big], scores
