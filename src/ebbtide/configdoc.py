"""Render the config reference (docs/config.md) from the pydantic models, so it cannot drift from the code."""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from ebbtide.config import Config

__all__ = ["BEGIN", "END", "render_reference"]

BEGIN = "<!-- BEGIN GENERATED: python -m ebbtide.configdoc -->"
END = "<!-- END GENERATED -->"


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        found.extend(_models_in(arg))
    return found


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__name__
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(annotation))
    if origin is typing.Annotated:
        return _type_name(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin is not None:
        inner = ", ".join(_type_name(a) for a in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    return str(annotation)


def _default(info: FieldInfo) -> str:
    if info.default is not PydanticUndefined:
        return f"`{info.default!r}`" if info.default is not None else "none"
    if info.default_factory is not None:
        factory = info.default_factory
        if isinstance(factory, type) and issubclass(factory, BaseModel):
            return "(see section)"
        return f"`{factory()!r}`"  # type: ignore[call-arg]
    return "**required**"


def _constraints(info: FieldInfo) -> str:
    parts = []
    for meta in info.metadata:
        for name in ("gt", "ge", "lt", "le", "min_length", "max_length", "pattern"):
            value = getattr(meta, name, None)
            if value is not None:
                parts.append(f"{name} {value}")
    return ", ".join(parts)


def render_reference() -> str:
    lines = [BEGIN, ""]
    queue: list[tuple[str, type[BaseModel]]] = [("(top level)", Config)]
    seen: set[type[BaseModel]] = set()
    while queue:
        path, model = queue.pop(0)
        if model in seen:
            continue
        seen.add(model)
        kind = model.model_fields.get("kind")
        title = f"`{path}`" + (f" — kind `{kind.default}`" if kind is not None else "")
        lines += [f"### {title}", "", f"_{model.__name__}_", "", "| field | type | default | constraints | meaning |",
                  "|---|---|---|---|---|"]
        for name, info in model.model_fields.items():
            desc = (info.description or "").replace("|", "\\|")
            lines.append(f"| `{name}` | {_type_name(info.annotation).replace('|', 'or')} | {_default(info)} | "
                         f"{_constraints(info)} | {desc} |")
            for sub in _models_in(info.annotation):
                queue.append((f"{path}.{name}" if path != "(top level)" else name, sub))
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


if __name__ == "__main__":
    print(render_reference())
