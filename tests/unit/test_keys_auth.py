"""Auth mode: decided once at startup (none / keys / default), only ever tightened while running."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp.test_utils import make_mocked_request

from ebbtide.config import ConfigError, load_config
from ebbtide.serve.gateway.auth import AuthDecision, AuthRefused, Gatekeeper, decide_auth, is_loopback
from ebbtide.serve.gateway.errors import ApiError
from ebbtide.serve.gateway.keys import KeyStore


class ManualClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def request(key: str | None = None) -> object:
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    return make_mocked_request("POST", "/v1/chat/completions", headers=headers)


def refused_code(gate: Gatekeeper, key: str | None = None) -> str | None:
    """The 401's error code, or None when the request is let through."""
    try:
        gate.caller(request(key))  # type: ignore[arg-type]
    except ApiError as exc:
        assert exc.status == 401
        return exc.code
    return None


@pytest.mark.parametrize(("setting", "host", "total", "active", "mode", "reason"), [
    (None, "127.0.0.1", 0, 0, "none", "default: loopback bind and no key ever created"),
    (None, "::1", 0, 0, "none", "default: loopback bind"),
    (None, "localhost", 0, 0, "none", "default: loopback bind"),
    (None, "127.0.0.1", 3, 1, "keys", "default: 3 keys in store, 1 active"),
    (None, "127.0.0.1", 1, 0, "keys", "default: 1 key in store, 0 active"),  # revoked keys count
    (None, "10.0.0.5", 0, 0, None, "no API key is active"),  # non-loopback, keys, nobody could call
    (None, "0.0.0.0", 2, 2, "keys", "default: 2 keys in store, 2 active"),
    ("keys", "127.0.0.1", 0, 0, "keys", "gateway.auth = keys; 0 keys in store, 0 active"),
    ("keys", "0.0.0.0", 1, 0, None, "no API key is active"),
    ("none", "127.0.0.1", 2, 2, "none", "gateway.auth = none; the 2 keys in store, 2 active are ignored"),
    ("none", "0.0.0.0", 0, 0, None, "with gateway.auth = none"),
])
def test_mode_decision(setting: str | None, host: str, total: int, active: int, mode: str | None,
                       reason: str) -> None:
    if mode is None:
        with pytest.raises(AuthRefused, match=reason):
            decide_auth(setting, host, total, active)  # type: ignore[arg-type]
        return
    decision = decide_auth(setting, host, total, active)  # type: ignore[arg-type]
    assert decision.mode == mode and reason in decision.describe(), decision
    assert decision.describe().startswith(f"auth: {mode} (")
    assert decision.follows_store == (setting is None and mode == "none")


def test_only_the_explicit_insecure_flag_allows_none_on_a_non_loopback_host() -> None:
    decision = decide_auth("none", "0.0.0.0", 0, 0, insecure=True)
    assert decision.mode == "none" and "allowed by --insecure" in decision.reason
    assert not decision.follows_store
    with pytest.raises(AuthRefused, match="--insecure"):
        decide_auth(None, "0.0.0.0", 0, 0, insecure=True)  # --insecure alone never opens: the default is keys
    refused = pytest.raises(AuthRefused, match=r"ebbtide keys create --tenant NAME --state-dir /srv/x")
    with refused:
        decide_auth(None, "0.0.0.0", 1, 0, insecure=True, state_dir="/srv/x")


def test_keys_with_no_active_key_on_loopback_starts_with_a_warning() -> None:
    decision = decide_auth("keys", "127.0.0.1", 0, 0)
    assert decision.warning is not None and "every request gets 401" in decision.warning
    assert decide_auth("keys", "127.0.0.1", 1, 1).warning is None


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("127.8.9.1", True), ("::1", True),
                                                ("localhost", True), ("0.0.0.0", False), ("::", False),
                                                ("192.168.1.4", False), ("example.com", False)])
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_revoking_the_last_key_refuses_everyone(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "ebbtide.db", clock=ManualClock())
    key, record = store.create("acme")
    gate = Gatekeeper(store, decision=decide_auth(None, "127.0.0.1", *store.counts()))
    assert refused_code(gate, key) is None
    assert refused_code(gate) == "missing_api_key"
    store.revoke(record.key_id)
    assert (store.ever_had_keys(), store.has_keys(), store.counts()) == (True, False, (1, 0))
    assert refused_code(gate, key) == "invalid_api_key"
    assert refused_code(gate) == "missing_api_key"
    store.close()


def test_default_none_switches_to_keys_at_the_first_key_and_never_back(tmp_path: Path) -> None:
    clock = ManualClock()
    gateway_store = KeyStore(tmp_path / "ebbtide.db", clock=clock, recheck_s=1.0)
    heard: list[str] = []
    gate = Gatekeeper(gateway_store, decision=decide_auth(None, "127.0.0.1", *gateway_store.counts()),
                      on_change=heard.append)
    assert gate.decision.mode == "none" and refused_code(gate) is None
    cli = KeyStore(tmp_path / "ebbtide.db")  # `ebbtide keys create` in another process
    key, record = cli.create("acme")
    clock.now += 0.999
    assert refused_code(gate) is None, "the gateway learns of the key at its next re-check, ≤ recheck_s"
    clock.now += 0.001
    assert refused_code(gate) == "missing_api_key"
    assert heard == ["auth: keys (a key was created while running; 1 key in store, 1 active)"]
    assert refused_code(gate, key) is None
    cli.revoke(record.key_id)
    clock.now += 1.0
    assert refused_code(gate) == "missing_api_key" and refused_code(gate, key) == "invalid_api_key"
    assert gate.decision.mode == "keys" and len(heard) == 1
    cli.close()
    gateway_store.close()


def test_explicit_none_ignores_keys_created_later(tmp_path: Path) -> None:
    clock = ManualClock()
    store = KeyStore(tmp_path / "ebbtide.db", clock=clock)
    gate = Gatekeeper(store, "batch", decision=decide_auth("none", "127.0.0.1", *store.counts()))
    store.create("acme")
    clock.now += 5
    assert refused_code(gate) is None and gate.decision.mode == "none"
    assert gate.caller(request()).priority_class == "batch"  # type: ignore[arg-type]
    store.close()


def test_keys_mode_needs_a_store() -> None:
    with pytest.raises(ValueError, match="KeyStore"):
        Gatekeeper(None, decision=AuthDecision("keys", "x"))
    assert Gatekeeper(None).decision.mode == "none"


def test_config_accepts_none_or_keys_only(tmp_path: Path) -> None:
    base = "pools: [{name: m}]\n"
    for value in ("none", "keys"):
        (tmp_path / "ok.yaml").write_text(base + f"gateway: {{auth: {value}}}\n")
        assert load_config(tmp_path / "ok.yaml").gateway.auth == value
    (tmp_path / "unset.yaml").write_text(base)
    assert load_config(tmp_path / "unset.yaml").gateway.auth is None
    (tmp_path / "bad.yaml").write_text(base + "gateway: {auth: open}\n")
    with pytest.raises(ConfigError, match=r"gateway\.auth") as err:
        load_config(tmp_path / "bad.yaml")
    assert "bad.yaml" in str(err.value)
