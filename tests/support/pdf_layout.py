"""Where the words of a printed report landed, by poppler's `pdftotext -bbox`: for the PDF tests' checks that
table text wraps between words, cells do not run into each other and everything stays on the A4 page."""

from __future__ import annotations

import html
import re
import subprocess
import unicodedata
from collections import Counter
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

A4_WIDTH_PT = 595.28
MARGIN_PT = 15 / 25.4 * 72  # report.css: @page margin 18mm 15mm 15mm
EDGE_PT = 2.0
"""Slack at the margins: a glyph's box in pdftotext reaches a little past the ink (e.g. the page footer)."""
PAGE = re.compile(r'<page width="([\d.]+)" height="([\d.]+)">(.*?)</page>', re.S)
WORD = re.compile(r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>')


@dataclass(frozen=True)
class Word:
    page: int
    left: float
    top: float
    right: float
    bottom: float
    text: str


def pdf_words(pdf: Path) -> tuple[list[Word], list[float]]:
    """Every word of every page, and each page's width."""
    layout = subprocess.run(["pdftotext", "-bbox", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    words, widths = [], []
    for number, (width, _, body) in enumerate(PAGE.findall(layout), start=1):
        widths.append(float(width))
        for left, top, right, bottom, text in WORD.findall(body):
            words.append(Word(number, float(left), float(top), float(right), float(bottom), html.unescape(text)))
    return words, widths


class _Text(HTMLParser):
    """The rendered text of a page (what prints), and the text inside its table cells. Inline elements join
    their neighbours' text ("<time>00:00</time>," prints "00:00,"); other elements separate it."""

    HIDDEN = frozenset({"style", "script", "title", "desc", "head"})
    INLINE = frozenset({"a", "abbr", "b", "code", "em", "i", "small", "span", "strong", "sub", "sup", "time", "wbr"})
    VOID = frozenset({"br", "meta", "link", "img", "col", "wbr", "hr", "input"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.cells = 0
        self.text: list[str] = []
        self.cell_text: list[str] = []

    def _boundary(self, tag: str) -> None:
        if tag not in self.INLINE:
            self.text.append(" ")
            self.cell_text.append(" ")

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self._boundary(tag)
        if tag in self.VOID:
            return
        self.stack.append(tag)
        self.cells += tag in ("td", "th")

    def handle_endtag(self, tag: str) -> None:
        self._boundary(tag)
        if tag not in self.stack:
            return
        while self.stack:
            closed = self.stack.pop()
            self.cells -= closed in ("td", "th")
            if closed == tag:
                break

    def handle_data(self, data: str) -> None:
        if any(tag in self.HIDDEN for tag in self.stack):
            return
        self.text.append(data)
        if self.cells:
            self.cell_text.append(data)


def html_words(page: Path) -> tuple[Counter[str], set[str]]:
    """How often each word is printed by the page, and the words of its table cells (Latin script only:
    Chinese names break between any two characters, as they should)."""
    parser = _Text()
    parser.feed(page.read_text(encoding="utf-8"))
    cell_words = "".join(parser.cell_text).split()
    latin = [w for w in cell_words if all(unicodedata.east_asian_width(c) not in "WF" for c in w)]
    return Counter("".join(parser.text).split()), set(latin)


def hyphen_breaks(words: list[Word]) -> list[str]:
    """Words a line break after a hyphen may have split ("RP-2026-10-" / "data-insight"), joined: a break
    there is one the text allows. The rest is on the next line, left of the first part (where its cell
    starts); every such word is taken, since only words ending in a hyphen are joined."""
    joined = []
    for word in words:
        if not word.text.endswith("-"):
            continue
        height = word.bottom - word.top
        joined += [
            word.text + rest.text
            for rest in words
            if rest.page == word.page
            and rest.left < word.left + 1
            and word.bottom - 0.5 < rest.bottom < word.bottom + 1.6 * height
            and rest.top > word.top + 0.5 * height
        ]
    return joined


def layout_problems(page: Path, pdf: Path) -> list[str]:
    """What is wrong with how `page` printed to `pdf`: a table word split across lines (it is missing from
    the PDF's words as often as the page prints it), two words overlapping, a word outside the page margins."""
    printed, widths = pdf_words(pdf)
    counts, cell_words = html_words(page)
    in_pdf = Counter(w.text for w in printed) + Counter(hyphen_breaks(printed))
    problems = [
        f"table word {word!r} printed whole {in_pdf[word]} of {counts[word]} times (split across lines?)"
        for word in sorted(cell_words)
        if in_pdf[word] < counts[word]
    ]
    for word in printed:
        width = widths[word.page - 1]
        if word.left < MARGIN_PT - EDGE_PT or word.right > width - MARGIN_PT + EDGE_PT:
            where = f"{word.left:.0f}–{word.right:.0f} pt"
            problems.append(f"page {word.page}: {word.text!r} at {where} leaves the margins")
    by_page: dict[int, list[Word]] = {}
    for word in printed:
        by_page.setdefault(word.page, []).append(word)
    for words in by_page.values():
        words.sort(key=lambda w: (w.top, w.left))
        for i, a in enumerate(words):
            for b in words[i + 1 :]:
                if b.top >= a.bottom - 0.5:
                    break
                same_line = min(a.bottom, b.bottom) - max(a.top, b.top) > 0.5 * min(a.bottom - a.top, b.bottom - b.top)
                if same_line and min(a.right, b.right) - max(a.left, b.left) > 0.5:
                    problems.append(f"page {a.page}: {a.text!r} and {b.text!r} overlap")
    return problems
