"""An EPUB3 read-along book: the job's text as XHTML, with Media Overlays (SMIL) that play the audio.

The worker builds the XHTML from the inputs' own text (one chapter document per input, a `<p>` per
paragraph, a `<span id>` per timed sentence), not from the client's EPUB: the job's text is what was
spoken and timed, so every overlay fragment resolves by construction, and a job made from plain text
gets a read-along book too. Each chapter's SMIL pairs its sentences (`<text src="chapter#id">`) with
their clips of the book's one audio file (`<audio clipBegin clipEnd>`), in reading order. The audio is
the job's file when its format is one EPUB reading systems play (MP3, AAC in MP4), else an MP3.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from xml.sax.saxutils import escape, quoteattr

from worker.timing import Sentence

ACTIVE_CLASS = "-epub-media-overlay-active"
_PARAGRAPHS = re.compile(r"\n[ \t]*\n\s*")


@dataclass(frozen=True)
class Chapter:
    title: str
    text: str
    """The input's original text."""
    sentences: list[Sentence]
    """Its timed sentences in reading order (offsets into `text`, times in the audio file)."""


def clock(seconds: float) -> str:
    """A SMIL full clock value, `H:MM:SS.mmm`."""
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    return f"{hours}:{minutes:02d}:{millis // 1000:02d}.{millis % 1000:03d}"


def chapter_xhtml(chapter: Chapter, number: int, language: str) -> str:
    """The chapter's text, sentences wrapped in `<span id="c{number}s{k}">`, paragraphs as `<p>`."""
    text = chapter.text
    body: list[str] = []
    sentences = sorted(chapter.sentences, key=lambda s: s.char_start)
    k = 0
    start = 0
    for end, next_start in [*((m.start(), m.end()) for m in _PARAGRAPHS.finditer(text)), (len(text), len(text))]:
        if text[start:end].strip():
            parts: list[str] = []
            cursor = start
            while k < len(sentences) and sentences[k].char_start < end:
                sentence = sentences[k]
                begin = max(cursor, sentence.char_start)
                parts.append(escape(text[cursor:begin]))
                stop = max(begin, min(sentence.char_end, end))
                parts.append(f'<span id="{fragment_id(number, k)}">{escape(text[begin:stop])}</span>')
                cursor = stop
                k += 1
            parts.append(escape(text[cursor:end]))
            body.append(f"<p>{''.join(parts).strip()}</p>")
        start = next_start
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops" '
        f'xml:lang="{language}" lang="{language}">\n'
        f"<head><title>{escape(chapter.title)}</title>"
        '<link rel="stylesheet" type="text/css" href="style.css"/></head>\n'
        f'<body><section epub:type="chapter"><h1>{escape(chapter.title)}</h1>\n'
        + "\n".join(body)
        + "\n</section></body>\n</html>\n"
    )


def fragment_id(chapter: int, sentence: int) -> str:
    return f"c{chapter}s{sentence}"


def chapter_smil(chapter: Chapter, number: int, audio_href: str) -> str:
    document = f"chapter{number}.xhtml"
    pars = []
    for k, sentence in enumerate(sorted(chapter.sentences, key=lambda s: s.char_start)):
        pars.append(
            f'<par id="c{number}p{k}"><text src="{document}#{fragment_id(number, k)}"/>'
            f'<audio src="{audio_href}" clipBegin="{clock(sentence.start)}" clipEnd="{clock(sentence.end)}"/></par>'
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<smil xmlns="http://www.w3.org/ns/SMIL" xmlns:epub="http://www.idpf.org/2007/ops" version="3.0">\n'
        f'<body><seq id="c{number}seq" epub:textref="{document}" epub:type="chapter">\n'
        + "\n".join(pars)
        + "\n</seq></body>\n</smil>\n"
    )


def _duration(chapter: Chapter) -> float:
    return sum(round(s.end, 3) - round(s.start, 3) for s in chapter.sentences)


def write_epub(
    path: str,
    *,
    identifier: str,
    title: str,
    author: str | None,
    language: str,
    chapters: Sequence[Chapter],
    audio_path: str,
    audio_media_type: str,
) -> None:
    """Write the read-along EPUB3 to `path` (the audio stored as it is: it is compressed already)."""
    extension = audio_path.rsplit(".", 1)[-1]
    audio_href = f"audio/book.{extension}"
    modified = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    spoken = [(number, chapter) for number, chapter in enumerate(chapters, start=1) if chapter.sentences]
    items = [
        '<item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>',
        '<item id="css" href="style.css" media-type="text/css"/>',
        f'<item id="audio" href="{audio_href}" media-type="{audio_media_type}"/>',
    ]
    durations = []
    for number, chapter in enumerate(chapters, start=1):
        overlay = f' media-overlay="smil{number}"' if chapter.sentences else ""
        items.append(
            f'<item id="chapter{number}" href="chapter{number}.xhtml" media-type="application/xhtml+xml"{overlay}/>'
        )
        if chapter.sentences:
            items.append(f'<item id="smil{number}" href="chapter{number}.smil" media-type="application/smil+xml"/>')
            durations.append(
                f'<meta property="media:duration" refines="#smil{number}">{clock(_duration(chapter))}</meta>'
            )
    total = sum(round(_duration(chapter), 3) for _, chapter in spoken)
    creator = f"<dc:creator>{escape(author)}</dc:creator>" if author else ""
    package = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="uid" xml:lang='
        f"{quoteattr(language)}>\n"
        '<metadata xmlns:dc="http://purl.org/dc/elements/1.1/">\n'
        f'<dc:identifier id="uid">{escape(identifier)}</dc:identifier><dc:title>{escape(title)}</dc:title>'
        f"<dc:language>{escape(language)}</dc:language>{creator}\n"
        f'<meta property="dcterms:modified">{modified}</meta>\n'
        f'<meta property="media:duration">{clock(total)}</meta>\n' + "\n".join(durations) + "\n"
        f'<meta property="media:active-class">{ACTIVE_CLASS}</meta>\n'
        "</metadata>\n<manifest>\n" + "\n".join(items) + "\n</manifest>\n<spine>\n"
        + "\n".join(f'<itemref idref="chapter{n}"/>' for n in range(1, len(chapters) + 1))
        + "\n</spine>\n</package>\n"
    )  # fmt: skip
    nav = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops">\n'
        f'<head><title>{escape(title)}</title></head>\n<body><nav epub:type="toc" id="toc"><ol>\n'
        + "\n".join(
            f'<li><a href="chapter{n}.xhtml">{escape(chapter.title)}</a></li>' for n, chapter in enumerate(chapters, 1)
        )
        + "\n</ol></nav></body>\n</html>\n"
    )
    container = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">'
        '<rootfiles><rootfile full-path="OEBPS/package.opf" media-type="application/oebps-package+xml"/>'
        "</rootfiles></container>\n"
    )
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as book:
        # The mimetype first and stored, as the OCF container requires.
        book.writestr(zipfile.ZipInfo("mimetype"), "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        book.writestr("META-INF/container.xml", container)
        book.writestr("OEBPS/package.opf", package)
        book.writestr("OEBPS/nav.xhtml", nav)
        book.writestr("OEBPS/style.css", f".{ACTIVE_CLASS} {{ background-color: #ffe58a; }}\n")
        for number, chapter in enumerate(chapters, start=1):
            book.writestr(f"OEBPS/chapter{number}.xhtml", chapter_xhtml(chapter, number, language))
            if chapter.sentences:
                book.writestr(f"OEBPS/chapter{number}.smil", chapter_smil(chapter, number, audio_href))
        book.write(audio_path, f"OEBPS/{audio_href}", compress_type=zipfile.ZIP_STORED)
