"""The integration harness itself: its load loop must count a dropped connection as a failed request, and a client
thread that dies must fail the run. Both checked against raw sockets on 127.0.0.1 and a pytest subprocess."""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway_harness import LoadLoop, http_json, wait_for

REPO = Path(__file__).resolve().parents[2]
OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"


def _read_request(conn: socket.socket) -> None:
    """Everything the client sends (headers and body), so what follows cannot race the client's write."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return
        body += chunk


class ScriptedServer:
    """Answers the n-th connection as ``script[n % len(script)]`` says: ``ok`` (200 JSON), ``reset`` (RST after
    reading the request), ``close`` (FIN with no answer) or ``silent`` (keeps the connection, never answers)."""

    def __init__(self, script: list[str]) -> None:
        self.script = script
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)  # so the accept loop notices ``stop``
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.stop = threading.Event()
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        n = 0
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            conn.settimeout(10)
            self._answer(conn, self.script[n % len(self.script)])
            n += 1

    def _answer(self, conn: socket.socket, how: str) -> None:
        try:
            _read_request(conn)
        except OSError:
            conn.close()
            return
        if how == "silent":
            self.held.append(conn)
            return
        if how == "ok":
            conn.sendall(OK)
        elif how == "reset":  # linger 0: close() sends RST instead of FIN
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()

    def __enter__(self) -> ScriptedServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)
        for conn in self.held:
            conn.close()
        self.sock.close()


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[ScriptedServer]:
    with ScriptedServer(request.param) as srv:
        yield srv


@pytest.mark.parametrize("server", [["reset"], ["close"]], indirect=True)
def test_http_json_raises_on_a_dropped_connection(server: ScriptedServer) -> None:
    """Why the old load loop was blind: it called ``http_json`` (which catches only ``HTTPError``) with no
    ``except`` around it, so a reset or a close with no answer raised inside the client thread, the thread died,
    and the request never reached ``codes``: ``set(load.codes) == {200}`` stayed true over the survivors."""
    with pytest.raises(ConnectionResetError):  # (RemoteDisconnected is a ConnectionResetError)
        http_json(server.url + "/v1/chat/completions", {"model": "m"}, timeout=10)


@pytest.mark.parametrize("server", [["ok", "reset", "close"]], indirect=True)
def test_load_loop_records_resets_and_closes_as_failed_requests(server: ScriptedServer) -> None:
    """With the old loop this run would have ended with ``codes == [200]`` and a dead thread; now every request,
    dropped or not, is one entry, named, and the reason is kept for the assertion message."""
    with LoadLoop(server.url, clients=1, max_requests=6, timeout_s=10) as load:
        wait_for(load.done, 60, "the clients to reach their count bound")
    assert load.codes == [200, "ConnectionResetError", "RemoteDisconnected"] * 2
    assert [code for code, _ in load.failures] == ["ConnectionResetError", "RemoteDisconnected"] * 2
    assert all(reason for _, reason in load.failures)
    assert set(load.codes) != {200}
    message = load.describe()
    assert "'ConnectionResetError': 2" in message and "RemoteDisconnected(" in message


@pytest.mark.parametrize("server", [["silent"]], indirect=True)
def test_load_loop_records_timeouts_and_stops_at_its_count_bound(server: ScriptedServer) -> None:
    with LoadLoop(server.url, clients=2, max_requests=4, timeout_s=0.3) as load:
        wait_for(load.done, 60, "the clients to reach their count bound")
    assert load.codes == ["TimeoutError"] * 4, load.describe()
    wait_for(lambda: len(server.held) >= 4, 30, "the server to have read the four requests")
    assert len(server.held) == 4  # each reached the server and was never answered; none was sent twice


def test_load_loop_names_a_refused_connection() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    with LoadLoop(url, clients=1, max_requests=2, timeout_s=10) as load:
        wait_for(load.done, 60, "the client to reach its count bound")
    assert load.codes == ["ConnectionRefusedError"] * 2, load.describe()


def test_load_loop_stops_at_its_time_bound() -> None:
    with ScriptedServer(["ok"]) as srv, LoadLoop(srv.url, clients=1, max_s=0.0, timeout_s=10) as load:
        wait_for(load.done, 30, "the client to see its time bound passed")
        assert load.codes == []


THREAD_DIES = """
import threading

def test_a_client_thread_dies():
    worker = threading.Thread(target=lambda: {}["missing"])
    worker.start()
    worker.join()
"""


def _pytest_exit_code(test_dir: Path, ini: Path) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", str(ini), "--rootdir",
         str(test_dir), str(test_dir / "test_thread_dies.py")],
        capture_output=True, text=True, timeout=120, check=False, cwd=test_dir,
    )
    return done.returncode, done.stdout + done.stderr


def test_an_unhandled_thread_exception_fails_the_run_under_the_repo_config(tmp_path: Path) -> None:
    """The repo's ``filterwarnings`` turns ``PytestUnhandledThreadExceptionWarning`` into an error; without it
    (the control: an empty config) pytest only warns and the run passes."""
    (tmp_path / "test_thread_dies.py").write_text(textwrap.dedent(THREAD_DIES))
    code, out = _pytest_exit_code(tmp_path, REPO / "pyproject.toml")
    assert code == 1 and "1 failed" in out and "KeyError" in out, out
    empty = tmp_path / "empty.ini"
    empty.write_text("[pytest]\n")
    code, out = _pytest_exit_code(tmp_path, empty)
    assert code == 0 and "1 passed" in out and "PytestUnhandledThreadExceptionWarning" in out, out
