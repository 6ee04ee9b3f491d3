"""fhir_iapt.spark.dataset_outcomes on local[2]: ``fhir-iapt outcomes DIR --dataset tt-v2.1``
one task per provider, the same outcome bundles, rejects, skip reasons and data-set report."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
from dataset_helpers import GAD7, NHS_NUMBERS, PHQ9, contact, referral, s606, write_submission
from spark_helpers import cli, lines, session, summary

from fhir_iapt import spark as fs
from fhir_iapt.errors import ConfigError
from fhir_iapt.ledger import Ledger, LedgerEntry

CLINIC = "https://example-trust.nhs.uk/Id/diabetes-clinic-record"


@pytest.fixture(scope="module")
def spark() -> Any:
    return session()


def _provider(folder: Path, provider: str, month: str, label: str = "", **kwargs: Any) -> None:
    """Four pathways of one provider in one month: PHQ-9 and GAD-7 first and last scores,
    three treatment contacts each (NHS Digital's count disagrees for pathways 1-3); pathway
    2's first PHQ-9 is out of range (a bad row)."""
    referrals, contacts, scores, patients = [], [], [], []
    for index in range(4):
        srid, lpid = f"{provider}-R{index}", f"{provider}-P{index}"
        # NHS Digital's count of treatment contacts: right for pathway 0, wrong for the others
        theirs = {"TreatmentCareContact_Count": "3" if index == 0 else "7"}
        referrals.append(
            referral(srid, lpid=lpid, received="2024-01-10", disch="2024-04-20", end="46", **theirs)
        )
        patients.append({"LocalPatientId": lpid, "NHSNumber": NHS_NUMBERS[index]})
        contacts += [contact(f"{srid}-C{n}", f"2024-0{n + 1}-15", srid=srid) for n in range(3)]
        scores += [
            s606(PHQ9, "99" if index == 2 else "18", "2024-01-15", srid=srid),
            s606(PHQ9, "6", "2024-04-15", srid=srid),
            s606(GAD7, "15", "2024-01-15", srid=srid),
            s606(GAD7, "5", "2024-04-15", srid=srid),
        ]
    write_submission(
        folder / f"{provider}-{month}{label}",
        provider=provider,
        start=f"{month}-01",
        end=f"{month}-30",
        patients=patients,
        referrals=referrals,
        contacts=contacts,
        refer_scores=scores,
        **kwargs,
    )


def _ledger(path: Path) -> Path:
    """Referrals for both providers' patients 0, 1 and 3 (patient 2 of each: none)."""
    with Ledger(path) as ledger:
        for provider in ("RXA", "RXB"):
            for index, share in ((0, True), (1, False), (3, True)):
                ledger.record(
                    LedgerEntry(
                        identifier_system=CLINIC,
                        identifier=f"{provider}-DC-{index}",
                        nhs_number=NHS_NUMBERS[index],
                        authored_on=date(2024, 1, 2),
                        performer_ods=provider,
                        ltc_snomed="44054006",
                        share_outcomes=share,
                    )
                )
    return path


def _cli(directory: Path, ledger: Path, out: Path) -> None:
    code = cli(
        "outcomes",
        str(directory),
        "--dataset",
        "tt-v2.1",
        "--ledger",
        str(ledger),
        "--out",
        str(out),
    )
    assert code in (0, 1)


def test_two_providers_equal_the_cli(spark: Any, tmp_path: Path) -> None:
    """Two providers (one with a Primary and the Refresh that replaces it): the same outcome
    bundles in the same order, the same rejects (a score out of range, located in its
    table's file and row), the same skip reasons and the same data-set report."""
    directory = tmp_path / "ds"
    _provider(directory, "RXA", "2024-04", file_type="Primary", created="2024-05-01T09:00:00")
    _provider(
        directory, "RXA", "2024-04", "-refresh", file_type="Refresh", created="2024-05-20T09:00:00"
    )
    _provider(directory, "RXB", "2024-04", file_type="Primary")
    ledger = _ledger(tmp_path / "ledger.sqlite")
    _cli(directory, ledger, tmp_path / "cli")
    conv = fs.dataset_outcomes(spark, directory, ledger=ledger)
    written = fs.write_output(conv, tmp_path / "spark", ordered=True)
    ours, theirs = tmp_path / "spark", tmp_path / "cli"
    assert lines(ours / "bundles.ndjson") == lines(theirs / "bundles.ndjson")
    assert lines(ours / "bundles.ndjson")
    assert sorted(lines(ours / "rejects.ndjson")) == sorted(lines(theirs / "rejects.ndjson"))
    assert any(b"IDS606CodedScoreAssessmentRefer.csv" in x for x in lines(ours / "rejects.ndjson"))
    assert summary(ours) == summary(theirs)
    assert written["dataset"] == summary(theirs)["dataset"]
    assert summary(ours)["skipped"]
    assert summary(ours)["dataset"]["pathways"] == 8
    assert summary(ours)["dataset"]["pathways_disagreeing"] == 6  # 3 per provider


def test_a_missing_table_is_the_clis_one_file_error_and_nothing_else(
    spark: Any, tmp_path: Path
) -> None:
    """A data set missing a table: the same file error as the CLI, nothing derived."""
    directory = tmp_path / "ds"
    _provider(directory, "RXA", "2024-04", omit=("IDS202CareActivity",))
    ledger = _ledger(tmp_path / "ledger.sqlite")
    _cli(directory, ledger, tmp_path / "cli")
    fs.write_output(fs.dataset_outcomes(spark, directory, ledger=ledger), tmp_path / "spark")
    ours, theirs = tmp_path / "spark", tmp_path / "cli"
    assert lines(ours / "rejects.ndjson") == lines(theirs / "rejects.ndjson")
    assert lines(ours / "rejects.ndjson")
    assert lines(ours / "bundles.ndjson") == lines(theirs / "bundles.ndjson") == []
    assert summary(ours) == summary(theirs)


def test_no_ledger_file_is_refused_before_anything_runs(spark: Any, tmp_path: Path) -> None:
    """No ledger at the path given: ConfigError naming it, as the CLI refuses."""
    with pytest.raises(ConfigError, match="no referral ledger"):
        fs.dataset_outcomes(spark, tmp_path, ledger=tmp_path / "missing.sqlite")


@pytest.mark.parametrize("suppress", [False, True])
def test_pathway_kpis_are_the_reports(spark: Any, tmp_path: Path, suppress: bool) -> None:
    """pathway_kpis over two providers (one replaced by its Refresh) with the ledger: the
    report's KPIs (ReportBuilder, as fhir-iapt report computes them), exact or published,
    the referral loop included, in the report's order."""
    from fhir_iapt.report._build import ReportBuilder

    directory = tmp_path / "ds"
    _provider(directory, "RXA", "2024-04", file_type="Primary", created="2024-05-01T09:00:00")
    _provider(
        directory, "RXA", "2024-04", "-refresh", file_type="Refresh", created="2024-05-20T09:00:00"
    )
    _provider(directory, "RXB", "2024-04", file_type="Primary")
    ledger = _ledger(tmp_path / "ledger.sqlite")
    with Ledger(ledger) as opened:
        builder = ReportBuilder(ledger=opened)
        builder.add_dataset(directory)
        data, _ = builder.build(suppress=suppress)
    figures = "published" if suppress else "exact"
    expected = [
        (
            v.kpi,
            v.group.provider,
            v.group.pathway,
            v.group.month,
            v.numerator,
            v.denominator,
            v.rate,
            v.note,
            figures,
        )
        for v in data.kpis
    ]
    got = [
        tuple(r)
        for r in fs.pathway_kpis(spark, directory, ledger=ledger, suppress=suppress).collect()
    ]
    assert got == expected
    assert {row[0] for row in got} >= {"recovery-rate", "referrals-sent", "loop-closure-matched"}
