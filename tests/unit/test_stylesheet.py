"""The stylesheet's own colour pairs meet WCAG AA (4.5:1); tests/browser/test_layout.py measures the pages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

CSS = Path(__file__).resolve().parents[2] / "static" / "css" / "lineage.css"
MIN_CONTRAST = 4.5
HEX = re.compile(r"#(?:[0-9a-fA-F]{6}|[0-9a-fA-F]{3})\b")


def _text() -> str:
    return re.sub(r"/\*.*?\*/", "", CSS.read_text(), flags=re.DOTALL)


def _variables() -> dict[str, str]:
    root = re.search(r":root\s*\{([^}]*)\}", _text())
    assert root is not None
    return dict(re.findall(r"(--[\w-]+)\s*:\s*(#[0-9a-fA-F]{3,6})\b", root.group(1)))


def _colour(value: str, variables: dict[str, str]) -> str | None:
    """A plain hex colour, following var(--name); None for anything else (gradients, rgba, inherit)."""
    value = value.strip()
    var = re.fullmatch(r"var\((--[\w-]+)\)", value)
    if var:
        return variables.get(var.group(1))
    return value if HEX.fullmatch(value) else None


def _rules() -> list[tuple[str, dict[str, str]]]:
    """Every innermost ``selector { declarations }`` block (those inside @media included)."""
    rules = []
    for selector, body in re.findall(r"([^{}]+)\{([^{}]*)\}", _text()):
        declarations = {}
        for item in body.split(";"):
            name, _, value = item.partition(":")
            if value:
                declarations[name.strip()] = value.strip()
        rules.append((selector.strip(), declarations))
    return rules


def _luminance(colour: str) -> float:
    digits = colour.lstrip("#")
    if len(digits) == 3:
        digits = "".join(d * 2 for d in digits)
    channels = [int(digits[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def _declared_pairs() -> list[tuple[str, str, str]]:
    variables = _variables()
    pairs = []
    for selector, declarations in _rules():
        fg = _colour(declarations.get("color", ""), variables)
        background = declarations.get("background-color") or declarations.get("background", "")
        bg = _colour(background, variables)
        if fg and bg:
            pairs.append((selector, fg, bg))
    return pairs


# Text colours on the surfaces they are used on, and each status colour on its own tint.
THEME_PAIRS = [
    *(
        (text, surface)
        for text in ("--fg", "--muted", "--accent", "--accent-dark", "--ok", "--warn", "--bad")
        for surface in ("--bg", "--card")
    ),
    ("--ok", "--ok-bg"),
    ("--warn", "--warn-bg"),
    ("--bad", "--bad-bg"),
]


@pytest.mark.parametrize(("text", "surface"), THEME_PAIRS)
def test_theme_colours_are_readable_on_their_surfaces(text: str, surface: str) -> None:
    variables = _variables()
    assert contrast(variables[text], variables[surface]) >= MIN_CONTRAST


def test_every_rule_that_sets_text_and_background_is_readable() -> None:
    pairs = _declared_pairs()
    assert len(pairs) >= 10  # the parser did find the stylesheet's badges, buttons and flags
    poor = [
        f"{sel}: {fg} on {bg} is {contrast(fg, bg):.2f}:1" for sel, fg, bg in pairs if contrast(fg, bg) < MIN_CONTRAST
    ]
    assert poor == []


def test_the_changed_flag_is_readable() -> None:
    # It was white on amber (2.27:1), the issue that started these checks.
    [(_, fg, bg)] = [pair for pair in _declared_pairs() if pair[0] == ".diff-flag"]
    assert contrast(fg, bg) >= MIN_CONTRAST


def test_contrast_matches_the_wcag_examples() -> None:
    assert contrast("#000", "#fff") == pytest.approx(21.0)
    assert contrast("#777", "#fff") == pytest.approx(4.48, abs=0.01)
