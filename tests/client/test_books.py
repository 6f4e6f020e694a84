"""Book import (`client.books`): EPUB, Markdown and plain-text chapters with titles; front matter,
footnote marks and unchosen chapters left out; substitutions on the spoken text only.

The EPUB is written in the test with EbookLib (navigation document, cover, a contents page, a copyright
page, a footnote), its first chapter the real public-domain text in examples/.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from ebooklib import epub
from PIL import Image

from client import books

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pride-and-prejudice-ch1.txt"


def png_cover() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 96), (120, 30, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


def xhtml(title: str, paragraphs: list[str], epub_type: str = "bodymatter chapter") -> str:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (
        '<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops"><head><title>'
        f'{title}</title></head><body><section epub:type="{epub_type}"><h1>{title}</h1>{body}</section></body></html>'
    )


def make_epub(path: Path) -> Path:
    book = epub.EpubBook()
    book.set_identifier("test-book-1")
    book.set_title("Pride and Prejudice")
    book.set_language("en")
    book.add_author("Jane Austen")
    book.set_cover("cover.png", png_cover())
    example = EXAMPLE.read_text().split("\n\n")
    chapters = [
        epub.EpubHtml(
            title="Copyright",
            file_name="copyright.xhtml",
            content=xhtml("Copyright", ["This edition is in the public domain."], "frontmatter copyright-page"),
        ),
        epub.EpubHtml(
            title="Contents",
            file_name="toc.xhtml",
            content=xhtml("Contents", ["Chapter 1", "Chapter 2", "Chapter 3"], "frontmatter toc"),
        ),
        epub.EpubHtml(title="Chapter 1", file_name="ch1.xhtml", content=xhtml("Chapter 1", example[1:])),
        epub.EpubHtml(
            title="Chapter 2",
            file_name="ch2.xhtml",
            content=xhtml(
                "Chapter 2",
                [
                    'Mr. Bennet was among the earliest<a epub:type="noteref" href="#n1">1</a> of those who '
                    "waited on Mr. Bingley.",
                    "He had always intended to visit him.",
                ],
            ).replace(
                "</section>", '<aside epub:type="footnote" id="n1"><p>A note never read aloud.</p></aside></section>'
            ),
        ),
        epub.EpubHtml(
            title="Chapter 3: The Ball",
            file_name="ch3.xhtml",
            content=xhtml("Chapter 3: The Ball", ["Not all that Mrs. Bennet could ask was sufficient."]),
        ),
        epub.EpubHtml(
            title="Index",
            file_name="index.xhtml",
            content=xhtml("Index", ["Bennet, 1, 2", "Bingley, 2"], "backmatter index"),
        ),
    ]
    for chapter in chapters:
        book.add_item(chapter)
    book.toc = tuple(epub.Link(c.file_name, c.title, c.file_name.split(".")[0]) for c in chapters)
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", *chapters]
    epub.write_epub(str(path), book)
    return path


def test_epub_chapters_come_from_its_navigation_with_matter_and_notes_left_out(tmp_path):
    book = books.read_book(make_epub(tmp_path / "book.epub"))
    assert [c.title for c in book.body()] == ["Chapter 1", "Chapter 2", "Chapter 3: The Ball"]
    assert {c.title for c in book.chapters if c.matter} == {"Copyright", "Contents", "Index"}
    assert (book.title, book.author) == ("Pride and Prejudice", "Jane Austen")
    assert book.cover is not None and book.cover[1] == "image/png" and book.cover[0] == png_cover()
    inputs = books.book_inputs(book)
    assert [(i["id"], i["title"]) for i in inputs] == [
        ("ch001", "Chapter 1"), ("ch002", "Chapter 2"), ("ch003", "Chapter 3: The Ball"),
    ]  # fmt: skip
    first = inputs[0]["text"]
    assert first.startswith("Chapter 1\n\nIt is a truth universally acknowledged")
    assert "Netherfield Park is let at last" in first
    second = inputs[1]["text"]
    assert "earliest of those" in second and "never read aloud" not in second and "earliest1" not in second


def test_chapters_are_chosen_or_skipped_by_number_or_title(tmp_path):
    book = books.read_book(make_epub(tmp_path / "book.epub"))
    chosen = books.book_inputs(book, only=["1", "chapter 3: the ball"])
    assert [i["title"] for i in chosen] == ["Chapter 1", "Chapter 3: The Ball"]
    assert [i["title"] for i in books.book_inputs(book, skip=["2-3"])] == ["Chapter 1"]
    with_matter = books.book_inputs(book, include_matter=True)
    assert with_matter[0]["title"] == "Copyright" and len(with_matter) == 6
    with pytest.raises(books.BookError, match="no chapter titled 'Epilogue'"):
        books.book_inputs(book, only=["Epilogue"])
    with pytest.raises(books.BookError, match="chapters 1-3"):
        books.book_inputs(book, skip=["7"])


def test_substitutions_rewrite_the_spoken_text_but_not_the_titles(tmp_path):
    book = books.read_book(make_epub(tmp_path / "book.epub"))
    rules = [books.Substitution.parse(r"\bMr\. Bennet\b=>Mister Bennet"), books.Substitution.parse("Chapter=>Part")]
    inputs = books.book_inputs(book, substitutions=rules)
    assert "Mister Bennet was among" in inputs[1]["text"] and inputs[1]["text"].startswith("Part 2")
    assert inputs[1]["title"] == "Chapter 2"
    with pytest.raises(books.BookError, match="PATTERN=>REPLACEMENT"):
        books.Substitution.parse("no arrow")
    with pytest.raises(books.BookError, match="substitution"):
        books.Substitution.parse("(unclosed=>x")


def test_markdown_chapters_at_headings_without_markup_or_footnotes(tmp_path):
    path = tmp_path / "book.md"
    path.write_text(
        "# Contents\n\n- One\n- Two\n\n# One\n\nIt was *very* dark[^1], said [the man](http://x).\n\n"
        "# Two: Dawn\n\nThe sun rose.\n\n[^1]: A footnote body.\n"
    )
    book = books.read_book(path)
    assert [c.title for c in book.body()] == ["One", "Two: Dawn"]
    inputs = books.book_inputs(book)
    assert inputs[0]["text"] == "One\n\nIt was very dark, said the man."
    assert inputs[1]["text"] == "Two: Dawn\n\nThe sun rose."


def test_plain_text_headings_contents_and_gutenberg_frame(tmp_path):
    path = tmp_path / "book.txt"
    example = EXAMPLE.read_text()
    path.write_text(
        "The Project Gutenberg eBook of a Test\n\n*** START OF THE PROJECT GUTENBERG EBOOK TEST ***\n\n"
        "A TALE\n\nCONTENTS\n\nCHAPTER I\nCHAPTER IV\nChapter 12: The Storm\n\n"
        f"CHAPTER I\n\n{example.split(chr(10) * 2, 1)[1]}\n\nCHAPTER IV\n\nIt rained[12] all day.\u00b9\n\n"
        "I think so.\n\nChapter 12: The Storm\n\nThe end.\n\nXIII\n\nA numeral alone.\n\n"
        "*** END OF THE PROJECT GUTENBERG EBOOK TEST ***\n\nThe licence text.\n"
    )
    book = books.read_book(path)
    assert [c.title for c in book.body()] == ["CHAPTER I", "CHAPTER IV", "Chapter 12: The Storm", "XIII"]
    inputs = books.book_inputs(book)
    assert "It is a truth universally acknowledged" in inputs[0]["text"]
    assert inputs[1]["text"] == "CHAPTER IV\n\nIt rained all day.\n\nI think so."
    assert all("licence" not in i["text"] and "A TALE" not in i["text"] for i in inputs)


def test_a_text_without_headings_is_one_chapter():
    assert [c.title for c in books.text_chapters("Just a story.\n\nWith two paragraphs.")] == [""]
    assert books.read_book(EXAMPLE).body()[0].title == "Chapter 1"


def test_docx_chapters_at_heading_1_with_title_and_author(tmp_path):
    import docx

    document = docx.Document()
    document.core_properties.title = "A Short Book"
    document.core_properties.author = "Someone"
    document.add_paragraph("Copyright 2026. All rights reserved.")
    document.add_heading("Contents", level=1)
    document.add_paragraph("One ... 1")
    document.add_heading("One", level=1)
    document.add_paragraph("It was a dark night[1].")
    document.add_paragraph("Then morning came.")
    document.add_heading("Two: Day", level=1)
    document.add_paragraph("The sun was out.")
    path = tmp_path / "book.docx"
    document.save(str(path))
    book = books.read_book(path)
    assert (book.title, book.author) == ("A Short Book", "Someone")
    assert [c.title for c in book.body()] == ["One", "Two: Day"]
    assert books.book_inputs(book)[0]["text"] == "One\n\nIt was a dark night.\n\nThen morning came."


def make_pdf(path: Path, chapters: list[tuple[str, list[str]]], *, outline: bool) -> Path:
    """A PDF written with fpdf2: a title page, then each chapter on new pages with a running header,
    page numbers in the footer and long paragraphs that wrap."""
    from fpdf import FPDF

    class Pdf(FPDF):
        def header(self) -> None:
            if self.page_no() > 1:
                self.set_font("Helvetica", size=9)
                self.cell(0, 8, "Pride and Prejudice", align="C")
                self.ln(12)

        def footer(self) -> None:
            self.set_y(-15)
            self.set_font("Helvetica", size=9)
            self.cell(0, 10, str(self.page_no()), align="C")

    pdf = Pdf()
    pdf.set_title("Pride and Prejudice")
    pdf.set_author("Jane Austen")
    pdf.add_page()
    pdf.set_font("Helvetica", size=20)
    pdf.cell(0, 20, "Pride and Prejudice")
    for title, paragraphs in chapters:
        pdf.add_page()
        if outline:
            pdf.start_section(title)
        pdf.set_font("Helvetica", size=16)
        pdf.cell(0, 12, title)
        pdf.ln(16)
        pdf.set_font("Helvetica", size=11)
        for paragraph in paragraphs:
            pdf.multi_cell(0, 6, paragraph)
            pdf.ln(4)
    pdf.output(str(path))
    return path


def pdf_chapters() -> list[tuple[str, list[str]]]:
    example = books.read_book(EXAMPLE).body()[0].text.split("\n\n")[1:]
    return [("Chapter 1", example[:8]), ("Chapter 2", ["Mr. Bennet was among the earliest of those who waited."])]


@pytest.mark.parametrize("outline", [True, False], ids=["outline", "headings"])
def test_pdf_chapters_from_outline_or_headings_without_running_lines(tmp_path, outline):
    chapters = pdf_chapters()
    book = books.read_book(make_pdf(tmp_path / "book.pdf", chapters, outline=outline))
    assert (book.title, book.author) == ("Pride and Prejudice", "Jane Austen")
    assert [c.title for c in book.body()] == ["Chapter 1", "Chapter 2"]
    first = book.body()[0].text
    paragraphs = first.split("\n\n")
    assert paragraphs[0] == "Chapter 1"
    # Each paragraph comes back whole, its wrapped lines joined, with no header or page number inside.
    assert paragraphs[1:] == [" ".join(p.split()) for p in chapters[0][1]]
    assert book.body()[1].text == "Chapter 2\n\nMr. Bennet was among the earliest of those who waited."


def test_pdf_line_end_hyphens_joined():
    page = "It was a truth universally acknow-\nledged that a single man must be in want\nof a wife."
    joined = "It was a truth universally acknowledged that a single man must be in want of a wife."
    assert books._paragraphs(page) == joined


def test_pdf_without_text_layer_is_refused_with_the_reason(tmp_path):
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.image(Image.new("RGB", (200, 300), (255, 255, 255)), w=100)  # a scanned page: an image, no text
    path = tmp_path / "scan.pdf"
    pdf.output(str(path))
    with pytest.raises(books.BookError, match=r"no text layer.*OCR"):
        books.read_book(path)
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.7\nnot really")
    with pytest.raises(books.BookError, match="not a readable PDF"):
        books.read_book(tmp_path / "broken.pdf")
