"""A generated block inside a Markdown page: the text between two marker comments, which a tool rewrites and a test
compares (README's results table, its task-family table)."""
from __future__ import annotations


def _span(text: str, begin: str, end: str) -> tuple[int, int]:
    start, stop = text.find(begin), text.find(end)
    if start < 0 or stop < start:
        raise ValueError(f"no generated-block markers ({begin} ... {end})")
    return start, stop


def replace_block(text: str, begin: str, end: str, block: str) -> str:
    """``text`` with what lies between ``begin`` and ``end`` replaced by ``block``; ValueError without both."""
    start, stop = _span(text, begin, end)
    return text[:start + len(begin)] + "\n" + block + "\n" + text[stop:]


def current_block(text: str, begin: str, end: str) -> str:
    """What lies between ``begin`` and ``end`` now, without the surrounding newlines; ValueError without both."""
    start, stop = _span(text, begin, end)
    return text[start + len(begin):stop].strip("\n")
