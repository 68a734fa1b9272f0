"""Shared pieces of the report-page tests: the links a page is rendered with, storing a
finished analysis directly, parsing a page into the parts a reader (or a screen reader)
would see."""

from __future__ import annotations

from html.parser import HTMLParser

from sqlalchemy.orm import sessionmaker

from agent.models import Analysis
from agent.page import PageLinks
from agent.snapshot import Snapshot
from evals.bench_page import store_finished

# The links a page rendered outside the service is given (the service's routes give its own).
LINKS = PageLinks(json_href="/analyses/an-test-1/analysis.json", feedback_action="/f")


def store_done(sessions: sessionmaker, analysis: Analysis, material: Snapshot | None = None) -> str:
    """Store ``analysis`` as a finished job (as a worker would), with its chart data."""
    store_finished(sessions, analysis, material)
    return analysis.id


class Page(HTMLParser):
    """A page as parsed: element names, attributes, headings, the visible text, and the
    text inside each ``<bdi>``."""

    VOID = frozenset({"meta", "link", "br", "img", "input", "hr", "col", "source", "wbr"})

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str, str | None]] = []
        self.headings: list[str] = []
        self.bdi: list[str] = []
        self.text: list[str] = []
        self.open: list[str] = []
        self._heading: list[str] | None = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend((tag, name, value) for name, value in attrs)
        if tag in ("h1", "h2", "h3"):
            self._heading = []
        if tag == "bdi":
            self.bdi.append("")
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend((tag, name, value) for name, value in attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h1", "h2", "h3") and self._heading is not None:
            self.headings.append(f"{tag}:{''.join(self._heading).strip()}")
            self._heading = None
        if self.open and self.open[-1] == tag:
            self.open.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._heading is not None:
            self._heading.append(data)
        if "bdi" in self.open and self.bdi:
            self.bdi[-1] += data

    @property
    def visible(self) -> str:
        return "".join(self.text)
