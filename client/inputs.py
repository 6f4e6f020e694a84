"""Read the inputs of a job from a file: plain text, CSV, TSV or JSON Lines, checked before sending.

A table's rows become `{"id", "text", "voice"?}` inputs. Every problem is reported with the file, the
line and the column (`lines.csv:4: column id: ...`), all of them at once, and nothing is sent: a
batch of game lines is named by its ids, so a row silently dropped or renamed would be a missing file
found weeks later. Parsing is the `csv` and `json` modules'; this module only checks what they give.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any


class Column(StrEnum):
    """The columns (JSONL: keys) an input table may have."""

    ID = "id"
    TEXT = "text"
    VOICE = "voice"
    CHARACTER = "character"


COLUMNS = tuple(column.value for column in Column)
REQUIRED = (Column.ID, Column.TEXT)
INPUT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
"""The API's rule for input ids (they become file names); mirrors `JobInput.id` in shared/jobs.py."""
RESERVED_IDS = frozenset({"manifest"})
"""Taken by the batch's manifest.json (compared case-insensitively, as the API does)."""
MAX_REPORTED = 20
"""Problems listed before the rest are only counted."""
MAX_FIELD_CHARS = 16 * 1024 * 1024
"""Longest cell read (the csv module's default, 128 KiB, is below the API's limit for one text)."""


class InputFormat(StrEnum):
    TEXT = "text"
    CSV = "csv"
    TSV = "tsv"
    JSONL = "jsonl"

    @classmethod
    def of(cls, path: Path) -> InputFormat:
        """By suffix: .csv, .tsv, .jsonl; anything else is one plain text."""
        return {".csv": cls.CSV, ".tsv": cls.TSV, ".jsonl": cls.JSONL}.get(path.suffix.lower(), cls.TEXT)


class InputFileError(Exception):
    """The file cannot be used; `problems` are its lines' faults (`path:line: column c: what`)."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems = problems or []
        listed = self.problems[:MAX_REPORTED]
        more = len(self.problems) - len(listed)
        lines = [message, *(f"  {p}" for p in listed)] + ([f"  ... and {more} more"] if more > 0 else [])
        super().__init__("\n".join(lines))


@dataclass
class Inputs:
    """The inputs to send, and for each the line of the file it came from (to place the API's errors)."""

    items: list[dict[str, str]]
    lines: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """Things the user should know that are not errors (printed on stderr)."""

    def line_of(self, index: int) -> int | None:
        return self.lines[index] if 0 <= index < len(self.lines) else None


def decode(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputFileError(
            f"{path} is not UTF-8 text (invalid byte at offset {exc.start}); convert it first, "
            f"e.g. iconv -f latin1 -t utf-8"
        ) from exc
    except OSError as exc:
        raise InputFileError(f"cannot read {path}: {exc.strerror}") from exc


@dataclass(frozen=True)
class Row:
    """One record of a table or JSONL file: its first line and its fields (absent ones missing)."""

    line: int
    values: dict[str, str]


class _Problems:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.found: list[str] = []

    def add(self, line: int | None, message: str, column: str | None = None) -> None:
        where = (f":{line}" if line is not None else "") + (f": column {column}" if column else "")
        self.found.append(f"{self.path}{where}: {message}")

    def raise_if_any(self) -> None:
        if self.found:
            count = len(self.found)
            raise InputFileError(f"{self.path}: {count} problem{'s' if count > 1 else ''}, nothing sent:", self.found)


def _table_rows(text: str, dialect: type[csv.Dialect], problems: _Problems) -> Iterator[Row]:
    """Rows of a CSV/TSV with a header; short and long rows, unknown and duplicate columns are faults."""
    csv.field_size_limit(max(csv.field_size_limit(), MAX_FIELD_CHARS))
    reader = csv.reader(io.StringIO(text), dialect=dialect, strict=True)
    line = 0
    header: list[str] | None = None
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            hint = "; a quote opened in this record is never closed" if "end of data" in str(exc) else ""
            problems.add(start, f"cannot be read ({exc}){hint}")
            return
        line = start
        if not cells:
            continue  # a blank line
        if header is None:
            header = [name.strip().lower() for name in cells]
            if not _header_ok(header, line, problems):
                return
            continue
        if len(cells) != len(header):
            problems.add(
                line,
                f"{len(cells)} field{'s' if len(cells) != 1 else ''} where the header has {len(header)} "
                f"({', '.join(header)}); quote fields that contain the delimiter",
            )
            continue
        yield Row(line, dict(zip(header, cells, strict=True)))
    if header is None:
        problems.add(max(line, 1), f"no header row; the first line names the columns ({', '.join(REQUIRED)}, ...)")


def _header_ok(header: list[str], line: int, problems: _Problems) -> bool:
    ok = True
    for index, name in enumerate(header, start=1):
        if name not in COLUMNS:
            shown = repr(name) if name else f"#{index} (no name)"
            problems.add(line, f"unknown column {shown}; known columns: {', '.join(COLUMNS)}", name or None)
            ok = False
        elif header.index(name) != index - 1:
            problems.add(line, "appears twice in the header", name)
            ok = False
    for column in REQUIRED:
        if column not in header:
            problems.add(line, "missing required column (the header needs id and text)", column)
            ok = False
    return ok


def _jsonl_rows(text: str, problems: _Problems) -> Iterator[Row]:
    """One JSON object per non-blank line, its keys the columns; every value a string."""
    # Split on line feeds only: str.splitlines() would also split at U+2028, which JSON strings may hold.
    for line, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            value: Any = json.loads(raw, object_pairs_hook=_refuse_duplicate_keys)
        except json.JSONDecodeError as exc:
            problems.add(line, f"not valid JSON ({exc.msg} at character {exc.colno})")
            continue
        except ValueError as exc:  # a key twice in one object
            problems.add(line, str(exc))
            continue
        if not isinstance(value, dict):
            problems.add(line, f'a JSON {type(value).__name__} where an object {{"id": ..., "text": ...}} belongs')
            continue
        good = True
        for key, item in value.items():
            if key not in COLUMNS:
                problems.add(line, f"unknown key; known keys: {', '.join(COLUMNS)}", key)
                good = False
            elif not isinstance(item, str):
                problems.add(line, f"must be a string, not {type(item).__name__}", key)
                good = False
        for column in REQUIRED:
            if column not in value:
                problems.add(line, "missing", column)
                good = False
        if good:
            yield Row(line, value)


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if twice := sorted({key for key in keys if keys.count(key) > 1}):
        raise ValueError(f"given more than once: {', '.join(map(repr, twice))}")
    return dict(pairs)


def read_voice_map(path: Path) -> dict[str, str]:
    """`character -> voice` from a JSON object (`{"guard": "voice_...", ...}`) or a CSV/TSV with the
    columns character,voice. A character listed twice or an empty voice is a fault."""
    text = decode(path)
    problems = _Problems(path)
    mapping: dict[str, str] = {}
    if path.suffix.lower() == ".json":
        try:
            value: Any = json.loads(text, object_pairs_hook=_refuse_duplicate_keys)
        except json.JSONDecodeError as exc:
            raise InputFileError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from exc
        except ValueError as exc:
            raise InputFileError(f"{path}: {exc}") from exc
        if not isinstance(value, dict):
            raise InputFileError(f'{path}: a voice map is a JSON object {{"character": "voice", ...}}')
        for character, voice in value.items():
            if not isinstance(voice, str) or not voice.strip():
                problems.add(None, f"character {character!r} needs a voice name or id (a non-empty string)")
            else:
                mapping[character.strip()] = voice.strip()
        problems.raise_if_any()
        return mapping
    dialect = csv.excel_tab if path.suffix.lower() == ".tsv" else csv.excel
    reader = csv.reader(io.StringIO(text), dialect=dialect, strict=True)
    seen: dict[str, int] = {}
    try:
        header = [name.strip().lower() for name in next(reader, [])]
        if header != ["character", "voice"]:
            found = ",".join(header)
            raise InputFileError(f"{path}:1: a voice map's header is exactly: character,voice (found: {found})")
        for cells in reader:
            line = reader.line_num
            if not cells:
                continue
            if len(cells) != 2:
                problems.add(line, f"{len(cells)} fields where character,voice has 2")
                continue
            character, voice = cells[0].strip(), cells[1].strip()
            if not character or not voice:
                problems.add(line, "empty", "character" if not character else "voice")
            elif character in seen:
                problems.add(line, f"{character!r} already mapped on line {seen[character]}", "character")
            else:
                seen[character] = line
                mapping[character] = voice
    except csv.Error as exc:
        problems.add(reader.line_num + 1, f"not valid CSV: {exc}")
    problems.raise_if_any()
    return mapping


def read_inputs(path: Path, input_id: str | None = None, voice_map: dict[str, str] | None = None) -> Inputs:
    """The job inputs in `path`: a plain text is one input (id `input_id` or the file's stem); a table
    (CSV, TSV, JSONL) one per row, with the columns id and text, optionally voice and character.

    A row's voice is its `voice` value; else its `character` mapped through `voice_map`; else none
    (the job's voice). With both set the `voice` value wins: it overrides one line of a character.
    """
    text = decode(path)
    kind = InputFormat.of(path)
    if kind is InputFormat.TEXT:
        if voice_map is not None:
            raise InputFileError(f"--voice-map maps a table's character column; {path} is a plain text")
        if not text.strip():
            raise InputFileError(f"{path} is empty")
        if input_id is not None and not INPUT_ID.fullmatch(input_id):
            raise InputFileError(f"--id {input_id!r}: use 1-128 letters, digits, '.', '_' or '-' (it names the file)")
        if input_id is None and not INPUT_ID.fullmatch(path.stem):
            raise InputFileError(f"{path.stem!r} (the file's name) is not a valid input id; give one with --id")
        return Inputs([{"id": input_id or path.stem, "text": text}], [1])
    if input_id:
        raise InputFileError(f"--id names the input of a text file; {path} brings its ids in its id column")
    problems = _Problems(path)
    if kind is InputFormat.JSONL:
        rows = list(_jsonl_rows(text, problems))
    else:
        rows = list(_table_rows(text, csv.excel_tab if kind is InputFormat.TSV else csv.excel, problems))
    inputs = Inputs([])
    first_line: dict[str, int] = {}
    has_character = False
    for row in rows:
        item = _input(row, voice_map, first_line, problems)
        has_character = has_character or bool(row.values.get(Column.CHARACTER, "").strip())
        if item is not None:
            inputs.items.append(item)
            inputs.lines.append(row.line)
    if not rows and not problems.found:
        problems.add(1, "no rows: a header and at least one line with an id and a text")
    problems.raise_if_any()
    if voice_map is not None and not has_character:
        raise InputFileError(f"--voice-map was given but {path} has no character values to map")
    if voice_map is None and has_character:
        inputs.notes.append(
            f"{path} has a character column but no --voice-map was given: every line uses the job's voice"
        )
    return inputs


def _input(
    row: Row, voice_map: dict[str, str] | None, first_line: dict[str, int], problems: _Problems
) -> dict[str, str] | None:
    values, line = row.values, row.line
    before = len(problems.found)
    input_id = values.get(Column.ID, "").strip()
    if not input_id:
        problems.add(line, "empty id (every row needs one: it names the row's file)", Column.ID)
    elif not INPUT_ID.fullmatch(input_id):
        problems.add(line, f"{input_id!r}: use 1-128 letters, digits, '.', '_' or '-' (it names the file)", Column.ID)
    elif input_id.lower() in RESERVED_IDS:
        problems.add(line, f"{input_id!r} is reserved for the batch's manifest.json", Column.ID)
    elif input_id in first_line:
        problems.add(line, f"duplicate id {input_id!r} (first on line {first_line[input_id]})", Column.ID)
    else:
        first_line[input_id] = line
    text = values.get(Column.TEXT, "")
    if not text.strip():
        problems.add(line, "no text", Column.TEXT)
    voice = values.get(Column.VOICE, "").strip()
    character = values.get(Column.CHARACTER, "").strip()
    if not voice and character and voice_map is not None:
        voice = voice_map.get(character, "")
        if not voice:
            problems.add(line, f"no voice for character {character!r} in the --voice-map file", Column.CHARACTER)
    if len(problems.found) > before:
        return None
    item = {"id": input_id, "text": text}
    if voice:
        item["voice"] = voice
    return item
