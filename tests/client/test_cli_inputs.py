"""Input files with faults: each is refused with the file, line and column named, before anything is sent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from client.cli import cli
from tests.client.contract_server import API_KEY, ContractApi, serve_contract_api


@pytest.fixture
def api() -> Iterator[ContractApi]:
    with serve_contract_api() as server:
        yield server


def narrate(api: ContractApi, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--url", api.base_url, "--key", API_KEY, *args], catch_exceptions=False)


# (file name, content, what stderr must say: "LINE: column COLUMN: message" after the file's path)
MALFORMED = [
    pytest.param(
        "lines.csv",
        "id,line\na,hello\n",
        [":1: column line: unknown column", ":1: column text: missing"],
        id="no text column",
    ),
    pytest.param("lines.csv", "text\nhello\n", [":1: column id: missing required column"], id="no id column"),
    pytest.param(
        "lines.csv",
        "id,text,speaker\na,hi,bob\n",
        [":1: column speaker: unknown column 'speaker'"],
        id="unknown column",
    ),
    pytest.param("lines.csv", "id,text,\na,hi,\n", [":1: unknown column #3 (no name)"], id="unnamed column"),
    pytest.param("lines.csv", "id,text,TEXT\na,hi,yo\n", [":1: column text: appears twice"], id="column twice"),
    pytest.param("lines.csv", "id,text\na,hello\n  ,there\n", [":3: column id: empty id"], id="empty id"),
    pytest.param(
        "lines.csv",
        "id,text\na,hi\nb,yo\na,again\n",
        [":4: column id: duplicate id 'a' (first on line 2)"],
        id="duplicate ids",
    ),
    pytest.param(
        "lines.csv",
        "id,text\n../etc/passwd,hi\n",
        [":2: column id: '../etc/passwd': use 1-128"],
        id="id not a file name",
    ),
    pytest.param("lines.csv", "id,text\nManifest,hi\n", [":2: column id: 'Manifest' is reserved"], id="reserved id"),
    pytest.param(
        "lines.csv",
        "id,text\na,hello\nb,\nc,   \n",
        [":3: column text: no text", ":4: column text: no text"],
        id="row with no text",
    ),
    pytest.param(
        "lines.csv",
        "text,id\nhello\n",
        [":2: 1 field where the header has 2 (text, id)"],
        id="short row, header text,id",
    ),
    pytest.param("lines.csv", "id,text\na,hello, world\n", [":2: 3 fields where the header has 2"], id="long row"),
    pytest.param("lines.csv", 'id,text\na,"hello\nb,there\n', [":2: cannot be read"], id="unclosed quote"),
    pytest.param("lines.csv", 'id,text\na,"hello" there\n', [":2: cannot be read"], id="text after a closing quote"),
    pytest.param(
        "lines.csv",
        'id,text\na,"two\nlines"\n,x\n',
        [":4: column id: empty id"],
        id="line numbers after a quoted line break",
    ),
    pytest.param("lines.csv", "id,text\n", [":1: no rows"], id="header only"),
    pytest.param("lines.csv", "", [":1: no header row"], id="empty file"),
    pytest.param("lines.tsv", "id\ttext\nonly-an-id\n", [":2: 1 field where the header has 2"], id="tsv short row"),
    pytest.param(
        "lines.tsv", "id,text\na,hi\n", [":1: column id,text: unknown column 'id,text'"], id="tsv read as tsv"
    ),
    pytest.param(
        "lines.jsonl",
        '{"id": "a", "text": "hi"}\n{"id": "b", "text": }\n',
        [":2: not valid JSON"],
        id="jsonl invalid json",
    ),
    pytest.param("lines.jsonl", '["a", "hi"]\n', [":1: a JSON list where an object"], id="jsonl not an object"),
    pytest.param(
        "lines.jsonl",
        '{"id": "a", "text": "hi", "speed": "2"}\n',
        [":1: column speed: unknown key"],
        id="jsonl unknown key",
    ),
    pytest.param("lines.jsonl", '{"id": "a"}\n', [":1: column text: missing"], id="jsonl missing text"),
    pytest.param("lines.jsonl", '{"text": "hi"}\n', [":1: column id: missing"], id="jsonl missing id"),
    pytest.param(
        "lines.jsonl",
        '{"id": 7, "text": "hi"}\n',
        [":1: column id: must be a string, not int"],
        id="jsonl not a string",
    ),
    pytest.param(
        "lines.jsonl",
        '{"id": "a", "text": "hi", "id": "b"}\n',
        [":1: given more than once: 'id'"],
        id="jsonl key twice",
    ),
    pytest.param(
        "lines.jsonl",
        '{"id": "a", "text": "hi"}\n{"id": "a", "text": "yo"}\n',
        [":2: column id: duplicate"],
        id="jsonl duplicate ids",
    ),
]


@pytest.mark.parametrize(("filename", "content", "expected"), MALFORMED)
def test_a_malformed_input_file_is_refused_before_anything_is_sent(
    api: ContractApi, tmp_path: Path, filename: str, content: str, expected: list[str]
) -> None:
    src = tmp_path / filename
    src.write_text(content, encoding="utf-8")
    result = narrate(api, "submit", str(src))
    assert result.exit_code == 2, result.output
    assert "nothing sent" in result.stderr
    for message in expected:
        assert f"{src}{message}" in result.stderr
    assert api.requests == []


def test_every_problem_is_listed_at_once(api: ContractApi, tmp_path: Path) -> None:
    src = tmp_path / "lines.csv"
    src.write_text("id,text\n,a\n,b\n,c\n" + "".join(f",x{i}\n" for i in range(30)), encoding="utf-8")
    result = narrate(api, "submit", str(src))
    assert result.exit_code == 2
    assert "33 problems" in result.stderr and "... and 13 more" in result.stderr
    assert f"{src}:2: column id" in result.stderr and f"{src}:21: column id" in result.stderr


VOICE_MAP_FAULTS = [
    pytest.param(
        "map.json",
        '{"guard": "joe"}',
        ["lines.csv:3: column character: no voice for character 'captain'"],
        id="unmapped character",
    ),
    pytest.param("map.json", '["guard", "joe"]', ["map.json: a voice map is a JSON object"], id="json not an object"),
    pytest.param(
        "map.json",
        '{"guard": "joe", "guard": "en_us"}',
        ["map.json: given more than once: 'guard'"],
        id="json mapped twice",
    ),
    pytest.param("map.json", '{"guard": ""}', ["map.json: character 'guard' needs a voice"], id="json empty voice"),
    pytest.param(
        "map.csv", "name,voice\nguard,joe\n", ["map.csv:1: a voice map's header is exactly"], id="csv wrong header"
    ),
    pytest.param(
        "map.csv",
        "character,voice\nguard,joe\nguard,en_us\n",
        ["map.csv:3: column character: 'guard' already"],
        id="csv mapped twice",
    ),
    pytest.param("map.csv", "character,voice\nguard,\n", ["map.csv:2: column voice: empty"], id="csv empty voice"),
]


@pytest.mark.parametrize(("filename", "content", "expected"), VOICE_MAP_FAULTS)
def test_a_voice_map_fault_is_refused_before_anything_is_sent(
    api: ContractApi, tmp_path: Path, filename: str, content: str, expected: list[str]
) -> None:
    lines = tmp_path / "lines.csv"
    lines.write_text("id,character,text\na,guard,Halt!\nb,captain,All hands!\n", encoding="utf-8")
    voice_map = tmp_path / filename
    voice_map.write_text(content, encoding="utf-8")
    result = narrate(api, "submit", str(lines), "--voice-map", str(voice_map))
    assert result.exit_code == 2, result.output
    for message in expected:
        assert message in result.stderr
    assert api.requests == []


def test_a_voice_map_needs_a_character_column(api: ContractApi, tmp_path: Path) -> None:
    lines = tmp_path / "lines.csv"
    lines.write_text("id,text\na,Halt!\n", encoding="utf-8")
    voice_map = tmp_path / "map.json"
    voice_map.write_text('{"guard": "joe"}', encoding="utf-8")
    result = narrate(api, "submit", str(lines), "--voice-map", str(voice_map))
    assert result.exit_code == 2
    assert "has no character values to map" in result.stderr
    text = tmp_path / "a.txt"
    text.write_text("Hello.", encoding="utf-8")
    result = narrate(api, "submit", str(text), "--voice-map", str(voice_map))
    assert result.exit_code == 2
    assert "is a plain text" in result.stderr
    assert api.requests == []


def test_id_option_is_checked_and_only_for_a_text(api: ContractApi, tmp_path: Path) -> None:
    text = tmp_path / "a.txt"
    text.write_text("Hello.", encoding="utf-8")
    assert "--id '../x'" in narrate(api, "submit", str(text), "--id", "../x").stderr
    lines = tmp_path / "lines.csv"
    lines.write_text("id,text\na,Halt!\n", encoding="utf-8")
    assert "brings its ids in its id column" in narrate(api, "submit", str(lines), "--id", "x").stderr
    spaced = tmp_path / "chapter 1.txt"
    spaced.write_text("Hello.", encoding="utf-8")
    assert "give one with --id" in narrate(api, "submit", str(spaced)).stderr
    assert api.requests == []
