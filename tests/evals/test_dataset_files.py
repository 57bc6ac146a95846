"""Dataset files: each import format, the exports, round trips, the content hash, and every
problem reported as PATH:LINE: problem; fix: ..., all at once."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controltower.domain.dataset import DatasetItem
from controltower.errors import ControlTowerError
from controltower.evals.dataset_files import (
    FORMATS,
    DatasetFileError,
    detect_format,
    dump_jsonl,
    item_from_record,
    items_hash,
    parse_dataset,
    parse_items,
    read_dataset,
    read_items,
)

OPENAI_EVALS_SAMPLES = """\
{"input": [{"role": "system", "content": "Answer with the capital city only."}, \
{"role": "user", "content": "What is the capital of France?"}], "ideal": "Paris"}
{"input": [{"role": "system", "content": "Answer with the capital city only."}, \
{"role": "user", "content": "What is the capital of the Netherlands?"}], \
"ideal": ["Amsterdam", "The Hague"]}
{"input": "2+2=", "ideal": ["4"]}
"""

PROMPTFOO_CSV = """\
question,context,__expected,__expected2,__description,__metadata:category,__metadata:tags[]
"What is 2+2?",,4,"contains: four",Basic math,math,"easy,arithmetic"
"Summarize:
the cat sat on the mat",a cat story,"similar(0.8): A cat sat on a mat",,Summary,text,
"Say hello",,"contains: Hello","not-icontains: goodbye",,,"a\\,b,c"
"""


def problems_of(data: str | bytes, fmt: str, source: str = "d.jsonl") -> list[str]:
    with pytest.raises(DatasetFileError) as caught:
        parse_items(data, source, fmt)
    assert str(caught.value) == "\n".join(caught.value.problems)
    return caught.value.problems


def only_problem(data: str | bytes, fmt: str = "jsonl", source: str = "d.jsonl") -> str:
    found = problems_of(data, fmt, source)
    assert len(found) == 1, found
    return found[0]


# --- importing --------------------------------------------------------------------------


def test_our_jsonl_with_every_field() -> None:
    text = (
        '{"id": "q1", "input": "What is 2+2?", "expected": "4", "metadata": {"cat": "math"}}\n'
        '{"id": 7, "variables": {"city": "Paris"}, "expected": {"country": "France"}}\n'
        '{"input": [{"role": "user", "content": "hi"}]}\n'
    )
    items = parse_items(text, "d.jsonl", "jsonl")
    assert items[0] == DatasetItem("q1", "What is 2+2?", {}, "4", {"cat": "math"})
    assert items[1] == DatasetItem("7", None, {"city": "Paris"}, {"country": "France"})
    assert items[2].input == [{"role": "user", "content": "hi"}]
    assert len(items[2].id) == 16 and int(items[2].id, 16) >= 0


def test_aliases_and_unknown_keys_are_noted() -> None:
    text = (
        '{"question": "2+2?", "answer": "4", "category": "math"}\n'
        '{"prompt": "3+3?", "expected_output": "6", "category": "math"}\n'
        '{"input": "x", "question": "kept", "vars": {"a": 1}, "target": "t"}\n'
    )
    found = parse_dataset(text, "d.jsonl", "jsonl")
    assert [(item.input, item.expected) for item in found.items] == [
        ("2+2?", "4"),
        ("3+3?", "6"),
        ("x", "t"),
    ]
    assert found.items[0].metadata == {"category": "math"}
    assert found.items[2].metadata == {"question": "kept"}
    assert found.items[2].variables == {"a": 1}
    assert found.notes == [
        "`question` read as `input` (1 record)",
        "`answer` read as `expected` (1 record)",
        "`category` kept in metadata (2 records)",
        "`prompt` read as `input` (1 record)",
        "`expected_output` read as `expected` (1 record)",
        "`vars` read as `variables` (1 record)",
        "`target` read as `expected` (1 record)",
        "`question` kept in metadata (1 record)",
    ]


def test_openai_evals_samples() -> None:
    found = parse_dataset(OPENAI_EVALS_SAMPLES, "samples.jsonl", "openai-evals")
    france, netherlands, sums = found.items
    assert france.input == [
        {"role": "system", "content": "Answer with the capital city only."},
        {"role": "user", "content": "What is the capital of France?"},
    ]
    assert (france.expected, france.metadata) == ("Paris", {})
    assert netherlands.expected == "Amsterdam"
    assert netherlands.metadata == {"ideal": ["Amsterdam", "The Hague"]}
    assert (sums.input, sums.expected, sums.metadata) == ("2+2=", "4", {})
    assert "`ideal` lists several answers, all kept in `metadata.ideal` (1 record)" in found.notes


def test_an_openai_evals_sample_needs_an_input() -> None:
    assert only_problem('{"variables": {"a": 1}, "ideal": "x"}', "openai-evals") == (
        'd.jsonl:1: an OpenAI Evals sample needs an `input`; fix: add "input": [{"role": ...}]'
    )


def test_promptfoo_csv() -> None:
    found = parse_dataset(PROMPTFOO_CSV, "tests.csv", "promptfoo-csv")
    math, summary, hello = found.items
    assert math.variables == {"question": "What is 2+2?", "context": ""}
    assert math.expected == "4"
    assert math.metadata == {
        "description": "Basic math",
        "category": "math",
        "tags": ["easy", "arithmetic"],
        "promptfoo": {
            "assert": [{"type": "equals", "value": "4"}, {"type": "contains", "value": "four"}]
        },
    }
    assert summary.variables["question"] == "Summarize:\nthe cat sat on the mat"
    assert summary.expected == "A cat sat on a mat"
    assert summary.metadata["promptfoo"] == {
        "assert": [{"type": "similar", "value": "A cat sat on a mat", "threshold": 0.8}]
    }
    assert "tags" not in summary.metadata  # an empty cell is absent
    assert hello.expected is None  # `contains` states no reference answer
    assert hello.metadata == {
        "tags": ["a,b", "c"],
        "promptfoo": {
            "assert": [
                {"type": "contains", "value": "Hello"},
                {"type": "not-icontains", "value": "goodbye"},
            ]
        },
    }
    assert found.notes == []


def test_promptfoo_options_thresholds_and_assertion_forms() -> None:
    text = (
        "q,__expected1,__expected2,__prefix,__suffix,__threshold,__metric,"
        "__config:__expected2:threshold,__providerOutput,__metadata\n"
        'x,"llm-rubric: is polite","contains-any: a, b ,c",Hi: ,!,0.5,tone,0.7,canned,junk\n'
        "y,grade: kind,fn: output.length < 9,,,,,,,\n"
        "z,python: file.py,file://check.js,,,,,,,\n"
        "w,Note: a plain value,is-json,,,,,,,\n"
    )
    found = parse_dataset(text, "t.csv", "promptfoo-csv")
    x, y, z, w = found.items
    assert x.metadata["promptfoo"] == {
        "prefix": "Hi: ",
        "suffix": "!",
        "threshold": 0.5,
        "providerOutput": "canned",
        "assert": [
            {"type": "llm-rubric", "value": "is polite", "metric": "tone"},
            {"type": "contains-any", "value": ["a", "b", "c"], "threshold": 0.7, "metric": "tone"},
        ],
    }
    assert [a["type"] for a in y.metadata["promptfoo"]["assert"]] == ["llm-rubric", "javascript"]
    assert z.metadata["promptfoo"]["assert"] == [
        {"type": "python", "value": "file.py"},
        {"type": "javascript", "value": "check.js"},
    ]
    assert w.expected == "Note: a plain value"
    assert w.metadata["promptfoo"]["assert"][1] == {"type": "is-json"}
    assert found.notes == ["the `__metadata` column names no key: it was ignored"]


def test_our_csv() -> None:
    text = (
        "id,input,expected,metadata,metadata.source,tone\n"
        'q1,"What is\n2+2?",4,"{""cat"": ""math""}",manual,dry\n'
        'q2,List two primes,"[2, 3]",,,\n'
        'q3,Broken list,"[not json",,,warm\n'
    )
    found = parse_dataset(text, "d.csv", "csv")
    q1, q2, q3 = found.items
    assert q1 == DatasetItem(
        "q1", "What is\n2+2?", {"tone": "dry"}, "4", {"cat": "math", "source": "manual"}
    )
    assert (q2.expected, q2.variables, q2.metadata) == ([2, 3], {"tone": ""}, {})
    assert q3.expected == "[not json"  # not valid JSON: stays text
    assert found.notes == ["columns read as variables: tone"]


def test_csv_variables_only_tabs_bom_and_crlf() -> None:
    data = b'\xef\xbb\xbfquestion_text\tvariables\r\nhi\t{"a": 1}\r\nbye\t\r\n'
    items = parse_items(data, "d.tsv", "csv")
    assert [item.variables for item in items] == [
        {"a": 1, "question_text": "hi"},
        {"question_text": "bye"},
    ]
    assert items[0].input is None


def test_csv_aliases_per_column() -> None:
    found = parse_dataset("question,answer\n2+2?,4\n3+3?,6\n", "d.csv", "csv")
    assert [(item.input, item.expected) for item in found.items] == [("2+2?", "4"), ("3+3?", "6")]
    assert found.notes == [
        "`question` read as `input` (2 records)",
        "`answer` read as `expected` (2 records)",
    ]


def test_json_array() -> None:
    text = '[\n  {"id": "a", "input": "x"},\n  {"id": "b", "variables": {"v": 1}}\n]\n'
    assert [item.id for item in parse_items(text, "d.json", "json")] == ["a", "b"]
    assert parse_items("[]", "d.json", "json") == []


def test_blank_lines_bom_crlf_and_no_final_newline() -> None:
    data = b'\xef\xbb\xbf\r\n{"input": "a"}\r\n\r\n   \n{"input": "b"}'
    assert [item.input for item in parse_items(data, "d.jsonl", "jsonl")] == ["a", "b"]


def test_the_same_file_gives_the_same_ids() -> None:
    first = parse_items(PROMPTFOO_CSV, "a.csv", "promptfoo-csv")
    again = parse_items(PROMPTFOO_CSV, "b.csv", "promptfoo-csv")
    assert [item.id for item in first] == [item.id for item in again]
    reordered = parse_items('{"expected": "4", "input": "2+2"}', "d.jsonl", "jsonl")
    assert reordered[0].id == parse_items('{"input": "2+2", "expected": "4"}', "e", "jsonl")[0].id


def test_the_line_each_item_starts_on() -> None:
    jsonl = '\n{"input": "a"}\n\n{"input": "b"}\n'
    assert parse_dataset(jsonl, "d.jsonl", "jsonl").lines == [2, 4]
    table = 'input,expected\n"two\nlines",1\n\nx,2\n'
    assert parse_dataset(table, "d.csv", "csv").lines == [2, 5]
    array = '[{"input": "a"},\n {"input": "b"}]'
    assert parse_dataset(array, "d.json", "json").lines == [1, 2]


def test_promptfoo_columns_that_are_variables() -> None:
    text = "_metadata_note,__custom,__metadata:description,__expected_reason\nn,c,d,e\n"
    (item,) = parse_items(text, "t.csv", "promptfoo-csv")
    assert item.variables == {"_metadata_note": "n", "__custom": "c"}
    assert item.metadata == {
        "description": "d",
        "promptfoo": {"assert": [{"type": "equals", "value": "e"}]},
    }
    assert item.expected == "e"


def test_csv_ids_are_trimmed_and_json_cells_parsed() -> None:
    text = 'id,input,variables,ideal\n q1 ,hi,"{""a"": [1, 2]}","[""x"", ""y""]"\n'
    (item,) = parse_items(text, "d.csv", "csv")
    assert item == DatasetItem("q1", "hi", {"a": [1, 2]}, "x", {"ideal": ["x", "y"]})


def test_read_items_detects_the_format(tmp_path: Path) -> None:
    (tmp_path / "samples.jsonl").write_text(OPENAI_EVALS_SAMPLES)
    (tmp_path / "tests.csv").write_text(PROMPTFOO_CSV)
    (tmp_path / "plain.csv").write_text("input,expected\nhi,hello\n")
    (tmp_path / "items.json").write_text('[{"input": "x"}]')
    (tmp_path / "items").write_text('{"input": "x"}\n')
    formats = {
        name: read_dataset(tmp_path / name).format
        for name in ("samples.jsonl", "tests.csv", "plain.csv", "items.json", "items")
    }
    assert formats == {
        "samples.jsonl": "openai-evals",
        "tests.csv": "promptfoo-csv",
        "plain.csv": "csv",
        "items.json": "json",
        "items": "jsonl",
    }
    assert read_items(tmp_path / "items.json", "json")[0].input == "x"


def test_detect_format() -> None:
    assert detect_format(Path("x.json"), '{"input": "a"}\n{"input": "b"}\n') == "jsonl"
    assert detect_format(Path("x.ndjson"), '{"input": "a"}') == "jsonl"
    assert detect_format(Path("x.tsv"), "__expected\tq\n") == "promptfoo-csv"
    assert detect_format(Path("x.txt"), "\ufeffinput,expected\n") == "csv"
    assert detect_format(Path("x"), '  [{"input": 1}]') == "json"
    assert detect_format(Path("x.txt"), '[{"input": 1}, {"input": 2}]') == "json"
    with pytest.raises(DatasetFileError) as caught:
        detect_format(Path("notes.txt"), "hello")
    assert caught.value.problems == [
        "notes.txt: cannot tell the file's format; fix: name it .jsonl, .json or .csv, or give "
        "its format (jsonl, csv, json, openai-evals, promptfoo-csv)"
    ]


def test_a_large_jsonl_file_is_read_line_by_line(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    with path.open("wb") as out:
        for index in range(20_000):
            out.write(orjson.dumps({"id": f"q{index}", "input": "x" * 100}) + b"\n")
    items = read_items(path)
    assert len(items) == 20_000 and items[-1].id == "q19999"


def test_item_from_record() -> None:
    assert item_from_record({"id": "a", "input": "x"}, "api") == DatasetItem("a", "x")
    with pytest.raises(DatasetFileError) as caught:
        yaml_record: dict[Any, Any] = {"input": "x", 3: "y"}  # YAML allows keys that are not text
        item_from_record(yaml_record, "evals.yaml dataset[0]")
    assert caught.value.problems == [
        "evals.yaml dataset[0]: a record must be a JSON object with text keys (got an object); "
        'fix: write {"input": "...", "expected": "..."}'
    ]
    with pytest.raises(DatasetFileError) as caught:
        item_from_record({"input": "x", "when": date(2026, 1, 2)}, "evals.yaml dataset[0]")
    assert caught.value.problems == [
        "evals.yaml dataset[0]: `metadata` holds a date, not a JSON value; fix: use text, "
        "numbers, lists and objects"
    ]
    assert isinstance(caught.value, ControlTowerError) and isinstance(caught.value, ValueError)
    with pytest.raises(DatasetFileError) as caught:
        item_from_record({"id": True, "input": 3}, "body item 2")
    assert caught.value.problems == [
        "body item 2: `input` must be text, chat messages or an object (got a number); "
        'fix: write text ("What is 2+2?") or chat messages',
        'body item 2: `id` must be text or a 64-bit integer (got true); fix: write "q-1"',
    ]


# --- exporting --------------------------------------------------------------------------

ITEMS = [
    DatasetItem(
        "q1",
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}],
        expected="4",
    ),
    DatasetItem(
        "q2",
        "Capital of the Netherlands?",
        expected="Amsterdam",
        metadata={"ideal": ["Amsterdam", "The Hague"]},
    ),
    DatasetItem("q3", "Name a prime", metadata={"cat": "math"}),
    DatasetItem("q4", variables={"city": "Paris"}, expected="France"),
    DatasetItem("q5", "Give the answer as JSON", expected={"answer": 42}),
]


def test_export_jsonl_round_trips() -> None:
    data, skipped = dump_jsonl(ITEMS)
    assert skipped == 0
    assert data.splitlines()[2] == b'{"id":"q3","input":"Name a prime","metadata":{"cat":"math"}}'
    again = parse_items(data, "out.jsonl", "jsonl")
    assert again == ITEMS
    assert items_hash(again) == items_hash(ITEMS)


def test_export_openai_evals() -> None:
    data, skipped = dump_jsonl(ITEMS, "openai-evals")
    assert skipped == 1  # q4 has only template variables
    lines = [json.loads(line) for line in data.splitlines()]
    assert lines == [
        {"input": ITEMS[0].input, "ideal": "4"},
        {"input": "Capital of the Netherlands?", "ideal": ["Amsterdam", "The Hague"]},
        {"input": "Name a prime"},
        {"input": "Give the answer as JSON", "ideal": {"answer": 42}},
    ]
    again = parse_items(data, "samples.jsonl", "openai-evals")
    assert [(item.input, item.expected) for item in again[:2]] == [
        (ITEMS[0].input, "4"),
        ("Capital of the Netherlands?", "Amsterdam"),
    ]
    assert again[1].metadata == {"ideal": ["Amsterdam", "The Hague"]}


def test_export_openai_chat_skips_and_counts_items_without_an_answer() -> None:
    data, skipped = dump_jsonl(ITEMS, "openai-chat")
    assert skipped == 2  # q3 has no expected answer, q4 no prompt
    assert data.decode().splitlines() == [
        '{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"2+2?"},'
        '{"role":"assistant","content":"4"}]}',
        '{"messages":[{"role":"user","content":"Capital of the Netherlands?"},'
        '{"role":"assistant","content":"Amsterdam"}]}',
        '{"messages":[{"role":"user","content":"Give the answer as JSON"},'
        '{"role":"assistant","content":"{\\"answer\\":42}"}]}',
    ]


def test_an_unknown_export_format() -> None:
    with pytest.raises(ValueError, match="unknown export format 'yaml': use one of jsonl"):
        dump_jsonl(ITEMS, "yaml")


def test_items_hash_ignores_key_and_item_order() -> None:
    one = DatasetItem("a", {"x": 1, "y": [1, 2]}, metadata={"k": 1, "j": 2})
    same = DatasetItem("a", {"y": [1, 2], "x": 1}, metadata={"j": 2, "k": 1})
    other = DatasetItem("b", "text")
    assert items_hash([one, other]) == items_hash([other, same])
    assert items_hash([one]) != items_hash([DatasetItem("a", {"x": 1, "y": [2, 1]})])
    assert items_hash([one]) != items_hash([one, other])
    assert len(items_hash([])) == 64


# --- problems ---------------------------------------------------------------------------


def test_every_problem_of_a_file_at_once() -> None:
    text = (
        '{"input": "ok"}\n'
        '{"input": [{"role": "bot", "content": 1}], "expeted": "4"}\n'
        "{bad json\n"
        '{"input": "x", "n": 1e400, "big": 18446744073709551616}\n'
        '{"input": "x", "a": 1, "a": 2}\n'
        "[1, 2]\n"
        '{"metadata": []}\n'
    )
    assert problems_of(text, "jsonl") == [
        "d.jsonl:2: unknown key 'expeted': is it a misspelt `expected`?; fix: rename it to "
        "`expected`, or move it into `metadata`",
        "d.jsonl:2: `input[0].role` is 'bot'; fix: use one of system, developer, user, "
        "assistant, tool",
        'd.jsonl:2: `input[0].content` must be text (got a number); fix: write "content": "..." '
        "(or a list of content parts)",
        "d.jsonl:3: not valid JSON: Expecting property name enclosed in double quotes (column 2);"
        " fix: make each line one complete JSON object (a pretty-printed array is a .json file)",
        "d.jsonl:4: the number 1e400 is too large for a double; fix: write it as text",
        "d.jsonl:5: the key 'a' appears twice in one object; fix: keep one",
        "d.jsonl:6: a record must be a JSON object with text keys (got a list); fix: write "
        '{"input": "...", "expected": "..."}',
        'd.jsonl:7: `metadata` must be an object (got a list); fix: write {"k": "v"}',
        'd.jsonl:7: the record has neither an `input` nor `variables`; fix: add "input": '
        '"..." (or "variables": {...} for a prompt template)',
    ]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (
            '{"input": "x", "n": 18446744073709551616}',
            "the integer 18446744073709551616 does not fit in 64 bits; fix: write it as text",
        ),
        (
            '{"input": "x", "n": -9223372036854775809}',
            "the integer -9223372036854775809 does not fit in 64 bits; fix: write it as text",
        ),
        (
            '{"input": "x", "n": ' + "9" * 5000 + "}",
            "the integer 999999999999999999999999999999 does not fit in 64 bits; fix: write it as "
            "text",
        ),
        ('{"input": "x", "n": NaN}', "`NaN` is not JSON; fix: write null, a number or text"),
        (
            '{"input": "x", "n": -Infinity}',
            "`-Infinity` is not JSON; fix: write null, a number or text",
        ),
        (
            '{"input": "\\ud800"}',
            "`input` holds a lone UTF-16 surrogate, which is not text; fix: remove it",
        ),
        (
            '{"input": "x", "metadata": ' + '{"a": ' * 64 + "1" + "}" * 64 + "}",
            "`metadata` is nested deeper than 64 levels; fix: flatten it",
        ),
        (
            '{"input": "x", "metadata": ' + "[" * 5000 + "]" * 5000 + "}",
            "the JSON is nested deeper than 64 levels; fix: flatten it",
        ),
        ('{"input": []}', '`input` is an empty list of messages; fix: add {"role": "user", ...}'),
        (
            '{"input": [3]}',
            '`input[0]` must be a chat message (got a number); fix: write {"role": "user", '
            '"content": "..."}',
        ),
        (
            '{"input": [{"content": "x"}]}',
            "`input[0].role` is missing; fix: use one of system, developer, user, assistant, tool",
        ),
        (
            '{"question": [{"role": "user"}]}',
            '`question[0].content` must be text (got null); fix: write "content": "..." (or a list'
            " of content parts)",
        ),
        (
            '{"input": 1.5}',
            "`input` must be text, chat messages or an object (got a number); fix: write text "
            '("What is 2+2?") or chat messages',
        ),
        ('{"variables": [1]}', '`variables` must be an object (got a list); fix: write {"x": 1}'),
        (
            '{"input": "x", "id": 1.5}',
            '`id` must be text or a 64-bit integer (got a number); fix: write "q-1"',
        ),
        ('{"input": "x", "id": " a"}', "`id` ' a' is empty or has spaces around it; fix: trim it"),
        ('{"input": "x", "id": ""}', "`id` '' is empty or has spaces around it; fix: trim it"),
        (
            '{"input": "x", "id": "' + "a" * 201 + '"}',
            "`id` '" + "a" * 56 + "... is too long or holds "
            "control characters; fix: shorten it to at most 200 characters, without line breaks",
        ),
        (
            '{"input": "x", "id": "a\\nb"}',
            "`id` 'a\\nb' is too long or holds control characters; fix: shorten it to at most 200 "
            "characters, without line breaks",
        ),
        (
            '{"question": "a", "prompt": "b"}',
            "`question` and `prompt` could each be `input`; fix: rename one to `input`",
        ),
        (
            '{"input": "x", "cat": 1, "metadata": {"cat": 2}}',
            "`cat` is a key of both the record and its metadata; fix: keep one",
        ),
        (
            '{"input": "x", "Input": "y"}',
            "unknown key 'Input': is it a misspelt `input`?; fix: rename it to `input`, or move it "
            "into `metadata`",
        ),
        (
            '{"input": "x", "ideal": []}',
            "`ideal` is an empty list; fix: give at least one acceptable answer",
        ),
        (
            '{"input": "x", "ideal": ["a", "b"], "metadata": {"ideal": 1}}',
            "`ideal` is also a key of the metadata; fix: rename that key",
        ),
    ],
)
def test_record_problems(line: str, problem: str) -> None:
    assert only_problem(line + "\n") == f"d.jsonl:1: {problem}"


def test_duplicate_ids_name_both_lines() -> None:
    text = '{"id": "a", "input": "x"}\n{"input": "y"}\n{"id": "a", "input": "z"}\n{"input": "y"}\n'
    assert problems_of(text, "jsonl") == [
        "d.jsonl:3: the id 'a' is also the id of line 1; fix: give each record its own `id`",
        "d.jsonl:4: the same record as line 2 (a record without an `id` gets one from its "
        "content); fix: remove the copy, or give each record its own `id`",
    ]
    assert only_problem('[{"id": 1, "input": "x"}, {"id": "1", "input": "y"}]', "json") == (
        "d.jsonl:1: item 1: the id '1' is also the id of line 1 (item 0); fix: give each record "
        "its own `id`"
    )


def test_bytes_problems_name_the_line() -> None:
    data = b'{"input": "ok"}\n{"input": "caf\xe9"}\n\xff\n'
    assert problems_of(data, "jsonl") == [
        "d.jsonl:2: byte 15 of the line (0xe9) is not UTF-8; fix: save the file as UTF-8 text "
        "(it may be Latin-1 or Windows-1252)",
        "d.jsonl:3: byte 1 of the line (0xff) is not UTF-8; fix: save the file as UTF-8 text (it "
        "may be Latin-1 or Windows-1252)",
    ]
    assert only_problem(b'{"input": "a"}\n{"in\x00put": 1}\n' * 3) == (
        "d.jsonl:2: the file holds NUL bytes: it is binary, not text; fix: save the file as UTF-8 "
        "text"
    )
    utf16 = '{"input": "a"}\n'.encode("utf-16")
    assert (
        only_problem(utf16)
        == "d.jsonl:1: the file is UTF-16 text; fix: save the file as UTF-8 text"
    )


def test_a_line_over_8_mib_is_refused_and_reading_goes_on() -> None:
    huge = b'{"input": "' + b"x" * (8 * 1024 * 1024) + b'"}\n'
    data = b'{"input": "a"}\n' + huge + b'{"input": "b", "id": 5.5}\n'
    assert problems_of(data, "jsonl") == [
        "d.jsonl:2: the line is longer than 8 MiB; fix: keep large values out of the dataset "
        "(store a path or a URL instead)",
        'd.jsonl:3: `id` must be text or a 64-bit integer (got a number); fix: write "q-1"',
    ]


def test_problems_are_capped() -> None:
    text = "not json\n" * 60
    found = problems_of(text, "jsonl")
    assert len(found) == 51 and found[-1] == "... and 10 more problems"
    assert found[49].startswith("d.jsonl:50: not valid JSON")


def test_json_array_problems() -> None:
    assert only_problem('{"input": "x"}', "json", "d.json") == (
        "d.json:1: a JSON dataset must be an array of items; fix: wrap the items in [ ... ], or "
        "write JSONL: one object a line"
    )
    assert only_problem('[\n{"input": "x"},\n{"input": }\n]', "json", "d.json") == (
        "d.json:3: item 1: not valid JSON: Expecting value (column 11); fix: check the JSON"
    )
    assert only_problem('[{"input": "x"} {"input": "y"}]', "json", "d.json") == (
        "d.json:1: expected `,` or `]` after an item; fix: check the JSON"
    )
    assert only_problem('[{"input": "x"}] extra', "json", "d.json") == (
        "d.json:1: text after the closing `]`; fix: remove it"
    )
    assert only_problem('[\n  {"input": "x"},\n  {"input": 1}\n]', "json", "d.json") == (
        "d.json:3: item 1: `input` must be text, chat messages or an object (got a number); "
        'fix: write text ("What is 2+2?") or chat messages'
    )


def test_csv_problems_name_the_physical_line() -> None:
    text = 'input,expected\n"multi\nline",1\nx,2,3\n"two\nlines"\n,4\n'
    assert problems_of(text, "csv", "d.csv") == [
        "d.csv:4: the row has 3 cells, the header 2; fix: quote cells that hold commas; give "
        "each column a cell",
        "d.csv:5: the row has 1 cell, the header 2; fix: quote cells that hold commas; give "
        "each column a cell",
        'd.csv:7: the record has neither an `input` nor `variables`; fix: add "input": "..." '
        '(or "variables": {...} for a prompt template)',
    ]
    assert problems_of('input,expected\na,1\n"b,2\nc,3\n', "csv", "d.csv") == [
        "d.csv:3: a quoted cell is not closed (or a cell is longer than 8 MiB); fix: close the "
        'quote; a quote inside a quoted cell is doubled ("")'
    ]
    assert problems_of('input\n"a"b\n', "csv", "d.csv") == [
        "d.csv:2: malformed CSV (',' expected after '\"'); fix: quote cells that hold commas, "
        "quotes or line breaks, and double the quotes inside"
    ]
    assert problems_of("input,,input\n1,2,3\n", "csv", "d.csv") == [
        "d.csv:1: column 2 has no name; fix: name it, or delete it",
        "d.csv:1: two columns are named 'input'; fix: rename one",
    ]
    assert problems_of("question,prompt\n1,2\n", "csv", "d.csv") == [
        "d.csv:1: `question` and `prompt` could each be `input`; fix: rename one to `input`"
    ]
    assert problems_of('input,metadata\nx,"{""a"": 1"\n', "csv", "d.csv") == [
        'd.csv:2: `metadata` must be an object (got text); fix: write {"k": "v"}'
    ]


def test_promptfoo_header_and_cell_problems() -> None:
    header = (
        "q,_expected,__config:__expected:foo,__config:__expected3:threshold,"
        "__metadata:promptfoo,__metadata:\n1,2,3,4,5,6\n"
    )
    assert problems_of(header, "promptfoo-csv", "t.csv") == [
        "t.csv:1: column `_expected` has one leading underscore; fix: use `__expected`",
        "t.csv:1: `__config:__expected:foo`: `__config` sets only an assertion's threshold; fix: "
        "write `__config:__expected:threshold`",
        "t.csv:1: `__config:__expected3:threshold` names no `__expected` column of this file; "
        "fix: name one of the file's `__expected` columns",
        "t.csv:1: `__metadata:promptfoo` would overwrite `metadata.promptfoo`; fix: rename it",
        "t.csv:1: `__metadata:` names no key; fix: write `__metadata:KEY`",
    ]
    cells = "q,__expected,__threshold,__config:__expected:threshold\na,b,high,0.5\nc,d,0.5,inf\n"
    assert problems_of(cells, "promptfoo-csv", "t.csv") == [
        "t.csv:2: `__threshold` must be a number (got 'high'); fix: write e.g. 0.8",
        "t.csv:3: `__config:__expected:threshold` must be a number (got 'inf'); fix: write e.g. "
        "0.8",
    ]


def test_unreadable_files_and_formats(tmp_path: Path) -> None:
    with pytest.raises(DatasetFileError) as caught:
        read_items(tmp_path / "missing.jsonl")
    assert caught.value.problems == [
        f"{tmp_path / 'missing.jsonl'}: cannot read the file (No such file or directory); fix: "
        "check the path and its permissions"
    ]
    assert only_problem("{}", "yaml") == (
        "d.jsonl: unknown dataset format 'yaml'; fix: use one of jsonl, csv, json, openai-evals, "
        "promptfoo-csv"
    )


# --- properties -------------------------------------------------------------------------

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
MESSAGES = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["system", "user", "assistant"]), "content": st.text(max_size=30)}
    ),
    min_size=1,
    max_size=4,
)
ITEM_STRATEGY = st.builds(
    DatasetItem,
    id=st.text(alphabet=st.characters(categories=["L", "N", "P"]), min_size=1, max_size=30),
    input=st.text(max_size=40) | MESSAGES | st.dictionaries(st.text(max_size=8), JSON_VALUES),
    variables=st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=4),
    expected=JSON_VALUES,
    metadata=st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=4),
)


def never_crashes(data: str | bytes, fmt: str) -> None:
    try:
        items = parse_items(data, "fuzz", fmt)
    except DatasetFileError as exc:
        assert exc.problems and all(problem.startswith("fuzz") for problem in exc.problems)
    else:
        assert all(isinstance(item, DatasetItem) for item in items)
        dump_jsonl(items)  # whatever was read can be written and hashed
        items_hash(items)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300) | st.binary(max_size=300), st.sampled_from(FORMATS))
def test_arbitrary_text_and_bytes_never_crash(data: str | bytes, fmt: str) -> None:
    never_crashes(data, fmt)


@settings(max_examples=100)
@given(st.lists(JSON_VALUES, max_size=5), st.sampled_from(FORMATS))
def test_arbitrary_json_lines_never_crash(values: list[Any], fmt: str) -> None:
    never_crashes("\n".join(json.dumps(value) for value in values), fmt)
    never_crashes(json.dumps(values), fmt)


@settings(max_examples=100)
@given(
    st.lists(st.lists(st.text(max_size=12), min_size=1, max_size=5), max_size=5),
    st.sampled_from(["csv", "promptfoo-csv"]),
)
def test_arbitrary_csv_tables_never_crash(rows: list[list[str]], fmt: str) -> None:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    never_crashes(out.getvalue(), fmt)


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ITEM_STRATEGY, max_size=5, unique_by=lambda item: item.id))
def test_arbitrary_items_round_trip(items: list[DatasetItem]) -> None:
    items = [item for item in items if item.input is not None or item.variables]
    data, skipped = dump_jsonl(items)
    assert skipped == 0
    again = parse_items(data, "round.jsonl", "jsonl")
    assert again == items
    assert items_hash(again) == items_hash(items)
    assert items_hash(list(reversed(again))) == items_hash(items)
