"""Hostile JSON input: every kind below becomes a located rejection, never an escaped exception.

(Part of the hostile-input work: bytes that are not UTF-8 inside a JSON array, nesting deeper
than the decoders allow, numbers past int()'s digit limit, and white space that used to cost
quadratic time to skip.)
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fhir_iapt.pipeline import convert_bytes
from fhir_iapt.results import Rejected
from fhir_iapt.sources._json import peek

CASES: list[tuple[str, bytes, str, str]] = [
    # (case, body, mapping, error code)
    ("surrogate bytes in an array", b'[{"nhsNumber": "\xed\xa0\x80"}]', "cardiac-json", "FI103"),
    ("surrogate bytes in NDJSON", b'{"nhsNumber": "\xed\xa0\x80"}\n', "cardiac-json", "FI103"),
    (
        "objects nested 5,000 deep, NDJSON",
        b'{"a":' * 5000 + b"1" + b"}" * 5000 + b"\n",
        "cardiac-json",
        "FI101",
    ),
    (
        "arrays nested 5,000 deep inside an array",
        b'[{"a":' + b"[" * 5000 + b"]" * 5000 + b"}]",
        "cardiac-json",
        "FI104",
    ),
    ("a 5,000-digit number, NDJSON", b'{"a": ' + b"9" * 5000 + b"}\n", "cardiac-json", "FI101"),
    ("a 5,000-digit number in an array", b'[{"a": ' + b"9" * 5000 + b"}]", "cardiac-json", "FI104"),
    (
        "a QuestionnaireResponse nested 5,000 deep",
        b'{"resourceType": "QuestionnaireResponse", "item": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        "questionnaire-response",
        "FI101",
    ),
    (
        "surrogate bytes in a QuestionnaireResponse",
        b'{"resourceType": "QuestionnaireResponse", "status": "\xed\xa0\x80"}',
        "questionnaire-response",
        "FI103",
    ),
]


@pytest.mark.parametrize(("case", "body", "mapping", "code"), CASES, ids=[c[0] for c in CASES])
def test_hostile_json_is_a_located_rejection(
    case: str, body: bytes, mapping: str, code: str
) -> None:
    """The body gives Rejected results with an OperationOutcome; nothing raises."""
    results = convert_bytes(body, name="hostile.json", mapping=mapping, validation="none")
    assert results, case
    assert all(isinstance(r, Rejected) for r in results), case
    first = results[0]
    assert isinstance(first, Rejected)
    assert first.error.error_code == code, case
    outcome = json.dumps(first.outcome)
    assert "hostile.json" in outcome
    assert "99999" not in outcome  # no input value quoted back


class _CountingStream(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.reads = 0
        self.scanned = 0

    def read(self, size: int | None = -1) -> bytes:
        self.reads += 1
        chunk = super().read(size)
        self.scanned += len(chunk)
        return chunk


def test_leading_white_space_is_read_in_linear_time() -> None:
    """Skipping 1 MB of white space before the first value takes a bounded number of reads
    (it used to re-scan everything read so far, 64 bytes at a time: quadratic)."""
    stream = _CountingStream(b" " * 1_000_000 + b'{"a": 1}\n')
    head, first = peek(stream)
    assert first == ord("{")
    assert stream.reads <= 1_000_000 // 65536 + 3
    assert head.endswith(b"{") or b"{" in head


EXAMPLE_XML = Path(__file__).resolve().parent.parent / "examples" / "respiratory.xml"
ENTITY_VALUE = "9990000026"  # a valid test-range NHS number, for the entity to smuggle in


def _with_entity() -> bytes:
    """The respiratory example with an internal-subset entity standing for an NHS number."""
    data = EXAMPLE_XML.read_bytes().replace(
        b"<RespiratoryClinicExport",
        b'<!DOCTYPE RespiratoryClinicExport [<!ENTITY n "' + ENTITY_VALUE.encode() + b'">]>\n'
        b"<RespiratoryClinicExport",
        1,
    )
    return re.sub(rb'nhsNumber="\d+"', b'nhsNumber="&n;"', data, count=1)


def test_a_document_with_a_dtd_is_refused_and_no_entity_is_expanded() -> None:
    """A DOCTYPE (with an entity) gives one read rejection; no record, so no expanded value."""
    results = convert_bytes(
        _with_entity(), name="r.xml", mapping="respiratory-xml", validation="none"
    )
    assert [type(r) for r in results] == [Rejected]
    first = results[0]
    assert isinstance(first, Rejected)
    assert first.error.error_code == "FI104"
    assert "DOCTYPE" in first.error.message


def test_dtd_with_bulk_layout_does_not_crash_the_process(tmp_path: Path) -> None:
    """The same file through `convert --layout bulk` exits 1 with a reject (it aborted with
    munmap_chunk(): invalid pointer), and leaves no temporary files."""
    source = tmp_path / "r.xml"
    source.write_bytes(_with_entity())
    out = tmp_path / "out"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "fhir_iapt.cli",
            "convert",
            str(source),
            "--mapping",
            "respiratory-xml",
            "--layout",
            "bulk",
            "--validate",
            "none",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert json.loads((out / "summary.json").read_text())["rejected"] == {"FI104": 1}
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_xml_parser_messages_never_quote_the_input() -> None:
    """A broken attribute is reported by the kind of error, not lxml's text quoting it."""
    data = EXAMPLE_XML.read_bytes()
    nhs = re.search(rb'nhsNumber="(\d+)"', data)
    assert nhs is not None
    broken = data.replace(nhs.group(0), b"nhs" + nhs.group(1) + b" x", 1)
    results = convert_bytes(broken, name="r.xml", mapping="respiratory-xml", validation="none")
    rejected = [r for r in results if isinstance(r, Rejected)]
    assert rejected
    text = json.dumps([r.outcome for r in rejected])
    assert nhs.group(1).decode() not in text


_NESTED_UNDER_A_CAP = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1024 * 1024 * 1024, 1024 * 1024 * 1024))  # 1 GiB
from fhir_iapt.pipeline import convert_bytes
n = 100_000
bodies = {
    "cardiac-json": b"[" + b"[" * n + b"]" * n + b"]",
    "questionnaire-response": b'{"resourceType": "Bundle", "entry": [\\n'
    + b"[" * n + b"]" * n + b"]}",
}
for mapping, body in bodies.items():
    results = convert_bytes(body, name="deep.json", mapping=mapping, validation="none")
    print(mapping, [r.error.error_code for r in results])
"""


def test_a_200_kb_body_of_100k_nested_arrays_stays_under_1_gib() -> None:
    """100k nested arrays (200 KB) are refused as too deep within a 1 GiB address-space cap
    (ijson's path prefixes made this cost 24 GB until the kernel killed the process)."""
    done = subprocess.run(
        [sys.executable, "-c", _NESTED_UNDER_A_CAP],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == [
        "cardiac-json ['FI104']",
        "questionnaire-response ['FI104']",
    ]


def test_nesting_at_the_limit_is_read_and_past_it_refused() -> None:
    """MAX_DEPTH levels read; one more is a located FI104 (the limit is exact)."""
    from fhir_iapt.limits import MAX_DEPTH

    def body(depth: int) -> bytes:  # an array of one object holding depth - 2 nested arrays
        return b'[{"a": ' + b"[" * (depth - 2) + b"]" * (depth - 2) + b"}]"

    ok = convert_bytes(body(MAX_DEPTH), name="d.json", mapping="cardiac-json", validation="none")
    assert [r.error.error_code for r in ok if isinstance(r, Rejected)] != ["FI104"]
    deep = convert_bytes(
        body(MAX_DEPTH + 1), name="d.json", mapping="cardiac-json", validation="none"
    )
    assert [r.error.error_code for r in deep if isinstance(r, Rejected)] == ["FI104"]


def test_a_defect_met_by_one_record_rejects_that_record_and_the_run_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An exception the adapter did not foresee (here: a fill function that fails on the second
    record) rejects that record with FI001, names no value, and the other records convert."""
    from dataclasses import replace

    from fhir_iapt.mapping import load_mapping
    from fhir_iapt.mapping.contract import MapTarget
    from fhir_iapt.mapping.referral import FIELDS, build_referral_record
    from fhir_iapt.records import ReferralRecord
    from fhir_iapt.results import Converted, Skipped

    calls = []

    def flaky(values: dict, at: object, system: str) -> ReferralRecord:
        calls.append(1)
        if len(calls) == 2:
            raise ZeroDivisionError(values["patient.nhs_number"])  # quotes a value on purpose
        return build_referral_record(values, at, system)  # type: ignore[arg-type]

    mapping = load_mapping("diabetes-csv")
    faulty = replace(mapping, contract=MapTarget("referral", ReferralRecord, FIELDS, fill=flaky))
    example = Path(__file__).resolve().parent.parent / "examples" / "diabetes.csv"
    results = convert_bytes(example.read_bytes(), name="d.csv", mapping=faulty, validation="none")
    plain = convert_bytes(example.read_bytes(), name="d.csv", mapping=mapping, validation="none")
    assert len(results) == len(plain)
    second = results[1]
    assert isinstance(second, Rejected)
    assert second.error.error_code == "FI001"
    nhs_numbers = re.findall(r"\b9\d{9}\b", example.read_text())
    assert not any(n in json.dumps(second.outcome) for n in nhs_numbers)
    assert not any(n in caplog.text for n in nhs_numbers)
    assert [type(r) for i, r in enumerate(results) if i != 1] == [
        type(r) for i, r in enumerate(plain) if i != 1
    ]
    assert any(isinstance(r, Converted | Skipped) for r in results)
