from __future__ import annotations

import pytest

from ebbtide.serve.gateway.errors import ApiError
from ebbtide.serve.gateway.validation import parse_body


def test_valid_chat_and_completion_pass() -> None:
    assert parse_body(b'{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":3}', "chat")["model"]
    assert parse_body(b'{"model":"m","prompt":"x","stream":true}', "completions")["stream"] is True


@pytest.mark.parametrize(
    ("raw", "kind", "param"),
    [
        (b'{"model":"m","prompt":[]}', "completions", "prompt"),
        (b'{"model":"m","messages":[{"content":"x"}]}', "chat", "messages"),
        (b'{"model":"m","messages":[{"role":"user","content":5}]}', "chat", "messages"),
        (b'{"model":"m","messages":[{"role":"u"}],"max_tokens":true}', "chat", "max_tokens"),
        (b'{"model":"m","messages":[{"role":"u"}],"max_tokens":0}', "chat", "max_tokens"),
        (b'{"model":"m","messages":[{"role":"u"}],"temperature":-1}', "chat", "temperature"),
        (b'{"model":"","messages":[{"role":"u"}]}', "chat", "model"),
    ],
)
def test_bad_fields_name_the_param(raw: bytes, kind: str, param: str) -> None:
    with pytest.raises(ApiError) as info:
        parse_body(raw, kind)
    assert info.value.status == 400 and info.value.param == param


def test_invalid_utf8_is_a_400() -> None:
    with pytest.raises(ApiError) as info:
        parse_body(b"\xff\xfe{", "chat")
    assert info.value.code == "invalid_json"
