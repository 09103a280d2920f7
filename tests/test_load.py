"""Stage 1, load: strict YAML with positions, YAML 1.2 scalars, bounded aliases and nesting."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipec.diagnostics import PipecError
from pipec.load.load import MAX_DEPTH, load, load_bytes, resolve_plain


def _codes(text: str | bytes) -> list[str]:
    raw = text.encode() if isinstance(text, str) else text
    with pytest.raises(PipecError) as caught:
        load_bytes(raw, "spec.yaml")
    return [d.code for d in caught.value.diagnostics]


def test_positions_of_keys_and_values() -> None:
    doc = load_bytes(b"pipec: 1\nservices:\n  api:\n    port: 8080\n", "spec.yaml")
    assert doc.data == {"pipec": 1, "services": {"api": {"port": 8080}}}
    key = doc.span(("services", "api", "port"), key=True)
    value = doc.span(("services", "api", "port"))
    assert (key.line, key.column) == (4, 5)
    assert (value.line, value.column, value.width) == (4, 11, 4)


def test_span_falls_back_to_the_nearest_ancestor() -> None:
    doc = load_bytes(b"services:\n  api: {}\n", "spec.yaml")
    span = doc.span(("services", "api", "missing", "deeper"))
    assert (span.line, span.column) == (2, 8)


@pytest.mark.parametrize(("text", "expected"), [
    ("on", "on"), ("yes", "yes"), ("no", "no"), ("off", "off"), ("y", "y"),
    ("true", True), ("False", False), ("~", None), ("null", None), ("", None),
    ("012", 12), ("0o17", 15), ("0x1F", 31), ("1.10", 1.1), ("1_000", "1_000"), ("1:20", "1:20"),
    ("12e3", 12000.0), ("-.inf", float("-inf")), ("python3.13", "python3.13"),
])
def test_plain_scalars_follow_yaml_1_2(text: str, expected: object) -> None:
    assert resolve_plain(text) == expected


def test_plain_text_is_remembered_for_non_strings() -> None:
    doc = load_bytes(b"a: 012345678901\nb: 1.10\nc: on\nd: '7'\n", "spec.yaml")
    assert doc.plain == {("a",): "012345678901", ("b",): "1.10"}
    assert doc.data["c"] == "on"
    assert doc.data["d"] == "7"


def test_bom_and_crlf_are_accepted() -> None:
    doc = load_bytes(b"\xef\xbb\xbfpipec: 1\r\nproject: shop\r\n", "spec.yaml")
    assert doc.data == {"pipec": 1, "project": "shop"}
    assert doc.span(("project",)).line == 2


def test_aliases_expand_when_small() -> None:
    doc = load_bytes(b"base: &b {cpu: 256}\ncopy: *b\n", "spec.yaml")
    assert doc.data["copy"] == {"cpu": 256}


def test_duplicate_keys_name_both_lines() -> None:
    with pytest.raises(PipecError) as caught:
        load_bytes(b"a: 1\nb: 2\na: 3\n", "spec.yaml")
    [problem] = caught.value.diagnostics
    assert problem.code == "PC008"
    assert problem.line == 3
    assert "line 1" in problem.message


def test_every_duplicate_is_reported() -> None:
    assert _codes("a: 1\na: 2\nb: {c: 1, c: 2}\n") == ["PC008", "PC008"]


def test_nesting_is_bounded_below_the_parser_limit() -> None:
    text = "a: " + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1) + "\n"
    assert _codes(text) == ["PC010"]


@pytest.mark.parametrize(("text", "code"), [
    ("a: !!int abc\n", "PC011"),
    ("a: !!binary aGk=\n", "PC011"),
    ("a: !Sub x\n", "PC011"),
    ("[a, b]: 1\n", "PC015"),
    ("a: *nowhere\n", "PC009"),
    ("\x00\n", "PC004"),
    ("a: b\x07\n", "PC004"),
])
def test_unsupported_yaml(text: str, code: str) -> None:
    assert _codes(text) == [code]


def test_explicit_tags_that_agree_are_fine() -> None:
    doc = load_bytes(b"a: !!str 012\nb: !!int 7\nc: !!float 2\n", "spec.yaml")
    assert doc.data == {"a": "012", "b": 7, "c": 2.0}


@pytest.mark.parametrize("number", ["9" * 5000, "-" + "1" * 101, "0x" + "f" * 200, "1." + "5" * 120, "1e" + "9" * 99])
def test_a_number_longer_than_pipec_reads_is_a_located_error(number: str) -> None:
    with pytest.raises(PipecError) as caught:
        load_bytes(f"pipec: 1\ntimeout: {number}\n".encode(), "spec.yaml")
    [found] = caught.value.diagnostics
    assert (found.code, found.line, found.column, found.message) == (
        "PC017", 2, 10, f"a number of {len(number)} characters is longer than pipec reads (100)")
    assert caught.value.exit_code == 1


def test_long_text_that_is_no_number_and_quoted_numbers_are_kept() -> None:
    doc = load_bytes(f"a: {'fa' * 100}\nb: \"{'9' * 5000}\"\nc: {'9' * 100}\n".encode(), "spec.yaml")
    assert doc.data == {"a": "fa" * 100, "b": "9" * 5000, "c": int("9" * 100)}


def test_a_fifo_a_device_a_directory_and_a_path_too_long_are_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "pipeline.yaml"
    os.mkfifo(fifo)  # nobody writes to it: reading it would block forever
    too_long = tmp_path / ("a/" * 3000 + "pipeline.yaml")
    cases = [(fifo, "this is not a regular file (a pipe, socket or device)"),
             (Path("/dev/null"), "this is not a regular file (a pipe, socket or device)"),
             (tmp_path, "this is a directory, not a file"),
             (too_long, "the file cannot be read: the path is too long"),
             (tmp_path / "missing.yaml", "the file does not exist")]
    for path, message in cases:
        with pytest.raises(PipecError) as caught:
            load(path)
        [found] = caught.value.diagnostics
        assert (found.code, found.message, caught.value.exit_code) == ("PC001", message, 1)
        assert len(found.file) <= 200
