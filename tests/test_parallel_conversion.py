"""Worker processes: what crosses the process boundary, and that it changes nothing.

Records go to workers packed (a flat record as its values under a key tuple sent once per
chunk) and bundles come back serialised (:meth:`Converted.from_json`). Both are checked against
the plain values: packing round-trips any record, a serialised result is the same result, and
every bundled example converts to the same bytes, skips and rejections with two workers as
with one.
"""

from __future__ import annotations

import pickle
from dataclasses import FrozenInstanceError
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fhir_iapt import pipeline
from fhir_iapt.emit import NdjsonBundleWriter
from fhir_iapt.errors import Location
from fhir_iapt.pipeline import _pack, _unpack, convert_file
from fhir_iapt.results import Converted, Rejected, Result, Skipped
from fhir_iapt.sources import SourceRecord

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

_TEXT = st.text(max_size=12)
_LOCATIONS = st.builds(
    Location,
    file=st.none() | _TEXT,
    row=st.none() | st.integers(1, 10**7),
    line=st.none() | st.integers(1, 10**7),
    element=st.none() | _TEXT,
    field=st.none() | _TEXT,
)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=10,
)
_DATA = (
    st.dictionaries(st.sampled_from(["a", "b", "nhs_number", "c"]), _TEXT)
    | st.dictionaries(_TEXT, _TEXT, max_size=5)
    | st.dictionaries(_TEXT, _JSON, max_size=4)
)


@settings(deadline=None)  # the machine is shared: time per example is not the point
@given(st.lists(st.builds(SourceRecord, _DATA, _LOCATIONS), max_size=20))
def test_packed_records_unpack_to_the_same_records(records: list[SourceRecord]) -> None:
    """_unpack(_pack(records)) gives back equal records (data, key order and location)."""
    keysets, packed = _pack(records)
    sent = pickle.loads(pickle.dumps((keysets, packed)))  # noqa: S301 - our own bytes
    back = list(_unpack(*sent))
    assert back == records
    assert [list(r.data) for r in back] == [list(r.data) for r in records]


def _bundle() -> dict[str, Any]:
    return {"resourceType": "Bundle", "id": "b1", "type": "transaction", "entry": [{"x": 1.5}]}


def test_a_serialised_result_is_the_same_result() -> None:
    """Converted.from_json equals the Converted of the parsed dict, and pickles as one."""
    at = Location(file="x.csv", row=2, line=3)
    data = orjson.dumps(_bundle())
    lazy = Converted.from_json("k", data, at, "outcome")
    plain = Converted("k", _bundle(), at, "outcome")
    assert lazy == plain
    for result in (lazy, plain):
        assert pickle.loads(pickle.dumps(result)) == plain  # noqa: S301 - our own bytes
    assert repr(lazy) == repr(plain)
    match lazy:
        case Converted(key, bundle, location, kind):
            assert (key, bundle, location, kind) == ("k", _bundle(), at, "outcome")


def test_serialised_bytes_are_written_as_they_came_until_the_dict_is_handed_out() -> None:
    """json() is the bytes received; once `bundle` was handed out (and changed), it follows it."""
    data = orjson.dumps(_bundle())
    result = Converted.from_json("k", data, Location())
    assert result.json() is data
    assert result.json(newline=True) == data + b"\n"
    result.bundle["id"] = "changed"
    assert orjson.loads(result.json())["id"] == "changed"
    assert result.json(newline=True) == orjson.dumps(result.bundle) + b"\n"


def test_converted_stays_frozen() -> None:
    """A Converted cannot be reassigned, serialised or not."""
    for result in (
        Converted("k", _bundle(), Location()),
        Converted.from_json("k", orjson.dumps(_bundle()), Location()),
    ):
        with pytest.raises(FrozenInstanceError):
            result.key = "other"  # type: ignore[misc]
        with pytest.raises(TypeError):
            hash(result)


def _summary(result: Result) -> tuple[Any, ...]:
    if isinstance(result, Converted):
        return ("converted", result.key, result.location, result.kind, result.json())
    if isinstance(result, Skipped):
        return ("skipped", result.key, result.reason, result.detail, result.location)
    assert isinstance(result, Rejected)
    return ("rejected", result.location, result.outcome)


@pytest.mark.parametrize(
    ("example", "mapping"),
    [
        ("diabetes.csv", "diabetes-csv"),
        ("respiratory.xml", "respiratory-xml"),
        ("cardiac.json", "cardiac-json"),
        ("cardiac.ndjson", "cardiac-json"),
        ("iapt-outcomes.csv", "iapt-outcomes"),
    ],
)
def test_two_workers_give_exactly_what_one_gives(
    example: str, mapping: str, tmp_path: Path
) -> None:
    """Every example: same results in the same order and byte-identical bundles.ndjson."""
    outputs = []
    for workers in (1, 2):
        results = list(
            convert_file(EXAMPLES / example, mapping=mapping, validation="none", workers=workers)
        )
        out = tmp_path / str(workers)
        with NdjsonBundleWriter(out) as writer:
            for result in results:
                if isinstance(result, Converted):
                    writer.write(result)
        outputs.append(([_summary(r) for r in results], (out / "bundles.ndjson").read_bytes()))
    assert outputs[0] == outputs[1]
    assert outputs[0][1]  # something was converted


class _NoPool:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("no worker process should start for this input")


def test_workers_zero_converts_small_input_in_this_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """workers=0 on input too small to repay starting workers converts in this process."""
    example = EXAMPLES / "diabetes.csv"
    assert example.stat().st_size < pipeline.AUTO_MIN_BYTES
    monkeypatch.setattr(pipeline, "ProcessPoolExecutor", _NoPool)
    auto = list(convert_file(example, mapping="diabetes-csv", validation="none", workers=0))
    one = list(convert_file(example, mapping="diabetes-csv", validation="none", workers=1))
    assert [_summary(r) for r in auto] == [_summary(r) for r in one]


def test_workers_zero_uses_every_cpu_for_big_input(monkeypatch: pytest.MonkeyPatch) -> None:
    """workers=0 on input worth it starts one worker process per usable CPU."""
    started: list[int] = []
    real = pipeline.ProcessPoolExecutor

    def recording(*args: Any, max_workers: int, **kwargs: Any) -> Any:
        started.append(max_workers)
        return real(*args, max_workers=max_workers, **kwargs)

    monkeypatch.setattr(pipeline, "AUTO_MIN_BYTES", 1)
    monkeypatch.setattr(pipeline, "_usable_cpus", lambda: 2)
    monkeypatch.setattr(pipeline, "ProcessPoolExecutor", recording)
    example = EXAMPLES / "diabetes.csv"
    auto = list(convert_file(example, mapping="diabetes-csv", validation="none", workers=0))
    one = list(convert_file(example, mapping="diabetes-csv", validation="none", workers=1))
    assert started == [2]
    assert [_summary(r) for r in auto] == [_summary(r) for r in one]
