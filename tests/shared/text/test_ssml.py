"""The SSML subset: each element's effect on what is spoken and how it is chunked, offsets into the
SSML text, and errors that name the line and column."""

from __future__ import annotations

import pytest

from shared.text.chunking import Boundary, chunk_text
from shared.text.lexicon import LexiconEntry
from shared.text.ssml import SsmlError, TextFormat, parse_ssml


def chunks(ssml: str, **kwargs):
    return chunk_text(ssml, text_format=TextFormat.SSML, **kwargs)


def spoken(ssml: str, **kwargs) -> str:
    return " ".join(c.text for c in chunks(ssml, **kwargs))


def test_speak_is_the_root_and_its_language_is_recorded():
    document = parse_ssml('<speak version="1.1" xml:lang="en-GB">Good morning.</speak>')
    assert document.language == "en-GB" and document.text == "Good morning."
    with pytest.raises(SsmlError, match="root element must be <speak>"):
        parse_ssml("<p>Hello.</p>")


def test_p_makes_paragraphs():
    found = chunks("<speak><p>First part here.</p><p>Second part here.</p></speak>")
    assert [c.text for c in found] == ["First part here.", "Second part here."]
    assert [c.paragraph for c in found] == [0, 1] and found[0].boundary is Boundary.PARAGRAPH


def test_s_makes_sentences_even_without_punctuation():
    (found,) = chunks("<speak><s>The rain stopped</s><s>We went out</s></speak>")
    assert found.text == "The rain stopped. We went out."
    assert found.sentences == (0, 1)


def test_break_time_and_strength_become_pauses():
    found = chunks('<speak>Wait for it.<break time="1.5s"/>Now.<break strength="x-strong"/>Done.</speak>')
    assert [(c.text, c.pause_ms) for c in found] == [("Wait for it.", 1500), ("Now.", 2000), ("Done.", None)]
    assert next((c.text, c.pause_ms) for c in chunks('<speak>One.<break time="250ms"/>Two.</speak>')) == ("One.", 250)


def test_sub_speaks_its_alias_and_maps_to_the_element():
    ssml = '<speak>The <sub alias="World Wide Web Consortium">W3C</sub> met.</speak>'
    document = parse_ssml(ssml)
    assert " ".join(document.text.split()) == "The World Wide Web Consortium met."
    start = document.text.index("World")
    assert ssml[document.mapped.lo[start] : document.mapped.hi[start]].startswith("<sub alias=")
    assert ssml[document.mapped.lo[start] : document.mapped.hi[start]].endswith("</sub>")


@pytest.mark.parametrize(
    ("element", "said"),
    [
        ('<say-as interpret-as="characters">NASA</say-as>', "N A S A"),
        ('<say-as interpret-as="digits">2024</say-as>', "two zero two four"),
        ('<say-as interpret-as="telephone">555-1234</say-as>', "five five five, one two three four"),
        ('<say-as interpret-as="telephone">+1 555 0100</say-as>', "plus one, five five five, zero one zero zero"),
        ('<say-as interpret-as="date" format="mdy">12/25/2023</say-as>', "December twenty-fifth twenty twenty-three"),
        (
            '<say-as interpret-as="date" format="dmy">25.12.2023</say-as>',
            "the twenty-fifth of December twenty twenty-three",
        ),
        ('<say-as interpret-as="date" format="ym">2024-03</say-as>', "March twenty twenty-four"),
    ],
)
def test_say_as_reads_characters_digits_telephone_numbers_and_dates(element, said):
    assert spoken(f"<speak>Say {element} now.</speak>") == f"Say {said} now."


def test_without_say_as_the_same_digits_read_as_a_number():
    assert spoken("<speak>Say 2024 now.</speak>") == "Say two thousand and twenty-four now."


def test_lang_records_its_span_and_language():
    ssml = '<speak>She said <lang xml:lang="es-ES">hasta luego</lang> and left.</speak>'
    document = parse_ssml(ssml)
    (span,) = document.languages
    assert span.language == "es-ES" and ssml[span.start : span.end].startswith("<lang")
    assert "hasta luego" in document.text


def test_chunk_offsets_point_into_the_ssml_text():
    ssml = "<speak>\n  <p>Alpha beta gamma.</p>\n  <p>Delta &amp; epsilon.</p>\n</speak>"
    found = chunks(ssml)
    assert [ssml[c.start : c.end] for c in found] == ["Alpha beta gamma.", "Delta &amp; epsilon."]
    assert found[1].text == "Delta & epsilon."


def test_a_lexicon_applies_to_ssml_text_too():
    lexicon = [LexiconEntry(match="Nguyen", respelling="win")]
    assert spoken("<speak><p>Ask Nguyen.</p></speak>", lexicon=lexicon) == "Ask Win."


@pytest.mark.parametrize(
    ("ssml", "line", "column", "says"),
    [
        ("<speak>\n  <p>Open paragraph\n</speak>", 3, 3, "mismatched tag"),
        ("<speak>\n<emphasis>Loud</emphasis>\n</speak>", 2, 1, "<emphasis> is not supported"),
        ('<speak>One.\n   <break time="forever"/></speak>', 2, 4, "not a duration"),
        ('<speak><say-as interpret-as="cardinal">5</say-as></speak>', 1, 8, 'interpret-as="cardinal"'),
        ('<speak><say-as interpret-as="date" format="mdy">2023-12</say-as></speak>', 1, 8, "does not match"),
        ("<speak><sub>W3C</sub></speak>", 1, 8, "alias"),
        ('<!DOCTYPE speak [<!ENTITY x "boom">]>\n<speak>&x;</speak>', 1, 1, "DOCTYPE is not allowed"),
        ("<speak>Hello &nbsp; there</speak>", 1, 14, "undefined entity"),
        ("Just text", 1, 1, "must start with a <speak>"),
    ],
)
def test_errors_name_the_line_and_column(ssml, line, column, says):
    with pytest.raises(SsmlError) as caught:
        parse_ssml(ssml)
    assert (caught.value.line, caught.value.column) == (line, column), str(caught.value)
    assert says in str(caught.value)
