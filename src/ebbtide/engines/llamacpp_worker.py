"""One llama.cpp replica: llama.cpp's own HTTP server run in-process through ``xllamacpp``.

Usage::

    python -m ebbtide.engines.llamacpp_worker --model PATH|URL --port P [--host 127.0.0.1] [--slots N]
        [--threads T] [--ctx-per-slot C] [--lease FILE --lease-timeout S] [--alias NAME]
        [--sha256 HEX] [--model-cache DIR] [--cache-limit-bytes N] [--phases FILE] [--stage-only]
        [-- key=value ...]

A ``--model`` that is an ``s3://`` or ``http(s)://`` URL is first staged into this node's weights cache
(``ebbtide.weights``: verified, resumable, a hit when the node already has it); the worker logs one
``stage-report {json}`` line with the fetch and page-cache timings, then loads the cached file, holding it so
the cache never evicts it while this replica runs.

``--phases FILE``: once the model is loaded the worker writes (atomically) the wall-clock times of its start-up
milestones — ``started`` (this module running), ``engine_import`` (llama.cpp imported), ``weights_staged``
(remote weights staged, or the local file found), ``weights_loaded`` (the server constructed) — plus the stage
report, for the fleet's per-phase cold-start timing. ``--stage-only`` stages remote weights and exits 0 (a warm
standby: the weights on this node's disk, no engine).

``/health`` answers 503 while the model loads, then 200. Extra ``key=value`` arguments set ``CommonParams``
attributes (dotted for nested ones, e.g. ``sampling.temp=0.7``), coerced to the attribute's current type.

Exit codes: 0 after SIGTERM/SIGINT once the model is loaded, at once even with streams open (drain first);
1 when the server cannot start (model load failure, port taken); 2 on bad arguments; 3 when the lease
expired; 4 when remote weights could not be staged. While weights stage and the model loads (the xllamacpp
constructor holds the GIL), SIGTERM/SIGINT keep their default action and end the process immediately (return
code -15/-2): there is nothing to clean up yet (a partial download resumes next time). The lease is likewise
first checked right after the load.

The lease: the controller creates ``FILE`` before launching and touches it periodically. If its mtime gets
older than ``--lease-timeout`` seconds, or it disappears, the worker exits by itself, so no engine outlives a
SIGKILLed controller while a restarted controller can adopt a live replica just by touching the lease again.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

STARTED_AT = time.time()  # the "process start" milestone: the interpreter and the stdlib imports above are done

__all__ = [
    "EXIT_BAD_ARGS",
    "EXIT_LEASE_EXPIRED",
    "EXIT_LOAD_FAILED",
    "EXIT_STAGE_FAILED",
    "apply_extra_args",
    "lease_expired",
    "main",
]

EXIT_LOAD_FAILED = 1
EXIT_BAD_ARGS = 2
EXIT_LEASE_EXPIRED = 3
EXIT_STAGE_FAILED = 4
LEASE_CHECK_INTERVAL_S = 0.5


def _log(msg: str) -> None:
    print(f"ebbtide-worker[{os.getpid()}]: {msg}", file=sys.stderr, flush=True)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"python -m {__spec__.name if __spec__ else __name__}")
    p.add_argument("--model", required=True, help="path to a .gguf file, or an s3:// / http(s):// URL to stage")
    p.add_argument("--sha256", default=None, help="expected sha256 of remote weights")
    p.add_argument("--model-cache", type=Path, default=None, help="weights cache (default: EBBTIDE_MODEL_CACHE)")
    p.add_argument("--cache-limit-bytes", type=int, default=None, help="size cap of the weights cache")
    p.add_argument("--port", required=True, type=int)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--slots", type=int, default=1, help="parallel sequences (n_parallel)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads for generation and prompt batches")
    p.add_argument("--ctx-per-slot", type=int, default=2048, help="n_ctx = slots × this")
    p.add_argument("--lease", type=Path, default=None, help="file whose mtime the controller keeps fresh")
    p.add_argument("--lease-timeout", type=float, default=15.0, help="seconds without a touch before exiting")
    p.add_argument("--alias", default=None, help="model id reported by /v1/models")
    p.add_argument("--phases", type=Path, default=None, help="write start-up milestones here (JSON) once loaded")
    p.add_argument("--stage-only", action="store_true", help="stage remote weights into the cache, then exit 0")
    p.add_argument("extra", nargs="*", help="key=value CommonParams overrides (after --)")
    return p


def _coerce(name: str, raw: str, current: object) -> object:
    if isinstance(current, bool):
        lowered = raw.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{name} = {raw!r}: must be true or false")
    for kind in (int, float):
        if isinstance(current, kind):
            try:
                return kind(raw)
            except ValueError:
                raise ValueError(f"{name} = {raw!r}: must be a {kind.__name__}") from None
    if current is None or isinstance(current, str):
        return raw
    raise ValueError(f"{name}: a {type(current).__name__} setting cannot be set from the command line")


def apply_extra_args(params: Any, extra: Sequence[str]) -> None:
    """Set ``key=value`` pairs on ``params`` (leading dashes dropped, ``-`` read as ``_``).

    Raises ValueError naming the key when it is unknown or its value does not fit the attribute's type.
    """
    for item in extra:
        key, sep, raw = item.partition("=")
        name = key.lstrip("-").replace("-", "_")
        if not sep or not name:
            raise ValueError(f"extra argument {item!r}: expected key=value (e.g. cache_prompt=false)")
        *path, attr = name.split(".")
        target = params
        for part in path:
            if not hasattr(target, part):
                raise ValueError(f"extra argument {item!r}: unknown llama.cpp parameter group {part!r}")
            target = getattr(target, part)
        if attr.startswith("_") or not hasattr(target, attr):
            raise ValueError(f"extra argument {item!r}: unknown llama.cpp parameter {name!r}")
        setattr(target, attr, _coerce(name, raw, getattr(target, attr)))


def lease_expired(lease: Path, timeout_s: float, now: float) -> bool:
    """True when the lease file is gone or was last touched more than ``timeout_s`` before ``now`` (epoch)."""
    try:
        mtime = lease.stat().st_mtime
    except FileNotFoundError:
        return True
    return now - mtime > timeout_s


def _watch_lease(lease: Path, timeout_s: float, stop: threading.Event, reason: list[str]) -> None:
    while not stop.wait(LEASE_CHECK_INTERVAL_S):
        if lease_expired(lease, timeout_s, time.time()):
            reason.append("lease")
            _log(f"lease {lease} not renewed for {timeout_s:g} s: exiting")
            stop.set()


def _build_params(args: argparse.Namespace) -> Any:
    import xllamacpp

    p = xllamacpp.CommonParams()
    p.model.path = str(args.model)
    p.port = args.port
    p.hostnames = [args.host]
    p.n_parallel = args.slots
    p.n_ctx = args.slots * args.ctx_per_slot
    p.cpuparams.n_threads = args.threads
    p.cpuparams_batch.n_threads = args.threads
    p.endpoint_metrics = True
    p.endpoint_slots = True
    if args.alias:
        p.model_alias = args.alias
    apply_extra_args(p, args.extra)
    return p


def _stage_if_remote(args: argparse.Namespace) -> object | None:
    """Stage a remote ``--model`` and point ``args.model`` at the cached file; the result holds the blob."""
    if "://" not in args.model:
        return None  # a local file: start exactly as before, without importing the staging code (~50 ms)
    from ebbtide.weights import StageError, WeightsCache, cache_limit_from_env, is_remote, stage_weights

    if not is_remote(args.model):
        return None
    from ebbtide.engines.models import default_model_cache

    limit = args.cache_limit_bytes if args.cache_limit_bytes is not None else cache_limit_from_env()
    cache = WeightsCache(args.model_cache or default_model_cache(), limit_bytes=limit)
    _log(f"staging {args.model} into {cache.root}")
    try:
        staged = stage_weights(args.model, cache=cache, sha256=args.sha256)
    except StageError as exc:
        _log(f"staging failed: {exc}")
        raise SystemExit(EXIT_STAGE_FAILED) from None
    _log(f"staged {staged.report.summary()}")
    _log("stage-report " + json.dumps(staged.report.as_dict()))
    args.model = staged.path
    return staged


def write_phases(path: Path, milestones: dict[str, float], stage: object | None) -> None:
    """Write the start-up milestones (epoch seconds) atomically, so a reader never sees half a file."""
    record: dict[str, Any] = {"pid": os.getpid(), **milestones}
    report = getattr(stage, "report", None)
    if report is not None:
        record["stage"] = {k: v for k, v in report.as_dict().items() if k in ("fetch_s", "page_cache_s", "cache_hit",
                                                                              "bytes_fetched", "size_bytes")}
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(json.dumps(record))
        os.replace(tmp, path)
    except OSError as exc:  # timing is informative only: never fail a replica over it
        _log(f"cannot write phases to {path}: {exc}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.slots < 1 or args.threads < 1 or args.ctx_per_slot < 1 or args.lease_timeout <= 0:
        parser.error("--slots, --threads, --ctx-per-slot and --lease-timeout must be positive")
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)  # also while staging: a partial download resumes next time
    milestones = {"started": STARTED_AT}
    if args.stage_only:
        staged = _stage_if_remote(args)
        _log("weights staged (--stage-only)" if staged is not None else "local weights: nothing to stage")
        return 0
    import xllamacpp

    milestones["engine_import"] = time.time()
    try:
        staged = _stage_if_remote(args)  # referenced until os._exit: its hold keeps the blob from eviction
        milestones["weights_staged"] = time.time()
        params = _build_params(args)
    except ValueError as exc:
        parser.error(str(exc))

    started = time.perf_counter()
    _log(f"loading {args.model} on {args.host}:{args.port} (slots={args.slots}, threads={args.threads})")
    try:
        server = xllamacpp.Server(params)
    except RuntimeError as exc:
        _log(f"server failed to start (model load or port bind): {exc}")
        return EXIT_LOAD_FAILED
    milestones["weights_loaded"] = time.time()
    if args.phases is not None:
        write_phases(args.phases, milestones, staged)
    code = _run_until_stopped(server, args.lease, args.lease_timeout, time.perf_counter() - started)
    sys.stderr.flush()
    del staged  # documents the lifetime: the hold is dropped only when the process ends
    # llama.cpp's Server destructor waits up to ~30 s for open streams while holding the GIL, and there is
    # nothing to flush (draining is the provider's job, before SIGTERM): end the process now.
    os._exit(code)


def _run_until_stopped(server: object, lease: Path | None, lease_timeout_s: float, load_s: float) -> int:
    """Block while ``server`` (kept referenced here) serves; return the exit code once told to stop.

    llama.cpp answers /health while its constructor is still returning, so "ready" is logged only once the
    handlers below are in place: from that line on, SIGTERM/SIGINT stop the worker cleanly (exit 0). Before it,
    they kill it (the default), which is what a signal during a long model load should do."""
    stop = threading.Event()
    reason: list[str] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        reason.append(signal.Signals(signum).name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    _log(f"ready in {load_s:.2f} s")
    if lease is not None:
        watch_args = (lease, lease_timeout_s, stop, reason)
        threading.Thread(target=_watch_lease, args=watch_args, name="lease", daemon=True).start()
    while not stop.wait(1.0):
        pass
    _log(f"stopping ({reason[0] if reason else 'stop'}) {type(server).__name__}")
    return EXIT_LEASE_EXPIRED if reason and reason[0] == "lease" else 0


if __name__ == "__main__":
    sys.exit(main())
