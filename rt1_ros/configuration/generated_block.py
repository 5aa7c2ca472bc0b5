"""A generated block inside a Markdown page: the text between two marker comments, which a tool rewrites and a test
compares (README's results table, its task-family table)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class GeneratedBlock:
    begin: str  # the marker comment line before the block
    end: str  # the one after it

    def _span(self, text: str) -> tuple[int, int]:
        start, stop = text.find(self.begin), text.find(self.end)
        if start < 0 or stop < start:
            raise ValueError(f"no generated-block markers ({self.begin} ... {self.end})")
        return start, stop

    def replace(self, text: str, block: str) -> str:
        """``text`` with what lies between the markers replaced by ``block``; ValueError without both."""
        start, stop = self._span(text)
        return text[:start + len(self.begin)] + "\n" + block + "\n" + text[stop:]

    def current(self, text: str) -> str:
        """What lies between the markers now, without the surrounding newlines; ValueError without both."""
        start, stop = self._span(text)
        return text[start + len(self.begin):stop].strip("\n")

    def write_into(self, page: str | Path, block: str) -> None:
        """Replace the block in the file ``page``; ValueError (no markers) before anything is written."""
        page = Path(page)
        page.write_text(self.replace(page.read_text(encoding="utf-8"), block), encoding="utf-8")
