"""``build_provider``: the provider ``provider.kind`` names; Ray is imported only when it is selected."""

from __future__ import annotations

from pathlib import Path

from ebbtide.config import Config
from ebbtide.providers.base import Provider
from ebbtide.providers.local import LocalProvider

__all__ = ["build_provider"]


def build_provider(cfg: Config, state_dir: Path) -> Provider:
    """Raises ``RayUnavailable`` (naming ``pip install 'ebbtide[ray]'``) if Ray is selected but absent."""
    if cfg.provider.kind == "ray":
        from ebbtide.providers.ray.provider import RayProvider

        return RayProvider(cfg.provider, state_dir)
    return LocalProvider(state_dir)
