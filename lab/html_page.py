"""The head every generated HTML report shares (evaluation, PhysioNet 2012): one place for its markup and style."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape


def page(title: str, body: Iterable[str], *, width_px: int, img_percent: int, pre_font_px: int | None = None) -> str:
    """A report page: ``body`` are the lines after ``<body>`` (the caller closes ``</body></html>``)."""
    pre_font = f";font-size:{pre_font_px}px" if pre_font_px else ""
    return "\n".join([
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>",
        f"<style>body{{font-family:sans-serif;max-width:{width_px}px;margin:2em auto}}pre{{background:#f6f6f6;"
        f"padding:1em;overflow-x:auto{pre_font}}}img{{max-width:{img_percent}%}}</style></head><body>",
        *body,
    ])


def rule_items(rules: Mapping[str, str]) -> list[str]:
    """Each rule as ``<li><b>name</b>: text</li>``."""
    return [f"<li><b>{escape(k)}</b>: {escape(v)}</li>" for k, v in rules.items()]
