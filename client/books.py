"""Books in: chapters of an EPUB, a Markdown manuscript or a plain text, as a job's titled inputs.

- EPUB: chapters in spine order, titled from the navigation document (EPUB 3) or NCX (EPUB 2), else the
  first heading; read with EbookLib, the XHTML with lxml. Front and back matter (cover, title page,
  table of contents, copyright, index, bibliography, ...) is recognised by its `epub:type`, its
  landmark/guide entry or its title, and left out unless asked for. The cover image comes along.
- Markdown: a chapter per `#` (or, without any, `##`) heading; the text is rendered by markdown-it-py
  and read back as text, so emphasis, links and code marks are not spoken.
- PDF (with a text layer): read with pypdf; chapters at the document outline's top-level entries (the
  bookmarks a PDF reader shows), else at heading lines as in plain text. Running headers and footers
  (a line repeated at the top or bottom of most pages), bare page numbers and line-end hyphenation are
  removed, and lines are joined into paragraphs. A PDF without text (a scan) is refused: it needs OCR.
- DOCX: a chapter per paragraph in the "Heading 1" style (or "Title"/"Heading 2" without any), read
  with python-docx; the core properties give title and author.
- Plain text: heading lines standing alone ("CHAPTER IV", "Chapter 12: The Storm", "PART TWO",
  "Prologue", a roman or arabic numeral on its own line); a table of contents (headings with no text
  between them) and a Project Gutenberg header and licence are left out.

Footnote and reference marks (`[12]`, `[^3]`, superscript digits, EPUB note references) are removed and
EPUB footnote bodies are not read. A chapter's heading stays in its text (narrators read it: ACX asks
for it) and becomes its `title`. Producers pick chapters by number or title (`select`), and regex
substitutions rewrite the spoken text only, never the titles.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path

from lxml import html as lxml_html

MATTER_TITLES = re.compile(
    r"^\s*(table of contents|contents|index|bibliography|references|works cited|notes|endnotes|footnotes|"
    r"copyright( page)?|title page|half title|cover|dedication|acknowledg(e)?ments?|about the author|"
    r"about the publisher|also by .*|colophon|list of (figures|tables|illustrations)|glossary)\s*$",
    re.IGNORECASE,
)
"""Titles of front and back matter (for books whose markup does not say so)."""
MATTER_TYPES = frozenset(
    {
        "frontmatter", "backmatter", "toc", "index", "bibliography", "cover", "titlepage", "halftitlepage",
        "copyright-page", "colophon", "dedication", "acknowledgments", "loi", "lot", "glossary", "endnotes",
        "footnotes", "rearnotes", "landmarks", "imprint", "imprimatur", "other-credits", "errata",
    }
)  # fmt: skip
"""EPUB structural semantics (epub:type) and guide types that mark front or back matter."""
_EPUB_TYPE = "{http://www.idpf.org/2007/ops}type"
_FOOTNOTE_MARK = re.compile(
    r"\[\^?[0-9a-zA-Z]{1,4}\]|[\u00b9\u00b2\u00b3\u2070\u2074-\u2079]+|(?<=[a-z.,;:!?\"'”’)])\*(?=\s|$)"
)
"""`[12]`, `[^3]`, `[a]`, superscript digits, an asterisk glued to the end of a word."""
_HEADING = re.compile(
    r"^(?:(?i:chapter|part|book|volume)\s+(?:[IVXLCDM]+|[ivxlcdm]+|\d+|[A-Za-z]+(?:-[A-Za-z]+)?)\b\.?"
    r"(?:\s*[:.\-\u2013\u2014]\s*.+)?"
    r"|(?i:prologue|epilogue|preface|introduction|foreword|afterword|interlude)(?:\s*[:.\-\u2013\u2014]\s*.+)?"
    r"|(?:[IVXLCDM]+|\d{1,3})\.?"
    r"|(?:[IVXLCDM]+|\d{1,3})\.\s+[A-Z][^.!?]{0,80})$"
)
_GUTENBERG_START = re.compile(r"^\*\*\* ?START OF (THE|THIS) PROJECT GUTENBERG.*$", re.IGNORECASE | re.MULTILINE)
_GUTENBERG_END = re.compile(r"^\*\*\* ?END OF (THE|THIS) PROJECT GUTENBERG.*$", re.IGNORECASE | re.MULTILINE)
MAX_HEADING_CHARS = 100


class BookFormat(StrEnum):
    EPUB = "epub"
    MARKDOWN = "markdown"
    TEXT = "text"
    HTML = "html"
    DOCX = "docx"
    PDF = "pdf"

    @classmethod
    def of(cls, path: Path) -> BookFormat:
        suffix = path.suffix.lower()
        if suffix == ".epub":
            return cls.EPUB
        if suffix == ".docx":
            return cls.DOCX
        if suffix == ".pdf":
            return cls.PDF
        if suffix in (".md", ".markdown"):
            return cls.MARKDOWN
        if suffix in (".html", ".htm", ".xhtml"):
            return cls.HTML
        return cls.TEXT


class BookError(Exception):
    """The book cannot be read, or a chosen chapter is not in it."""


@dataclass(frozen=True)
class Chapter:
    title: str
    text: str
    matter: bool = False
    """Front or back matter (left out unless asked for)."""


@dataclass
class Book:
    chapters: list[Chapter]
    title: str | None = None
    author: str | None = None
    cover: tuple[bytes, str] | None = None
    """(image bytes, media type)"""
    notes: list[str] = field(default_factory=list)

    def body(self) -> list[Chapter]:
        return [chapter for chapter in self.chapters if not chapter.matter]


def read_book(path: Path) -> Book:
    """The chapters of `path` by its suffix: .epub, .pdf, .docx, .md/.markdown, .html, anything else
    plain text."""
    kind = BookFormat.of(path)
    if kind is BookFormat.EPUB:
        return read_epub(path)
    if kind is BookFormat.PDF:
        return read_pdf(path)
    if kind is BookFormat.DOCX:
        return read_docx(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BookError(f"{path} is not UTF-8 text (invalid byte at offset {exc.start})") from exc
    if kind is BookFormat.MARKDOWN:
        return Book(markdown_chapters(text))
    if kind is BookFormat.HTML:
        return Book(html_chapters(text))
    return Book(text_chapters(text))


# --- plain text -------------------------------------------------------------------------------


def is_heading(line: str) -> bool:
    stripped = line.strip()
    return 0 < len(stripped) <= MAX_HEADING_CHARS and bool(_HEADING.match(stripped))


def text_chapters(text: str) -> list[Chapter]:
    """Chapters at heading lines that stand alone (a blank line or the text's edge on both sides)."""
    text = text.replace("\r\n", "\n")
    if start := _GUTENBERG_START.search(text):
        text = text[start.end() :]
    if end := _GUTENBERG_END.search(text):
        text = text[: end.start()]
    blocks = [block.strip("\n") for block in re.split(r"\n[ \t]*\n", text)]
    blocks = [block for block in blocks if block.strip()]
    chapters: list[Chapter] = []
    title: str | None = None
    body: list[str] = []
    preamble: list[str] = []

    def close() -> None:
        if title is None:
            return
        chapters.append(Chapter(title, "\n\n".join([title, *body])))

    for block in blocks:
        lines = [line.strip() for line in block.split("\n") if line.strip()]
        if len(lines) == 1 and is_heading(lines[0]) and not lines[0].endswith(","):
            close()
            title, body = lines[0], []
        elif len(lines) > 1 and all(is_heading(line) or _dotted_toc_line(line) for line in lines):
            # A block of headings only: a table of contents.
            close()
            title, body = None, []
            chapters.append(Chapter("Contents", block, matter=True))
        elif title is None:
            preamble.append(block)
        else:
            body.append(_clean_marks(block))
    close()
    if not chapters:
        return [Chapter("", _clean_marks("\n\n".join(preamble)))]
    # A heading with nothing under it, followed by more headings, is a contents line.
    chapters = [
        replace(chapter, matter=True)
        if (chapter.text.strip() == chapter.title and index < len(chapters) - 1) or MATTER_TITLES.match(chapter.title)
        else chapter
        for index, chapter in enumerate(chapters)
    ]
    if preamble:
        chapters.insert(0, Chapter("Front matter", "\n\n".join(preamble), matter=True))
    return chapters


def _dotted_toc_line(line: str) -> bool:
    """`Chapter I ........ 3` or `The Storm    17`: a contents entry with a page number."""
    return bool(re.match(r"^.{1,90}?(\.{2,}|\s{2,})\s*\d{1,4}$", line))


def _clean_marks(text: str) -> str:
    return re.sub(r"[ \t]{2,}", " ", _FOOTNOTE_MARK.sub("", text))


# --- HTML, Markdown ---------------------------------------------------------------------------


def _epub_types(element: lxml_html.HtmlElement) -> set[str]:
    """An element's `epub:type` words (the HTML parser keeps the prefixed name, the XML one the namespace)."""
    return set((element.get(_EPUB_TYPE) or element.get("epub:type") or "").split())


def _element_text(element: lxml_html.HtmlElement) -> str:
    """The readable text of an element: paragraphs and headings as blocks, note marks and notes dropped."""
    for bad in element.xpath(".//script|.//style|.//sup|.//aside|.//nav|.//*[@role='doc-noteref']"):
        bad.drop_tree()
    for note in [e for e in element.iter() if isinstance(e.tag, str)]:
        if _epub_types(note) & {"noteref", "footnote", "endnote", "rearnote", "pagebreak"}:
            note.drop_tree()
    blocks: list[str] = []
    tags = "p|h1|h2|h3|h4|h5|h6|li|blockquote|pre|div"
    for block in element.iter(*tags.split("|")):
        if block.tag == "div" and block.xpath(f"./{'|./'.join(tags.split('|'))}"):
            continue  # a wrapper: its children are read instead
        if block.tag in ("blockquote", "li") and block.xpath(".//p"):
            continue
        text = " ".join(block.text_content().split())
        if text:
            blocks.append(text)
    if not blocks:
        blocks = [" ".join(element.text_content().split())]
    return _clean_marks("\n\n".join(block for block in blocks if block))


def _sections_by_heading(root: lxml_html.HtmlElement, levels: Sequence[str]) -> list[tuple[str, str]]:
    """(title, text) per heading of the first of `levels` present; text before the first is dropped
    when empty, else returned with an empty title."""
    body = root.find(".//body")
    container = body if body is not None else root
    for level in levels:
        if container.xpath(f".//{level}"):
            break
    else:
        return [("", _element_text(container))]
    sections: list[tuple[str, list[lxml_html.HtmlElement]]] = [("", [])]
    for child in _flatten(container, level):
        if child.tag == level:
            sections.append((" ".join(child.text_content().split()), [child]))
        else:
            sections[-1][1].append(child)
    results = []
    for title, elements in sections:
        wrapper = lxml_html.Element("div")
        for element in elements:
            wrapper.append(element)
        text = _element_text(wrapper)
        if title or text.strip():
            results.append((title, text))
    return results


def _flatten(container: lxml_html.HtmlElement, level: str) -> list[lxml_html.HtmlElement]:
    """Children of `container`, descending into wrappers that hold a heading of `level`."""
    out: list[lxml_html.HtmlElement] = []
    for child in list(container):
        if not isinstance(child.tag, str):
            continue
        if child.tag != level and child.xpath(f".//{level}"):
            out += _flatten(child, level)
        else:
            out.append(child)
    return out


def html_chapters(source: str) -> list[Chapter]:
    root = lxml_html.document_fromstring(source)
    chapters = []
    for title, text in _sections_by_heading(root, ("h1", "h2")):
        chapters.append(Chapter(title, text, matter=not title or bool(MATTER_TITLES.match(title))))
    return chapters


def markdown_chapters(source: str) -> list[Chapter]:
    from markdown_it import MarkdownIt

    source = re.sub(r"(?m)^\[\^[^\]]+\]:.*(\n(?: {2,}|\t).*)*", "", source)  # footnote bodies
    rendered = MarkdownIt("commonmark").render(source)
    return html_chapters(f"<html><body>{rendered}</body></html>")


# --- DOCX ------------------------------------------------------------------------------------


def read_docx(path: Path) -> Book:
    import docx

    try:
        document = docx.Document(str(path))
    except Exception as exc:  # python-docx raises zip, XML and its own errors alike
        raise BookError(f"{path} is not a readable DOCX ({type(exc).__name__}: {exc})") from exc
    paragraphs = [(p.style.name if p.style is not None else "", " ".join(p.text.split())) for p in document.paragraphs]
    styles = {style for style, _ in paragraphs}
    level = next((name for name in ("Heading 1", "Title", "Heading 2") if name in styles), None)
    chapters: list[Chapter] = []
    title, body = "", []
    for style, text in paragraphs:
        if not text:
            continue
        if style == level:
            if title or body:
                chapters.append(
                    Chapter(title, _clean_marks("\n\n".join([title, *body]) if title else "\n\n".join(body)))
                )
            title, body = text, []
        else:
            body.append(text)
    if title or body:
        chapters.append(Chapter(title, _clean_marks("\n\n".join([title, *body]) if title else "\n\n".join(body))))
    chapters = [replace(c, matter=not c.title or bool(MATTER_TITLES.match(c.title))) for c in chapters]
    if len(chapters) == 1 and not chapters[0].title:
        chapters = [replace(chapters[0], matter=False)]
    properties = document.core_properties
    return Book(chapters, title=properties.title or None, author=properties.author or None)


# --- PDF -------------------------------------------------------------------------------------

_PAGE_NUMBER = re.compile(r"^\s*(?:page\s+)?(?:\d{1,4}|[ivxlcdm]{1,7})(?:\s*(?:of|/)\s*\d{1,4})?\s*$", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?:;\"'\u201d\u2019)\]]$")


def read_pdf(path: Path) -> Book:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted and not reader.decrypt(""):
            raise BookError(f"{path} is encrypted: remove its password first")
        pages = _with_paragraph_breaks([_page_lines(page) for page in reader.pages])
        starts = _outline_starts(reader)
        info = reader.metadata
    except (PdfReadError, OSError, ValueError) as exc:
        raise BookError(f"{path} is not a readable PDF ({type(exc).__name__}: {exc})") from exc
    if not "".join(pages).strip():
        raise BookError(f"{path} has no text layer (a scanned PDF needs OCR before it can be read)")
    pages = _strip_running_lines(pages)
    title = (info.title or None) if info is not None else None
    author = (info.author or None) if info is not None else None
    if not starts:
        return Book(text_chapters("\n\n".join(_paragraphs(page) for page in pages)), title=title, author=author)
    chapters: list[Chapter] = []
    if starts[0][1] > 0:
        front = "\n\n".join(_paragraphs(page) for page in pages[: starts[0][1]]).strip()
        if front:
            chapters.append(Chapter("Front matter", front, matter=True))
    for index, (heading, first) in enumerate(starts):
        last = starts[index + 1][1] if index + 1 < len(starts) else len(pages)
        text = _clean_marks("\n\n".join(_paragraphs(page) for page in pages[first : max(last, first + 1)]).strip())
        if not text.startswith(heading):
            text = f"{heading}\n\n{text}"
        chapters.append(Chapter(heading, text, matter=bool(MATTER_TITLES.match(heading))))
    return Book(chapters, title=title, author=author)


def _page_lines(page: object) -> list[tuple[float, str]]:
    """A page's text as (baseline height, text) lines, top to bottom as drawn."""
    lines: list[tuple[float, str]] = []

    def visit(text: str, cm: list[float], tm: list[float], _font: object, _size: object) -> None:
        if not text.strip("\n"):
            return
        y = tm[5] * cm[3] + cm[5]
        if lines and abs(lines[-1][0] - y) < 1.0:
            lines[-1] = (lines[-1][0], lines[-1][1] + text)
        else:
            lines.append((y, text))

    page.extract_text(visitor_text=visit)  # type: ignore[attr-defined]
    return lines


def _with_paragraph_breaks(pages: list[list[tuple[float, str]]]) -> list[str]:
    """Each page's lines, with a blank line where the gap to the line before is well over the book's
    line spacing: the paragraph breaks that plain extraction loses. The spacing is a low percentile of
    all the gaps in the book, so pages of one-line paragraphs (dialogue) do not set it."""
    gaps = sorted(
        above[0] - below[0]
        for lines in pages
        for above, below in itertools.pairwise(lines)
        if above[0] - below[0] > 2.0
    )
    spacing = gaps[len(gaps) // 10] if gaps else 0.0
    texts: list[str] = []
    for lines in pages:
        out: list[str] = []
        for index, (y, text) in enumerate(lines):
            if index and spacing and lines[index - 1][0] - y > 1.4 * spacing:
                out.append("")
            out.extend(part for part in text.split("\n") if part.strip())
        texts.append("\n".join(out))
    return texts


def _outline_starts(reader: object) -> list[tuple[str, int]]:
    """(title, first page index) of the outline's top-level entries, in page order, one per page."""
    from pypdf import PdfReader

    assert isinstance(reader, PdfReader)
    starts: dict[int, str] = {}
    for entry in reader.outline:
        if isinstance(entry, list):  # the children of the entry before: chapters are the top level
            continue
        try:
            page = reader.get_destination_page_number(entry)
        except Exception:  # an entry without a page (a link elsewhere) names no chapter
            continue
        title = " ".join(str(entry.title or "").split())
        if title and page is not None and page not in starts:
            starts[page] = title
    return sorted(((title, page) for page, title in starts.items()), key=lambda item: item[1])


def _strip_running_lines(pages: list[str]) -> list[str]:
    """Pages without their running header/footer lines and bare page numbers.

    A line is running when it stands first or last on at least half the pages (digits aside, so
    "Chapter One 12" and "Chapter One 13" count as one) in a document of three pages or more; a bare
    page number is dropped wherever it stands first or last.
    """

    def key(line: str) -> str:
        return re.sub(r"\d+", "#", " ".join(line.split()).lower())

    split = [page.splitlines() for page in pages]
    counts: dict[str, int] = {}
    for lines in split:
        text = [line for line in lines if line.strip()]
        for line in {key(line) for line in text[:1] + text[-1:]}:
            counts[line] = counts.get(line, 0) + 1
    running = {line for line, count in counts.items() if len(pages) >= 3 and count >= len(pages) / 2}
    cleaned: list[str] = []
    for lines in split:
        text = [index for index, line in enumerate(lines) if line.strip()]
        edge = set(text[:1] + text[-1:])
        kept = [
            line
            for index, line in enumerate(lines)
            if not (index in edge and (key(line) in running or _PAGE_NUMBER.match(line)))
        ]
        cleaned.append("\n".join(kept).strip("\n"))
    return cleaned


def _paragraphs(page: str) -> str:
    """A page's lines joined into paragraphs: a hyphen at a line end joins the word, and a paragraph
    ends at a blank line, or at a line that ends a sentence and stops well short of the page's typical
    line length (the last line of a paragraph)."""
    lines = [" ".join(line.split()) for line in page.splitlines()]
    widths = sorted(len(line) for line in lines if line)
    typical = widths[int(len(widths) * 0.8)] if widths else 0
    paragraphs: list[str] = []
    current = ""
    for line in lines:
        if not line:
            if current:
                paragraphs.append(current)
            current = ""
            continue
        if current.endswith("-") and len(current) > 1 and current[-2].isalpha() and line[:1].islower():
            current = current[:-1] + line
        else:
            current = f"{current} {line}" if current else line
        if (is_heading(line) and current == line) or (_SENTENCE_END.search(line) and len(line) < 0.8 * typical):
            paragraphs.append(current)
            current = ""
    if current:
        paragraphs.append(current)
    return "\n\n".join(paragraphs)


# --- EPUB ------------------------------------------------------------------------------------


def read_epub(path: Path) -> Book:
    import ebooklib
    from ebooklib import epub

    try:
        book = epub.read_epub(str(path), options={"ignore_ncx": False})
    except Exception as exc:  # EbookLib raises bare exceptions and zip/XML errors alike
        raise BookError(f"{path} is not a readable EPUB ({type(exc).__name__}: {exc})") from exc
    titles = {}
    for href, title in _toc_entries(book.toc):
        titles.setdefault(href.split("#", 1)[0], title)
    guide_matter = {
        entry.get("href", "").split("#", 1)[0]
        for entry in getattr(book, "guide", [])
        if entry.get("type", "").lower() in MATTER_TYPES | {"title-page", "copyright", "contents"}
    }
    chapters: list[Chapter] = []
    for item_id, _linear in book.spine:
        item = book.get_item_with_id(item_id)
        if item is None or item.get_type() != ebooklib.ITEM_DOCUMENT or isinstance(item, epub.EpubNav):
            continue
        root = lxml_html.document_fromstring(item.get_content())
        body = root.find(".//body")
        kinds = set()
        for element in [root, *([body] if body is not None else []), *root.xpath("//section")[:1]]:
            kinds |= _epub_types(element)
        heading = root.xpath("(//h1|//h2|//h3)[1]")
        title = titles.get(item.get_name()) or (" ".join(heading[0].text_content().split()) if heading else "")
        text = _element_text(body if body is not None else root)
        if not text.strip():
            continue
        matter = (
            bool(kinds & MATTER_TYPES)
            or item.get_name() in guide_matter
            or bool(MATTER_TITLES.match(title))
            or not title
        )
        chapters.append(Chapter(title or item.get_name(), text, matter=matter))
    metadata_title = book.get_metadata("DC", "title")
    creator = book.get_metadata("DC", "creator")
    return Book(
        chapters,
        title=metadata_title[0][0] if metadata_title else None,
        author=creator[0][0] if creator else None,
        cover=_epub_cover(book),
    )


def _toc_entries(toc: Iterable[object]) -> Iterable[tuple[str, str]]:
    from ebooklib import epub

    for entry in toc:
        if isinstance(entry, tuple | list) and len(entry) == 2:
            section, children = entry
            if isinstance(section, epub.Section | epub.Link) and getattr(section, "href", None):
                yield section.href, section.title
            yield from _toc_entries(children)
        elif isinstance(entry, epub.Link):
            yield entry.href, entry.title


def _epub_cover(book: object) -> tuple[bytes, str] | None:
    import ebooklib

    items = list(book.get_items_of_type(ebooklib.ITEM_COVER))  # type: ignore[attr-defined]
    if not items:
        cover_ids = [meta[1].get("content") for meta in book.get_metadata("OPF", "cover")]  # type: ignore[attr-defined]
        items = [book.get_item_with_id(cover_id) for cover_id in cover_ids if cover_id]  # type: ignore[attr-defined]
    for item in items:
        if item is not None and item.media_type in ("image/jpeg", "image/png"):
            return item.get_content(), item.media_type
    return None


# --- choosing and rewriting -------------------------------------------------------------------


def select(chapters: list[Chapter], *, only: Sequence[str] = (), skip: Sequence[str] = ()) -> list[Chapter]:
    """Chapters by 1-based number (`3`, `2-5`) or title (case-insensitive, exact), in book order:
    `only` keeps the named ones, `skip` drops them. A name that matches nothing is an error."""

    def matches(spec: str) -> set[int]:
        spec = spec.strip()
        if re.fullmatch(r"\d+(-\d+)?", spec):
            low, _, high = spec.partition("-")
            numbers = set(range(int(low), int(high or low) + 1))
            if not numbers or max(numbers) > len(chapters) or min(numbers) < 1:
                raise BookError(f"chapter {spec}: the book has chapters 1-{len(chapters)}")
            return {n - 1 for n in numbers}
        found = {i for i, chapter in enumerate(chapters) if chapter.title.casefold() == spec.casefold()}
        if not found:
            listed = "; ".join(f"{i + 1} {c.title}" for i, c in enumerate(chapters[:40]))
            raise BookError(f"no chapter titled {spec!r}; the chapters are: {listed}")
        return found

    keep = set(range(len(chapters)))
    if only:
        keep = set().union(*(matches(spec) for spec in only))
    for spec in skip:
        keep -= matches(spec)
    return [chapter for index, chapter in enumerate(chapters) if index in keep]


@dataclass(frozen=True)
class Substitution:
    pattern: re.Pattern[str]
    replacement: str

    @classmethod
    def parse(cls, rule: str) -> Substitution:
        """`PATTERN=>REPLACEMENT` (a Python regex; `\\1` and `\\g<name>` in the replacement)."""
        pattern, arrow, replacement = rule.partition("=>")
        if not arrow or not pattern:
            raise BookError(f"substitution {rule!r}: write it as PATTERN=>REPLACEMENT")
        try:
            compiled = re.compile(pattern)
            compiled.sub(replacement, "")
        except (re.error, IndexError) as exc:
            raise BookError(f"substitution {rule!r}: {exc}") from exc
        return cls(compiled, replacement)


def read_substitutions(path: Path) -> list[Substitution]:
    """One `PATTERN=>REPLACEMENT` per line; blank lines and lines starting with `#` are skipped."""
    rules = []
    for number, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
        if line.strip() and not line.lstrip().startswith("#"):
            try:
                rules.append(Substitution.parse(line.rstrip("\n")))
            except BookError as exc:
                raise BookError(f"{path}:{number}: {exc}") from exc
    return rules


def substitute(text: str, rules: Sequence[Substitution]) -> str:
    for rule in rules:
        text = rule.pattern.sub(rule.replacement, text)
    return text


def book_inputs(
    book: Book,
    *,
    only: Sequence[str] = (),
    skip: Sequence[str] = (),
    include_matter: bool = False,
    substitutions: Sequence[Substitution] = (),
    id_prefix: str = "ch",
) -> list[dict[str, str]]:
    """The job inputs of a book: one per chosen chapter, `{"id": "ch001", "title": ..., "text": ...}`.
    Chapter numbers in `only`/`skip` count the chapters that remain after front/back matter is left out
    (all chapters with `include_matter`)."""
    chapters = book.chapters if include_matter else book.body()
    chosen = select(chapters, only=only, skip=skip)
    if not chosen:
        raise BookError("no chapters left to narrate")
    inputs = []
    for index, chapter in enumerate(chosen, start=1):
        text = substitute(chapter.text, substitutions).strip()
        if not re.search(r"\w", text):
            continue
        item = {"id": f"{id_prefix}{index:03d}", "text": text}
        if chapter.title:
            item["title"] = chapter.title[:300]
        inputs.append(item)
    return inputs
