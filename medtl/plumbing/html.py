"""Small HTML building blocks for the self-contained reports (tables, inline images, page shell)."""

from __future__ import annotations

import html
import math

PAGE_STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}.warn{background:#fff4e5;border-left:4px solid #f0a030;padding:.5em 1em}
.verdict{font-size:1.2em;font-weight:600}pre{background:#f7f7f7;padding:1em;overflow:auto;font-size:12px}
img{max-width:100%}h2{border-bottom:1px solid #ddd;padding-bottom:.2em}"""


def format_value(value) -> str:
    """Floats with 3 decimals (NaN as a dash), everything else escaped text."""
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.3f}"
    if value is None:
        return "–"
    return html.escape(str(value))


def html_table(header: list[str], rows: list[list]) -> str:
    """A table with a header row."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{format_value(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def html_image(data: str, alt: str) -> str:
    """An inline PNG (base64 ``data``)."""
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def html_page(title: str, heading: str, sections: list[tuple[str, str]]) -> str:
    """A whole page: ``sections`` are (title, HTML body) pairs."""
    body = "".join(f"<h2>{html.escape(name)}</h2>{content}" for name, content in sections)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{PAGE_STYLE}</style></head><body><h1>{html.escape(heading)}</h1>{body}</body></html>")
