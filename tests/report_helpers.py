"""A hand-built ReportData for the report.html tests and the docs screenshot: three providers
(one with a hostile code), two sending clinics, every pathway, three months, and the cases a
reader must not misread: suppressed counts, rates not shown because they come from one, and
rates not available because a numerator or denominator is 0."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from fhir_iapt.report import Group, KpiDefinition, KpiValue, QualityValue, ReportData

HOSTILE_PROVIDER = "<script>alert('x')</script>&amp;\"P"
PROVIDERS = ("RXA", "RXB", HOSTILE_PROVIDER)
#: the same figures under a plain third code, for the docs screenshot
PLAIN_PROVIDER = "RY4"
CLINICS = ("C81001", "C81002")
MONTHS = ("2025-01", "2025-02", "2025-03")
PATHWAYS = ("diabetes", "respiratory", "cardiac", "other")

DEFINITIONS = (
    KpiDefinition(
        "referrals-sent", "Referrals sent", "count", None, "referrals sent", "", "", "ledger"
    ),
    KpiDefinition(
        "referrals-received",
        "Referrals received",
        "count",
        None,
        "referrals received",
        "",
        "",
        "KM",
    ),
    KpiDefinition(
        "entered-treatment", "Entered treatment", "count", None, "first therapy", "", "", "KM"
    ),
    KpiDefinition(
        "finished-treatment", "Finished treatment", "count", None, "finished", "", "", "KM"
    ),
    KpiDefinition(
        "recovery-rate",
        "Recovery rate",
        "rate",
        0.5,
        "recovered",
        "finished treatment",
        "not a case at the start",
        "KM l.39-48",
    ),
    KpiDefinition(
        "reliable-improvement-rate",
        "Reliable improvement",
        "rate",
        None,
        "reliably improved",
        "finished treatment",
        "",
        "KM l.70-77",
    ),
    KpiDefinition(
        "first-treatment-6-weeks",
        "First treatment within 6 weeks",
        "rate",
        0.75,
        "first treatment within 42 days of referral",
        "entered treatment",
        "",
        "KM",
    ),
    KpiDefinition(
        "first-treatment-18-weeks",
        "First treatment within 18 weeks",
        "rate",
        0.95,
        "first treatment within 126 days of referral",
        "entered treatment",
        "",
        "KM",
    ),
    KpiDefinition(
        "loop-closure-matched",
        "Referrals matched to a pathway",
        "rate",
        None,
        "referrals sent that a pathway answers",
        "referrals the clinic sent in the month",
        "",
        "ledger",
    ),
    KpiDefinition(
        "consent-recorded",
        "Consent recorded",
        "rate",
        None,
        "referrals sent with the patient's choice on sharing outcomes",
        "referrals the clinic sent in the month",
        "",
        "ledger",
    ),
)


def _rate(kpi: str, group: Group, numerator: int | None, denominator: int | None) -> KpiValue:
    """A rate as the KPI stage gives it: None when a count is suppressed or 0."""
    if numerator is None or denominator is None:
        return KpiValue(kpi, group, numerator, denominator, None, "suppressed")
    if numerator == 0 or denominator == 0:
        return KpiValue(kpi, group, numerator, denominator, None, "not available")
    return KpiValue(kpi, group, numerator, denominator, numerator / denominator)


def _values() -> list[KpiValue]:
    values: list[KpiValue] = []
    for p_index, pathway in enumerate(PATHWAYS):
        for c_index, clinic in enumerate(CLINICS):
            for m_index, month in enumerate(MONTHS):
                sent = 20 + 5 * ((p_index + c_index + m_index) % 4)
                group = Group(clinic, pathway, month)
                suppressed = pathway == "cardiac" and clinic == "C81002" and month == "2025-02"
                counted = None if suppressed else sent
                values += [
                    KpiValue("referrals-sent", group, counted, None, None),
                    _rate("loop-closure-matched", group, None if suppressed else sent - 5, counted),
                    _rate("consent-recorded", group, counted, counted),
                ]
        for r_index, provider in enumerate(PROVIDERS):
            for m_index, month in enumerate(MONTHS):
                group = Group(provider, pathway, month)
                seed = p_index + 2 * r_index + m_index
                received = 30 + 5 * (seed % 5)
                treated = received - 5 - 5 * (seed % 2)
                finished: int | None = treated - 5
                cases: int | None = treated - 10
                recovered: int | None = 5 * (((treated - 10) // 5) // 2 + (seed % 3) - 1)
                # the cases a reader must not misread, one per pathway
                if pathway == "respiratory" and provider == "RXB" and month == "2025-02":
                    finished, cases, recovered = None, None, None  # under 5: suppressed
                if pathway == "cardiac" and provider == "RXA" and month == "2025-03":
                    recovered = 0  # a 0 numerator: not available
                if pathway == "other" and provider == HOSTILE_PROVIDER and month == "2025-01":
                    recovered = None  # suppressed numerator
                within_6: int | None = treated - 5 * (1 + seed % 3)
                within_18 = treated if seed % 2 else treated - 5
                if pathway == "diabetes" and provider == "RXA" and month == "2025-01":
                    within_6 = None
                values += [
                    KpiValue("referrals-received", group, received, None, None),
                    KpiValue("entered-treatment", group, treated, None, None),
                    KpiValue("finished-treatment", group, finished, None, None),
                    _rate("recovery-rate", group, recovered, cases),
                    _rate(
                        "reliable-improvement-rate",
                        group,
                        None if finished is None else finished - 5 * (seed % 2),
                        finished,
                    ),
                    _rate("first-treatment-6-weeks", group, within_6, treated),
                    _rate("first-treatment-18-weeks", group, within_18, treated),
                ]
    return values


def _quality() -> list[QualityValue]:
    out = []
    for r_index, provider in enumerate(PROVIDERS):
        for m_index, month in enumerate(MONTHS):
            n = 5 * (r_index + m_index)
            ids = tuple(f"PW-{provider}-{month}-{i:03d}" for i in range(n))
            out.append(
                QualityValue(
                    "problem-descriptor-f41.2",
                    "Problem descriptor recorded as F41.2 (mixed anxiety and depression)",
                    provider,
                    month,
                    n,
                    40,
                    n / 40 if n else None,
                    ids,
                    "" if n else "not available",
                )
            )
            out.append(
                QualityValue(
                    "attend-code-invalid",
                    "AttendOrDNACode outside its list",
                    provider,
                    month,
                    None if m_index == 1 else 5,
                    120,
                    None if m_index == 1 else 5 / 120,
                    ("IDS201.csv:12", "IDS201.csv:97", "IDS201.csv:<b>140</b>"),
                    "suppressed" if m_index == 1 else "",
                )
            )
    return out


def _plain(value: KpiValue) -> KpiValue:
    if value.group.provider != HOSTILE_PROVIDER:
        return value
    return replace(value, group=replace(value.group, provider=PLAIN_PROVIDER))


def report_data(*, suppressed: bool = True, hostile: bool = True) -> ReportData:
    """The fixture: every pathway, three providers, two clinics, three months; without
    ``hostile`` the third provider's code is a plain one."""
    kpis, quality = _values(), _quality()
    if not hostile:
        kpis = [_plain(v) for v in kpis]
        quality = [
            replace(
                q,
                provider=PLAIN_PROVIDER if q.provider == HOSTILE_PROVIDER else q.provider,
                ids=tuple(i.replace(HOSTILE_PROVIDER, PLAIN_PROVIDER) for i in q.ids),
            )
            for q in quality
        ]
    return ReportData(
        definitions=DEFINITIONS,
        kpis=tuple(kpis),
        quality=tuple(quality),
        suppressed=suppressed,
        generated=date(2025, 4, 7),
        inputs=("examples/tt-dataset/", "ledger.sqlite"),
        rejected={"FI150": 3, "FI157": 12},
    )
