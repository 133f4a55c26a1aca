"""Numbers as people and machines send them: one rule for every door, command and setting."""

from __future__ import annotations


def whole_number(text: str, *, most: int) -> int | None:
    """``text`` as a whole number from 0 to ``most``, or None. Every door parses numbers it is sent here.

    ASCII digits only: ``str.isdigit`` also accepts "²", which ``int`` refuses, and ``int`` itself accepts
    "٣", " 3" and "1_0", which nobody means as a number. The length check comes first so a
    million-digit string is refused before ``int`` spends time on it.
    """
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(most)):
        return None
    number = int(text)
    return number if number <= most else None
