"""Test helpers that ship with the package: a tiny random-weight GGUF for real llama.cpp servers in tests."""

from __future__ import annotations

from ebbtide.testing.tiny_gguf import make_tiny_llama_gguf

__all__ = ["make_tiny_llama_gguf"]
