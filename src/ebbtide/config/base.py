"""What every config section shares: the strict base model (unknown keys rejected, values frozen) and the error."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["ConfigError", "Spec"]


class ConfigError(Exception):
    """A config problem, already phrased for the user (file, field, what is wrong)."""


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
