"""Gateway authentication through the real CLI and a running gateway: revoking the last key never opens it.

Timing contract (issue 13.1): the gateway re-reads the key table's (rows, revoked rows) signature at most once per
``KeyStore.recheck_s`` = 1 s, on the next request. So every request *sent* more than 1 s after a `keys` command
returned is judged on the new table, whatever the machine's speed: the tests assert exactly that, from the client's
monotonic clock (the same clock as the gateway's), and poll only until such a request has been answered.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from ebbtide.providers.local import free_port
from tests.gateway_harness import gateway, http_json, wait_for, write_config

CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
RECHECK_S = 1.0  # KeyStore's default recheck_s, which the gateway uses


class Seen(NamedTuple):
    sent: float  # time.monotonic() when the request was sent
    after_s: float  # seconds after the CLI command returned (negative: sent while it ran)
    who: int  # index into the headers polled
    code: int


def ebbtide(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", "ebbtide", *args], capture_output=True, text=True, timeout=60,
                          check=True).stdout


def poll_around(url: str, headers: list[dict[str, str]], command: Callable[[], object]) -> list[Seen]:
    """Poll with each of ``headers`` in turn while ``command`` runs and after, until a round was sent > RECHECK_S
    after ``command`` returned: ``(sent, seconds after it returned, header index, status)`` for every request.

    Polling *during* the command keeps the gateway's last key-table check recent, so the window the contract
    allows (up to RECHECK_S of stale answers) is really exercised. Bounded: one client thread, a few local requests
    per round, and a 30 s cap that only a hung gateway reaches.
    """
    sent_log: list[tuple[float, int, int]] = []
    returned: list[float] = []

    def poll() -> None:
        hard_stop = time.monotonic() + 30
        while time.monotonic() < hard_stop:
            round_start = time.monotonic()
            for i, h in enumerate(headers):
                sent = time.monotonic()
                sent_log.append((sent, i, http_json(url, CHAT, h)[0]))
            if returned and round_start - returned[0] > RECHECK_S:
                return
            time.sleep(0.01)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        command()
        returned.append(time.monotonic())
    finally:
        poller.join(40)
    assert returned and not poller.is_alive(), "the poll outlived its 30 s cap"
    return [Seen(sent, sent - returned[0], i, code) for sent, i, code in sent_log]


def assert_refused_after_recheck(seen: list[Seen], what: str) -> None:
    late = [s for s in seen if s.after_s > RECHECK_S]
    assert late, "poll_around returns only after a request past the deadline"
    assert all(s.code == 401 for s in late), f"{what}: answered after the recheck deadline: {late}"
    first_401 = {i: round(min((s.after_s for s in seen if s.who == i and s.code == 401), default=float("nan")), 3)
                 for i in sorted({s.who for s in seen})}
    last_200 = max((round(s.after_s, 3) for s in seen if s.code == 200), default=None)
    print(f"{what}: first 401 per caller at {first_401} s after the CLI returned; last 200 sent at {last_200} s")


def test_revoking_the_last_key_refuses_everyone_within_a_second(tmp_path: Path, tiny_gguf_path: Path) -> None:
    state = tmp_path / "state"
    created = json.loads(ebbtide("keys", "create", "--tenant", "acme", "--state-dir", str(state), "--json"))
    auth = {"Authorization": f"Bearer {created['key']}"}
    cfg = write_config(tmp_path / "c.yaml", tiny_gguf_path)
    with gateway(cfg, state, free_port()) as gw:
        url = gw.url + "/v1/chat/completions"
        assert "auth: keys" in gw.log() and "1 key in store, 1 active" in gw.log(), gw.log()
        assert http_json(url, CHAT, auth)[0] == 200
        status, body = http_json(url, CHAT)
        assert status == 401 and body["error"]["code"] == "missing_api_key", body

        seen = poll_around(url, [auth, {}], lambda: ebbtide("keys", "revoke", created["key_id"], "--state-dir",
                                                            str(state)))
        assert_refused_after_recheck(seen, "revoked key, keyless")
        status, body = http_json(url, CHAT, auth)
        assert status == 401 and body["error"]["code"] == "invalid_api_key", body
        status, body = http_json(url, CHAT)
        assert status == 401 and body["error"]["type"] == "authentication_error", body

        again = json.loads(ebbtide("keys", "create", "--tenant", "acme", "--state-dir", str(state), "--json"))
        wait_for(lambda: http_json(url, CHAT, {"Authorization": f"Bearer {again['key']}"})[0] == 200, 30,
                 "a key created after the last was revoked to be accepted")


def test_first_key_created_on_an_open_loopback_gateway_turns_keys_on(tmp_path: Path, tiny_gguf_path: Path) -> None:
    state = tmp_path / "state"
    cfg = write_config(tmp_path / "c.yaml", tiny_gguf_path)
    with gateway(cfg, state, free_port()) as gw:
        url = gw.url + "/v1/chat/completions"
        assert "auth: none (default: loopback bind and no key ever created" in gw.log(), gw.log()
        assert http_json(url, CHAT)[0] == 200, "open: loopback and no key was ever created"

        made: list[str] = []
        seen = poll_around(url, [{}], lambda: made.append(
            ebbtide("keys", "create", "--tenant", "acme", "--state-dir", str(state), "--json")))
        created = json.loads(made[0])
        assert_refused_after_recheck(seen, "keyless after the first key")
        assert http_json(url, CHAT, {"Authorization": f"Bearer {created['key']}"})[0] == 200
        assert "auth: keys (a key was created while running; 1 key in store, 1 active)" in gw.log(), gw.log()

        seen = poll_around(url, [{}, {"Authorization": f"Bearer {created['key']}"}],
                           lambda: ebbtide("keys", "revoke", created["key_id"], "--state-dir", str(state)))
        assert_refused_after_recheck(seen, "never back to open after the switch")


def test_explicit_keys_with_no_key_refuses_everyone_until_one_is_created(
    tmp_path: Path, tiny_gguf_path: Path
) -> None:
    state = tmp_path / "state"
    cfg = write_config(tmp_path / "c.yaml", tiny_gguf_path)
    with gateway(cfg, state, free_port(), "--auth", "keys") as gw:
        url = gw.url + "/v1/chat/completions"
        assert "auth: keys (gateway.auth = keys; 0 keys in store, 0 active)" in gw.log(), gw.log()
        assert "every request gets 401 until" in gw.log()
        status, body = http_json(url, CHAT)
        assert status == 401 and body["error"]["code"] == "missing_api_key", body
        created = json.loads(ebbtide("keys", "create", "--tenant", "acme", "--state-dir", str(state), "--json"))
        wait_for(lambda: http_json(url, CHAT, {"Authorization": f"Bearer {created['key']}"})[0] == 200, 30,
                 "the new key to be accepted")


def serve_refused(tmp_path: Path, config: Path, *args: str) -> str:
    """Run `ebbtide serve` expecting a startup refusal (exit 2) before it binds: its output."""
    done = subprocess.run([sys.executable, "-m", "ebbtide", "serve", "-c", str(config), "--port", str(free_port()),
                           "--state-dir", str(tmp_path / "state"), *args], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "COLUMNS": "300"})
    assert done.returncode == 2, done.stdout + done.stderr
    return " ".join((done.stdout + done.stderr).split())


def test_auth_none_on_a_non_loopback_host_is_refused_at_startup(tmp_path: Path, tiny_gguf_path: Path) -> None:
    cfg = write_config(tmp_path / "c.yaml", tiny_gguf_path)
    out = serve_refused(tmp_path, cfg, "--host", "0.0.0.0", "--auth", "none")
    assert "refusing to listen on 0.0.0.0 with gateway.auth = none" in out and "--insecure" in out, out
    yaml_cfg = tmp_path / "open.yaml"
    yaml_cfg.write_text(cfg.read_text() + "gateway: {host: 0.0.0.0, auth: none}\n")
    assert "gateway.auth = none" in serve_refused(tmp_path, yaml_cfg)


def test_non_loopback_with_every_key_revoked_is_refused_not_opened(tmp_path: Path, tiny_gguf_path: Path) -> None:
    state = tmp_path / "state"
    created = json.loads(ebbtide("keys", "create", "--tenant", "acme", "--state-dir", str(state), "--json"))
    ebbtide("keys", "revoke", created["key_id"], "--state-dir", str(state))
    cfg = write_config(tmp_path / "c.yaml", tiny_gguf_path)
    out = serve_refused(tmp_path, cfg, "--host", "0.0.0.0", "--insecure")
    assert "auth is keys (default: 1 key in store, 0 active) and no API key is active" in out, out
