"""``ebbtide stage``: put a config's llama.cpp weights into this node's cache ahead of time.

Run it on every node that will host replicas (on a Ray cluster each node has its own cache); a replica started
there afterwards finds its weights and skips the download. Exit 0 when everything is staged, 1 when anything
failed (the others are still staged), 2 on a bad config or pool name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ebbtide.config import ConfigError, LlamaCppEngineSpec, PoolSpec, load_config

__all__ = ["register", "stage_config"]


def _engines(pool: PoolSpec) -> list[Any]:
    engines: list[Any] = [pool.engine, *(v.engine for v in pool.variants if v.engine is not None)]
    if pool.rollout is not None and pool.rollout.candidate.engine is not None:
        engines.append(pool.rollout.candidate.engine)
    return engines


def _stage_one(spec: LlamaCppEngineSpec, cache_dir: Path | None) -> dict[str, Any]:
    from ebbtide.engines.models import default_model_cache, resolve_model_path
    from ebbtide.weights import WeightsCache, cache_limit_from_env, is_remote, stage_weights

    root = cache_dir or default_model_cache()
    if not is_remote(spec.model):
        path = resolve_model_path(spec.model, cache_dir)  # 'default' is assembled into the cache here
        return {"source": spec.model, "path": str(path), "staged": False, "note": "local file: nothing to fetch"}
    limit = int(spec.cache_limit_gb * 1e9) if spec.cache_limit_gb is not None else cache_limit_from_env()
    staged = stage_weights(spec.model, cache=WeightsCache(root, limit_bytes=limit), sha256=spec.sha256)
    staged.hold.close()  # ahead-of-time staging: the replica takes its own hold when it starts
    return {**staged.report.as_dict(), "staged": True, "note": staged.report.summary()}


def stage_config(pools: list[PoolSpec], cache_dir: Path | None) -> tuple[list[dict[str, Any]], int]:
    """Stage every distinct llama.cpp model of ``pools``; the records and how many failed."""
    from ebbtide.engines.models import ModelNotFoundError
    from ebbtide.weights import StageError

    records: list[dict[str, Any]] = []
    seen: set[tuple[str, str | None]] = set()
    failures = 0
    for pool in pools:
        for spec in _engines(pool):
            if not isinstance(spec, LlamaCppEngineSpec):
                records.append({"pool": pool.name, "source": getattr(spec, "model", ""), "staged": False,
                                "note": f"{spec.kind} engine: it fetches its own weights; nothing staged"})
                continue
            if (spec.model, spec.sha256) in seen:
                continue
            seen.add((spec.model, spec.sha256))
            try:
                records.append({"pool": pool.name, **_stage_one(spec, cache_dir)})
            except (StageError, ModelNotFoundError, ValueError) as exc:
                failures += 1
                records.append({"pool": pool.name, "source": spec.model, "staged": False, "error": str(exc)})
    return records, failures


def register(app: typer.Typer) -> None:
    @app.command("stage")
    def stage(
        config: Annotated[Path, typer.Option("-c", "--config", help="ebbtide.yaml to read.")],
        pool: Annotated[str | None, typer.Option("--pool", help="Only this pool (default: all).")] = None,
        cache_dir: Annotated[
            Path | None, typer.Option("--cache-dir", help="Weights cache (default: EBBTIDE_MODEL_CACHE).")
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON record per model.")] = False,
    ) -> None:
        """Fetch and verify the pools' llama.cpp weights into this node's cache, so replicas start without fetching."""
        try:
            cfg = load_config(config)
        except ConfigError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        names = [p.name for p in cfg.pools]
        if pool is not None and pool not in names:
            typer.echo(f"error: {config}: --pool = {pool!r}: no such pool (have {names})", err=True)
            raise typer.Exit(2)
        chosen = [p for p in cfg.pools if pool is None or p.name == pool]
        records, failures = stage_config(chosen, cache_dir)
        for record in records:
            if as_json:
                typer.echo(json.dumps(record))
            elif "error" in record:
                typer.echo(f"pool {record['pool']}: error: {record['error']}", err=True)
            else:
                typer.echo(f"pool {record['pool']}: {record['source']}: {record['note']}")
        if failures:
            raise typer.Exit(1)
