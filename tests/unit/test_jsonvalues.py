"""The cheap checks validation runs first decide as the full checks do."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.domain import jsonvalues, validation
from audit.domain.events import canonical_metadata
from audit.domain.validation import parse_event


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="0123456789.", max_size=16) | st.ip_addresses(v=4).map(str))
def test_the_ipv4_pattern_takes_only_what_ipaddress_takes(text: str) -> None:
    if jsonvalues.IPV4_RE.fullmatch(text):
        assert isinstance(ipaddress.ip_address(text), ipaddress.IPv4Address)
    elif text.count(".") == 3 and all(p.isdigit() and str(int(p)) == p for p in text.split(".")):
        # Only out-of-range parts are left to ipaddress (which refuses them too).
        with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
            ipaddress.ip_address(text)


text = st.text(max_size=6) | st.sampled_from(["a\x00", "\ud800", "\U0001f600", "é"])
values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**60), 2**60)
    | st.floats()
    | st.sampled_from([9007199254740992.0, 1e21, -0.0])
    | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=12,
)


def _outcome(metadata: Any) -> Any:
    try:
        event = parse_event({"action": "a", "actor": {"id": "u"}, "metadata": metadata})
    except validation.ValidationFailed as exc:
        return sorted((p.field, p.message) for p in exc.problems)
    return event.metadata, canonical_metadata(event)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(text, values, max_size=4))
def test_quick_metadata_decides_as_the_walk_that_names_every_problem(
    metadata: dict[str, Any],
) -> None:
    quick = _outcome(metadata)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(validation, "quick_metadata", lambda value: None)
        assert _outcome(metadata) == quick


def test_quick_metadata_leaves_deep_nesting_to_the_walk() -> None:
    deep: Any = 1
    for _ in range(40):
        deep = [deep]
    assert jsonvalues.quick_metadata({"x": deep}) is None
    assert jsonvalues.quick_metadata({"x": [1, "b", None, True, {"k": 2.5}]}) is False
    assert jsonvalues.quick_metadata({"x": [1, "b", None, True, {"k": 2}]}) is True
