"""The app's text colours are readable (issue 14: the amber was 4.24:1): each colour of app.css's
:root has a WCAG contrast of at least 4.5:1 on white and on the page background."""

from __future__ import annotations

import re
from pathlib import Path

CSS = Path(__file__).resolve().parents[2] / "controller" / "static" / "app.css"


def luminance(hex_colour: str) -> float:
    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else float(((c + 0.055) / 1.055) ** 2.4)
    r, g, b = (int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(a: str, b: str) -> float:
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_text_colours_reach_4_5_to_1() -> None:
    root = dict(re.findall(r"--(\w+):(#[0-9a-fA-F]{6})", CSS.read_text().split("}", 1)[0]))
    text = {k: v for k, v in root.items() if k in ("ok", "warn", "bad", "mute", "red")}
    assert set(text) == {"ok", "warn", "bad", "mute", "red"}, root
    low = {k: round(contrast(v, bg), 2) for k, v in text.items() for bg in ("#ffffff", root["bg"])
           if contrast(v, bg) < 4.5}
    assert not low, low
