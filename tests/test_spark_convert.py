"""fhir_iapt.spark on local[2]: the output equals the single-process ``fhir-iapt convert``.

Same ids, same bytes per bundle and resource, the same rejects with the same locations (file,
row, line) and the same summary, over the bundled examples and a generated export of a few
thousand rows with bad rows in it; the mapping, the shape check and a consent register are
loaded once per Python worker process, not per task or record.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pytest
from spark_helpers import EXAMPLES, bench_convert, cli, lines, session, summary

from fhir_iapt import spark as fs
from fhir_iapt.consent import ConsentFiles
from fhir_iapt.fhir.options import DEFAULT_OPTIONS
from fhir_iapt.limits import current
from fhir_iapt.mapping import load_mapping
from fhir_iapt.pipeline import convert_files
from fhir_iapt.results import Rejected
from fhir_iapt.spark import _worker
from fhir_iapt.spark._convert import ConvertTask

ROWS = 3000


@pytest.fixture(scope="module")
def spark() -> Any:
    return session()


def _export(path: Path) -> Path:
    """bench/convert.py's export (every row referred, consented, fully screened) with bad and
    awkward rows among the good: a failing NHS number check digit, a row short of fields, a
    blank line, a quoted reason spanning two lines, a patient not referred, a record sent
    again later with a corrected date (its ledger entry and shared resources: which copy
    wins)."""
    bench_convert().generate(path, ROWS)
    text = path.read_text(encoding="utf-8").splitlines()
    header, rows = text[0], text[1:]
    columns = next(csv.reader([header]))
    nhs = columns.index("nhs_number")
    refer = columns.index("refer")
    reason = columns.index("reason")
    out = [header]
    for i, line in enumerate(rows):
        cells = next(csv.reader([line]))
        if i % 397 == 5:
            cells[nhs] = "999 000 0019"  # fails modulus 11
        if i % 211 == 7:
            cells[refer] = "N"
        if i % 503 == 11:
            cells[reason] = "Low mood\nand poor sleep"
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow(cells)  # quotes the line break
        out.append(buffer.getvalue()[:-1])
        if i == 100:
            out.append("")  # a blank line: the reader skips it without counting a row
        if i == 1500:
            out.append("DM-SHORT,9990000018")  # too few fields
        if i == 2500:  # record 42 sent again, corrected: a later review date
            again = next(csv.reader([rows[42]]))
            again[columns.index("review_date")] = "2026-12-01"
            buffer = io.StringIO()
            csv.writer(buffer, lineterminator="\n").writerow(again)
            out.append(buffer.getvalue()[:-1])
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _export(tmp_path_factory.mktemp("export") / "diabetes-gen.csv")


def _cli_out(tmp: Path, inputs: list[Path], mapping: str, *extra: str) -> Path:
    out = tmp / "cli"
    code = cli(
        "convert",
        *map(str, inputs),
        "--mapping",
        mapping,
        "--out",
        str(out),
        "--ledger",
        str(tmp / "cli-ledger.sqlite"),
        *extra,
    )
    assert code in (0, 1)
    return out


def test_generated_export_equals_the_cli_byte_for_byte(
    spark: Any, export: Path, tmp_path: Path
) -> None:
    """A few thousand rows with rejects on 4 partitions: bundles.ndjson, rejects.ndjson (rows
    and lines as the CLI's) and the summary equal the CLI's, and so do the referrals recorded
    in the ledger."""
    expected = _cli_out(tmp_path, [export], "diabetes-csv")
    conv = fs.convert_files(spark, [export], "diabetes-csv", partitions=4)
    out = tmp_path / "spark"
    written = fs.write_output(conv, out, ordered=True, ledger=tmp_path / "spark-ledger.sqlite")
    assert lines(out / "bundles.ndjson") == lines(expected / "bundles.ndjson")
    assert lines(out / "rejects.ndjson") == lines(expected / "rejects.ndjson")
    assert summary(out) == summary(expected) == {k: written[k] for k in summary(out)}
    assert summary(out)["rejected_total"] >= 9  # the bad rows are there
    assert summary(out)["skipped"]
    # the short row: data row 1502 (after row 1501, the blank line not counted), on the
    # physical line it is on (after the blank line and the multi-line rows before it)
    line = export.read_text(encoding="utf-8").split("\n").index("DM-SHORT,9990000018") + 1
    places = [orjson.loads(x)["issue"][0]["location"] for x in lines(out / "rejects.ndjson")]
    assert [f"diabetes-gen.csv row 1502 line {line}"] in places

    from fhir_iapt.ledger import Ledger

    with (
        Ledger(tmp_path / "spark-ledger.sqlite") as ours,
        Ledger(tmp_path / "cli-ledger.sqlite") as theirs,
    ):
        assert list(ours.entries()) == list(theirs.entries())
        assert ours.count() == summary(out)["converted"] - 1  # the record sent twice


def test_generated_export_bulk_layout_equals_the_cli(
    spark: Any, export: Path, tmp_path: Path
) -> None:
    """The Bulk Data layout: one <Type>.ndjson per type, each resource once with its
    references rewritten, the same bytes as the CLI's (in its order with ordered=True)."""
    expected = _cli_out(tmp_path, [export], "diabetes-csv", "--layout", "bulk")
    conv = fs.convert_files(spark, [export], "diabetes-csv", partitions=3)
    out = tmp_path / "spark"
    fs.write_output(conv, out, layout="bulk", ordered=True)
    types = sorted(p.name for p in expected.glob("*.ndjson") if p.name != "rejects.ndjson")
    assert types == sorted(p.name for p in out.glob("*.ndjson") if p.name != "rejects.ndjson")
    assert "Patient.ndjson" in types
    for name in types:
        assert lines(out / name) == lines(expected / name), name
    assert lines(out / "rejects.ndjson") == lines(expected / "rejects.ndjson")


@pytest.mark.parametrize(
    ("example", "mapping"),
    [
        ("diabetes.csv", "diabetes-csv"),
        ("respiratory.xml", "respiratory-xml"),
        ("cardiac.json", "cardiac-json"),
    ],
)
def test_bundled_examples_equal_the_cli(
    spark: Any, tmp_path: Path, example: str, mapping: str
) -> None:
    """Each bundled example (CSV, XML with ancestor attributes, a JSON array) with its mapping:
    the same bundles, rejects and summary as fhir-iapt convert."""
    expected = _cli_out(tmp_path, [EXAMPLES / example], mapping)
    out = tmp_path / "spark"
    fs.write_output(fs.convert_files(spark, [EXAMPLES / example], mapping), out, ordered=True)
    assert lines(out / "bundles.ndjson") == lines(expected / "bundles.ndjson")
    assert lines(out / "bundles.ndjson")
    assert lines(out / "rejects.ndjson") == lines(expected / "rejects.ndjson")
    assert summary(out) == summary(expected)


def test_two_files_unordered_have_the_clis_lines_in_a_folder_named_like_a_glob(
    spark: Any, tmp_path: Path
) -> None:
    """Two inputs written without ordering, into a folder whose name has glob characters:
    the CLI's bundle lines (in Spark's order) and its summary, inputs in order."""
    inputs = [EXAMPLES / "cardiac.ndjson", EXAMPLES / "cardiac.json"]
    expected = _cli_out(tmp_path, inputs, "cardiac-json")
    conv = fs.convert_files(spark, inputs, "cardiac-json", partitions=3)
    out = tmp_path / "spark[1]"  # a folder name Spark's readers would take as a glob
    fs.write_output(conv, out)
    assert sorted(lines(out / "bundles.ndjson")) == sorted(lines(expected / "bundles.ndjson"))
    assert summary(out) == summary(expected)
    assert summary(expected)["inputs"] == ["cardiac.ndjson", "cardiac.json"]


def test_a_dataframe_spark_read_numbered_by_row_equals_the_cli(
    spark: Any, export: Path, tmp_path: Path
) -> None:
    """spark.read.csv (every column text) over an export of one-line rows, split into several
    partitions and numbered by with_row_numbers: each result's row and outcome as the
    single-process conversion's, and the same bundle bytes."""
    plain = tmp_path / "plain.csv"
    bench_convert().generate(plain, 1200)
    rows = plain.read_text(encoding="utf-8").splitlines()
    rows[40] = rows[40].replace("Y,Y,", "N,Y,", 1)  # not referred
    rows[700] = rows[700].replace(rows[700].split(",")[1], "999 000 0019", 1)
    plain.write_text("\n".join(rows) + "\n", encoding="utf-8")
    expected = {
        r.location.row: r for r in convert_files([plain], mapping="diabetes-csv", validation="none")
    }
    spark.conf.set("spark.sql.files.maxPartitionBytes", str(64 << 10))
    try:
        from pyspark.sql import functions as F

        df = spark.read.csv(str(plain), header=True, inferSchema=False).withColumn(
            "_file", F.element_at(F.split(F.input_file_name(), "/"), -1)
        )
        assert df.rdd.getNumPartitions() > 1
        numbered = fs.with_row_numbers(df, file_column="_file")
        got = fs.convert(numbered, "diabetes-csv", validation="none").results.collect()
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
    assert sorted(r["row"] for r in got) == sorted(expected) == list(range(1, 1201))
    for row in got:
        want = expected[row["row"]]
        assert row["file"] == "plain.csv"
        if isinstance(want, Rejected):
            assert row["status"] == "rejected"
            assert row["code"] == want.error.error_code
        elif row["status"] == "converted":
            assert row["bundle"].encode() == want.json()
        else:
            assert row["reason"] == want.reason
    assert {r["status"] for r in got} == {"converted", "skipped", "rejected"}


def test_a_column_of_ndjson_text_equals_the_cli(spark: Any, tmp_path: Path) -> None:
    """spark.read.text over an NDJSON export, one JSON record per row, read by the mapping's
    reader: the CLI's bundles and summary counts."""
    from pyspark.sql import functions as F

    source = EXAMPLES / "cardiac.ndjson"
    expected = _cli_out(tmp_path, [source], "cardiac-json")
    df = fs.with_row_numbers(spark.read.text(str(source)))
    df = df.withColumn("_line", F.col("_row")).withColumn("_file", F.lit(source.name))
    conv = fs.convert(df, "cardiac-json", text_column="value", inputs=[source.name])
    fs.write_output(conv, tmp_path / "spark", ordered=True)
    assert lines(tmp_path / "spark" / "bundles.ndjson") == lines(expected / "bundles.ndjson")
    assert lines(tmp_path / "spark" / "rejects.ndjson") == lines(expected / "rejects.ndjson")
    assert summary(tmp_path / "spark") == summary(expected)


def test_xml_record_text_alone_or_under_its_root(spark: Any) -> None:
    """XML record text: a <Visit> under its root (the clinic attribute read) converts as the
    file's record does; a bare <Visit> lacks the root's clinic and is rejected naming it; text
    that is not XML is a located read error."""
    from lxml import etree

    mapping = load_mapping("respiratory-xml")
    document = etree.parse(str(EXAMPLES / "respiratory.xml")).getroot()
    visit = etree.tostring(document[0])
    rooted = b'<RespiratoryClinicExport clinic="RZZ60">' + visit + b"</RespiratoryClinicExport>"
    df = spark.createDataFrame(
        [(1, rooted), (2, visit), (3, b"<Visit id=")], "_row long, record binary"
    )
    got = {
        r["row"]: r
        for r in fs.convert(df, mapping, text_column="record", validation="none").results.collect()
    }
    expected = next(iter(convert_files([EXAMPLES / "respiratory.xml"], mapping=mapping)))
    assert got[1]["status"] == "converted"
    assert got[1]["bundle"].encode() == expected.json()
    assert got[2]["status"] == "rejected"
    assert "clinic" in got[2]["outcome"]
    assert got[3]["status"] == "rejected"
    assert got[3]["code"] == "FI104"
    assert "row 3" in got[3]["outcome"]


def test_missing_csv_columns_are_refused_before_anything_runs(spark: Any) -> None:
    """A DataFrame lacking a column the CSV mapping reads: ReadError FI102 naming it."""
    from fhir_iapt.errors import ReadError

    df = spark.createDataFrame([("DM-1",)], "clinic_record_id string")
    with pytest.raises(ReadError, match="nhs_number") as caught:
        fs.convert(df, "diabetes-csv")
    assert caught.value.error_code == "FI102"


def test_episode_exports_and_questionnaire_responses_equal_fhir_iapt_outcomes(
    spark: Any, tmp_path: Path
) -> None:
    """outcome_files: the episode export, and a QuestionnaireResponse with the export as its
    consent register (read once per worker), give fhir-iapt outcomes' bundles and summary."""
    episodes = EXAMPLES / "iapt-outcomes.csv"
    code = cli("outcomes", str(episodes), "--out", str(tmp_path / "cli"))
    assert code in (0, 1)
    fs.write_output(fs.outcome_files(spark, [episodes]), tmp_path / "spark", ordered=True)
    assert lines(tmp_path / "spark" / "bundles.ndjson") == lines(
        tmp_path / "cli" / "bundles.ndjson"
    )
    assert summary(tmp_path / "spark") == summary(tmp_path / "cli")

    response = EXAMPLES / "phq9-lhcforms-response.json"
    code = cli(
        "outcomes", str(response), "--consent", str(episodes), "--out", str(tmp_path / "cli-qr")
    )
    assert code in (0, 1)
    conv = fs.outcome_files(
        spark, [response], "questionnaire-response", consent=ConsentFiles([episodes])
    )
    fs.write_output(conv, tmp_path / "spark-qr", ordered=True)
    assert lines(tmp_path / "spark-qr" / "bundles.ndjson") == lines(
        tmp_path / "cli-qr" / "bundles.ndjson"
    )
    assert lines(tmp_path / "spark-qr" / "bundles.ndjson")
    assert summary(tmp_path / "spark-qr") == summary(tmp_path / "cli-qr")


def _probe(task: ConvertTask) -> Any:
    """mapInArrow: run the conversion's own task over the partition, then say which process
    ran it and what that process has loaded so far."""
    from fhir_iapt.fhir.validate import default_validator

    def probe(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        converted = sum(out.num_rows for out in task(batches))
        stats = _worker.stats(task.source.key)
        stats["validators"] = default_validator.cache_info().misses
        stats["results"] = converted
        yield pa.RecordBatch.from_pylist([stats])

    return probe


def test_mapping_profiles_and_shape_check_load_once_per_worker_process(
    spark: Any, export: Path, tmp_path: Path
) -> None:
    """8 tasks on 2 cores over a custom mapping with its own lookup table (shipped as bytes):
    each Python worker process compiled the mapping once, made one shape check, loaded the
    validator's profiles once and read the consent register once, however many tasks and
    records it ran; the custom table's terms are the ones used."""
    custom = tmp_path / "site" / "my-diabetes.yaml"
    (custom.parent / "tables").mkdir(parents=True)
    bundled = load_mapping("diabetes-csv")
    assert bundled.path is not None
    custom.write_bytes(bundled.path.read_bytes())
    table = (bundled.path.parent / "tables" / "sex.yaml").read_text(encoding="utf-8")
    (custom.parent / "tables" / "sex.yaml").write_text(table, encoding="utf-8")
    mapping = load_mapping(custom)
    source = _worker.MappingSource.of(mapping)
    assert [name for name, _ in source.tables] == ["sex.yaml"]
    records = fs.read_files(spark, [export], mapping, partitions=8)
    task = ConvertTask(
        source,
        mode="records",
        fields=(),
        text_column=None,
        options=DEFAULT_OPTIONS,
        validation="first",
        consent=ConsentFiles([EXAMPLES / "iapt-outcomes.csv"]),
        limits=current(),
    )
    stats = records.mapInArrow(
        _probe(task),
        "pid long, tasks long, mapping long, checker long, consent long, ledger long, "
        "validators long, results long",
    ).collect()
    assert len(stats) == 8
    assert sum(s["results"] for s in stats) == ROWS + 2  # every row, the short one, the resent
    processes = {s["pid"] for s in stats}
    assert len(processes) < len(stats)  # processes ran several tasks each
    for pid in processes:
        last = max((s for s in stats if s["pid"] == pid), key=lambda s: s["tasks"])
        assert last["mapping"] == 1
        assert last["checker"] == 1
        assert last["consent"] == 1
        assert last["validators"] == 1
        assert last["tasks"] >= 2


def test_importing_fhir_iapt_never_imports_pyspark() -> None:
    """The package, its pipeline and CLI import without PySpark (it is an optional extra)."""
    import subprocess
    import sys

    code = (
        "import sys, fhir_iapt, fhir_iapt.pipeline, fhir_iapt.cli; "
        "from fhir_iapt import convert_file; "
        "print(','.join(m for m in sys.modules if m.split('.')[0] in ('pyspark', 'py4j')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_the_readme_notebook_snippet_runs(spark: Any, tmp_path: Path) -> None:
    """README's Spark and Databricks snippet runs as written, with its volume and the driver's
    disk in a temporary folder: the bulk files, the summary and the ledger are there."""
    import re
    import shutil

    readme = (EXAMPLES.parent / "README.md").read_text(encoding="utf-8")
    section = re.search(r"^## Spark and Databricks\n(.*?)(?=^## )", readme, flags=re.M | re.S)
    assert section is not None
    (code,) = re.findall(r"```python\n(.*?)```", section.group(1), flags=re.S)
    volume, disk = tmp_path / "volume", tmp_path / "local_disk0"
    (volume / "exports").mkdir(parents=True)
    shutil.copy(EXAMPLES / "diabetes.csv", volume / "exports")
    code = code.replace("/Volumes/main/clinics", str(volume)).replace("/local_disk0", str(disk))
    namespace: dict[str, Any] = {"spark": spark}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - the README's own code
    out = volume / "out" / "2026-01"
    assert namespace["summary"] == orjson.loads((out / "summary.json").read_bytes())
    assert namespace["patients"].count() == len(lines(out / "Patient.ndjson")) > 0

    from fhir_iapt.ledger import Ledger

    with Ledger(disk / "fhir-iapt" / "ledger.sqlite") as ledger:
        assert ledger.count() == namespace["summary"]["converted"] > 0


def test_parquet_output_and_record_ledger_hold_the_clis_resources_and_referrals(
    spark: Any, tmp_path: Path
) -> None:
    """output_format="parquet": the bundles and the Bulk Data resources as Parquet datasets
    hold the CLI's bundles and <Type>.ndjson lines; record_ledger on a conversion records the
    CLI's ledger entries."""
    import pyarrow.parquet as pq

    from fhir_iapt.ledger import Ledger

    source = EXAMPLES / "diabetes.csv"
    bulk = _cli_out(tmp_path, [source], "diabetes-csv", "--layout", "bulk")
    conv = fs.convert_files(spark, [source], "diabetes-csv")
    fs.write_output(conv, tmp_path / "bundles", output_format="parquet")
    fs.write_output(conv, tmp_path / "bulk", layout="bulk", output_format="parquet")
    code = cli(
        "convert", str(source), "--mapping", "diabetes-csv", "--out", str(tmp_path / "cli-b"),
        "--ledger", str(tmp_path / "cli-b-ledger.sqlite"),
    )  # fmt: skip
    assert code == 0
    bundles = pq.read_table(tmp_path / "bundles" / "bundles.parquet").column("bundle").to_pylist()
    assert sorted(b.encode() + b"\n" for b in bundles) == sorted(
        lines(tmp_path / "cli-b" / "bundles.ndjson")
    )
    resources = pq.read_table(tmp_path / "bulk" / "resources.parquet").to_pylist()
    by_type: dict[str, list[bytes]] = {}
    for row in resources:
        by_type.setdefault(str(row["resourceType"]), []).append(row["resource"].encode() + b"\n")
        assert orjson.loads(row["resource"])["id"] == row["id"]
    expected = {
        p.stem: sorted(lines(p)) for p in bulk.glob("*.ndjson") if p.name != "rejects.ndjson"
    }
    assert {k: sorted(v) for k, v in by_type.items()} == expected
    assert fs.record_ledger(conv, tmp_path / "ledger.sqlite") == len(bundles)
    with (
        Ledger(tmp_path / "ledger.sqlite") as ours,
        Ledger(tmp_path / "cli-b-ledger.sqlite") as theirs,
    ):
        assert list(ours.entries()) == list(theirs.entries())
