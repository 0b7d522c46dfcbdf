"""One self-contained HTML file: the dashboard's page with uPlot, styles, script and the run's data inline."""

from __future__ import annotations

import html as htmllib
import json
from typing import Any

from ebbtide.dashboard.routes import asset

__all__ = ["render_html"]


def _inline_json(payload: dict[str, Any]) -> str:
    # "</" inside a script element would end it early; JSON allows "<\/" for the same string.
    return json.dumps(payload, separators=(",", ":")).replace("</", "<\\/")


def render_html(payload: dict[str, Any]) -> str:
    page = asset("index.html").decode()
    css = asset("uplot.min.css").decode() + "\n" + asset("dashboard.css").decode()
    scripts = (
        f"<script>{asset('uplot.min.js').decode()}</script>\n"
        f"<script>window.EBBTIDE_DATA = {_inline_json(payload)};</script>\n"
        f"<script>{asset('dashboard.js').decode()}</script>"
    )
    head, _, rest = page.partition('<link rel="stylesheet" href="/dashboard/static/uplot.min.css">')
    own_css = '<link rel="stylesheet" href="/dashboard/static/dashboard.css">'
    rest = rest.replace(own_css, f"<style>{css}</style>")
    body, _, tail = rest.partition('<script src="/dashboard/static/uplot.min.js"></script>')
    tail = tail.replace('<script src="/dashboard/static/dashboard.js"></script>', scripts)
    html = head + body + tail
    title = htmllib.escape(str(payload.get("title", "ebbtide report")))
    return html.replace("<title>ebbtide dashboard</title>", f"<title>{title}</title>")
