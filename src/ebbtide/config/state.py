"""The ``state:`` section: where gateways keep what they share (keys, quotas, the fleet registry, decisions).

``sqlite`` (the default) is the embedded store in the state dir: one process, no server. ``redis`` lets several
gateway processes share one Redis: each keeps serving from what it last read, one of them holds the leader lease
and only the leader scales.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ebbtide.config.base import Spec

__all__ = ["StateSpec"]


class StateSpec(Spec):
    backend: Literal["sqlite", "redis"] = Field(
        "sqlite", description="'sqlite': the embedded store in the state dir (one gateway process, no server); "
        "'redis': several gateways share keys, quotas, the replica registry, signals and decisions through `url`, "
        "and one of them (the lease holder) scales.",
    )
    url: str | None = Field(
        None, description="Redis URL for backend 'redis', e.g. redis://127.0.0.1:6379/0 (rediss:// for TLS). "
        "`EBBTIDE_REDIS_URL` overrides.",
    )
    namespace: str = Field("ebbtide", min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$",
                           description="Prefix of every Redis key (several deployments may share one Redis).")
    lease_ttl_s: float = Field(6.0, ge=1.0, description="Leader lease: lapses this long after its last renewal; a "
                               "follower then takes over (renewed every lease_ttl_s / 3).")
    sync_interval_s: float = Field(0.25, gt=0, le=5.0, description="How often a gateway publishes its signals and "
                                   "re-reads the registry, keys and the lease from Redis.")
    timeout_s: float = Field(0.5, gt=0, description="Redis socket timeout; a gateway that cannot reach Redis keeps "
                             "serving from what it last read (see docs/operations.md).")

    @model_validator(mode="after")
    def _url_for_redis(self) -> StateSpec:
        if self.backend == "redis" and not self.url:
            raise ValueError("state.url: required with backend 'redis' (e.g. redis://127.0.0.1:6379/0)")
        if self.url is not None and not self.url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"state.url = {self.url!r}: expected redis://HOST:PORT/DB, rediss://... or unix://PATH")
        if self.lease_ttl_s < 3 * self.sync_interval_s:
            raise ValueError(f"state.lease_ttl_s = {self.lease_ttl_s:g}: must be at least 3 × sync_interval_s "
                             f"({self.sync_interval_s:g}) so the holder renews it in time")
        return self
