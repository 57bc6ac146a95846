"""Property tests of the parsers of outside input added for issue 8."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from controltower.errors import InvalidRequest
from controltower.providers.scrub import MASK, Scrubber
from controltower.server.requests import CHAT_PARAMETERS, check_chat

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
parameter_names = st.sampled_from(sorted(CHAT_PARAMETERS))


@given(st.dictionaries(parameter_names | st.text(max_size=8), json_values, max_size=6))
def test_check_chat_accepts_or_names_a_field(fields: dict[str, Any]) -> None:
    body = {"model": "fast", "messages": [{"role": "user", "content": "hi"}], **fields}
    try:
        check_chat(body)
    except InvalidRequest as exc:
        assert exc.status == 400 and isinstance(exc.param, str)
        assert exc.param.split("[")[0] in body or exc.param == "messages"
        return
    for name, (accepts, _) in CHAT_PARAMETERS.items():
        if body.get(name) is not None:
            assert accepts(body[name]), name


@given(st.text(max_size=40), st.text(max_size=40))
def test_the_key_never_survives_scrubbing(before: str, after: str) -> None:
    key = "sk-live-0123456789abcdef"
    scrubbed = Scrubber([key]).text(f"{before}{key}{after}")
    assert key not in scrubbed and MASK in scrubbed
