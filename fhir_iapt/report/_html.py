"""``report.html``: the pathway report as one self-contained page a commissioner can open offline.

Everything is inline: the CSS in a ``<style>`` element, each chart a Vega-Lite spec (altair)
rendered to SVG by vl-convert and written into the page. There is no script, no font, no image
and no link to anything outside the file. Every value from the figures is HTML-escaped (the SVG
text too: vl-convert writes it as escaped XML).

The page, per LTC pathway: a headline table (every KPI for each provider and month), the
recovery rate by month against the 50% standard, the first-treatment waits against 75% (6 weeks)
and 95% (18 weeks), and the referral funnel (sent, received, entered treatment, finished,
recovered). Then the data-quality checks (each with its count, share and the ids it came from),
whether the publication rule was applied, the inputs and the rejected-row counts, and what each
KPI means. A suppressed figure is shown as "suppressed" and a rate with a 0 numerator or
denominator as "not available", never as a number, in the tables and the charts alike.
"""

from __future__ import annotations

import html
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import altair as alt
import vl_convert as vlc

from fhir_iapt.report._model import (
    PATHWAYS,
    Group,
    KpiDefinition,
    KpiValue,
    QualityValue,
    ReportData,
)

#: The KPI (a rate) the recovery chart shows: its standard is drawn as a line.
RECOVERY_KPI = "recovery-rate"
#: The first-treatment waits, each drawn against its standard (75% / 95%).
WAIT_KPIS: tuple[str, ...] = ("first-treatment-6-weeks", "first-treatment-18-weeks")
#: The KPIs of the referral loop, counted per sending clinic (the ledger's requester), not per
#: Talking Therapies provider: they get their own table (clinic by month). The KPI stage's
#: list of the same name.
SENT_KPIS: tuple[str, ...] = (
    "referrals-sent",
    "loop-closure-matched",
    "loop-closure-outcomes",
    "consent-recorded",
)
#: The funnel's stages in order: count KPIs, then the recovered count (the recovery rate's
#: numerator).
FUNNEL_KPIS: tuple[tuple[str, str], ...] = (
    ("referrals-sent", "Sent"),
    ("referrals-received", "Received"),
    ("entered-treatment", "Entered treatment"),
    ("finished-treatment", "Finished treatment"),
    (RECOVERY_KPI, "Recovered"),
)

PATHWAY_TITLES: Mapping[str, str] = {
    "diabetes": "Diabetes",
    "respiratory": "Respiratory (COPD, asthma)",
    "cardiac": "Cardiac",
    "other": "Other long-term condition or none recorded",
}

#: One colour per provider, the same in every chart (a colour-blind-safe categorical set).
_PALETTE: tuple[str, ...] = (
    "#005eb8",
    "#ed8b00",
    "#009639",
    "#7c2855",
    "#00a9ce",
    "#8a1538",
    "#425563",
    "#ffb81c",
    "#330072",
    "#78be20",
)
_STANDARD_COLOUR = "#d5281b"
_PANEL_WIDTH = 360
_PANEL_HEIGHT = 210
_FONT = "Arial, Helvetica, sans-serif"

_NOT_AVAILABLE = "not available"
_SUPPRESSED = "suppressed"


def render_html(data: ReportData) -> str:
    """The report of ``data`` as one HTML document (a ``str``; write it as UTF-8)."""
    page = _Page(data)
    return page.render()


def _e(value: object) -> str:
    """``value`` as HTML text or an attribute value (quotes escaped too)."""
    return html.escape(str(value), quote=True)


def _slug(value: str) -> str:
    """An id fragment made of letters, digits and hyphens only (for anchors and ids)."""
    return re.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-") or "x"


def _pct(rate: float) -> str:
    """A rate as a percentage to one decimal place: 0.4286 -> "42.9%"."""
    return f"{rate * 100:.1f}%"


def _standard(target: float) -> str:
    """A standard as a percentage, whole when it is: 0.5 -> "50%"."""
    value = round(target * 100, 1)
    return f"{value:.0f}%" if value == int(value) else f"{value}%"


_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _month(month: str) -> str:
    """ "2025-01" -> "Jan 2025" (anything else as it is)."""
    m = re.fullmatch(r"(\d{4})-(\d{2})", month)
    if m is None or not 1 <= int(m[2]) <= 12:
        return month
    return f"{_MONTH_NAMES[int(m[2]) - 1]} {m[1]}"


def _count(value: int) -> str:
    return f"{value:,}"


class _Page:
    """The report of one ReportData: the lookups every section reads, built once."""

    def __init__(self, data: ReportData) -> None:
        self.data = data
        self.definitions: dict[str, KpiDefinition] = {d.id: d for d in data.definitions}
        self.values: dict[tuple[str, Group], KpiValue] = {(v.kpi, v.group): v for v in data.kpis}
        self.months: list[str] = sorted({v.group.month for v in data.kpis})
        # one colour per provider drawn in a rate chart (the clinics' counts are not)
        providers = sorted({v.group.provider for v in data.kpis if v.kpi not in SENT_KPIS})
        self.colours: dict[str, str] = {
            p: _PALETTE[i % len(_PALETTE)] for i, p in enumerate(providers)
        }
        known = [p for p in PATHWAYS if any(v.group.pathway == p for v in data.kpis)]
        extra = sorted({v.group.pathway for v in data.kpis} - set(PATHWAYS))
        self.pathways: list[str] = known + extra
        self._ids: set[str] = set()

    def unique_id(self, base: str) -> str:
        """A document-unique id starting with ``base`` (slugged)."""
        candidate = stem = _slug(base)
        n = 2
        while candidate in self._ids:
            candidate = f"{stem}-{n}"
            n += 1
        self._ids.add(candidate)
        return candidate

    # -- the document ------------------------------------------------------------------

    def render(self) -> str:
        data = self.data
        body = [
            self.header(),
            self.contents(),
            *(self.pathway_section(p) for p in self.pathways),
            self.quality_section(),
            self.about_section(),
        ]
        if not self.pathways:
            body.insert(2, '<p class="empty">There are no KPI figures in this report.</p>')
        return (
            "<!DOCTYPE html>\n"
            '<html lang="en-GB">\n<head>\n<meta charset="utf-8" />\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1" />\n'
            '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
            "style-src 'unsafe-inline'; img-src data:\" />\n"
            f"<title>NHS Talking Therapies for long-term conditions: pathway results "
            f"({_e(data.generated.isoformat())})</title>\n"
            f"<style>{_CSS}</style>\n</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n"
        )

    def header(self) -> str:
        data = self.data
        period = (
            f"{_e(_month(self.months[0]))} to {_e(_month(self.months[-1]))}"
            if len(self.months) > 1
            else (_e(_month(self.months[0])) if self.months else "no months")
        )
        if data.suppressed:
            rule = (
                '<p class="banner published" id="suppression">'
                "<strong>Published figures.</strong> NHS England's rule has been applied: counts "
                "under 5 are suppressed, every other count is rounded to the nearest 5, and a rate "
                "from a suppressed count is not shown. Rates are worked out from the rounded "
                "counts.</p>"
            )
        else:
            rule = (
                '<p class="banner exact" id="suppression">'
                "<strong>Exact figures, for internal use only.</strong> Suppression was not "
                "applied (<code>--no-suppress</code>): small counts are shown as they are. Do not "
                "publish this report.</p>"
            )
        return (
            '<header>\n<p class="kicker">NHS Talking Therapies for long-term conditions</p>\n'
            "<h1>Pathway results by provider and month</h1>\n"
            f'<p class="meta">Months: {period} (the month the referral ended; referrals sent: the '
            f"month they were sent). Report generated {_e(data.generated.isoformat())}.</p>\n"
            f"{rule}\n"
            '<p class="legend-note"><span class="na">not available</span>: the numerator or '
            'denominator is 0. <span class="sup">suppressed</span>: a count under 5, or a rate '
            'from one. <span class="none">—</span>: no figure for this provider and month. '
            '<span class="below">▼</span> below the standard; '
            '<span class="meets">▲</span> meets it.</p>\n</header>'
        )

    def contents(self) -> str:
        items = "".join(
            f'<li><a href="#pathway-{_slug(p)}">{_e(PATHWAY_TITLES.get(p, p))}</a></li>'
            for p in self.pathways
        )
        return (
            '<nav aria-label="Contents"><h2 class="visually-hidden">Contents</h2><ul>'
            f'{items}<li><a href="#data-quality">Data quality</a></li>'
            '<li><a href="#about">Inputs, rejected rows and definitions</a></li></ul></nav>'
        )

    # -- one pathway -------------------------------------------------------------------

    def pathway_section(self, pathway: str) -> str:
        title = PATHWAY_TITLES.get(pathway, pathway)
        sid = self.unique_id(f"pathway-{pathway}")
        return (
            f'<section class="pathway" id="{sid}" aria-labelledby="{sid}-h">\n'
            f'<h2 id="{sid}-h">{_e(title)}</h2>\n'
            f"{self.headline_table(pathway)}\n"
            f"{self.headline_table(pathway, sent=True)}\n"
            '<div class="charts">\n'
            f"{self.recovery_chart(pathway)}\n"
            f"{self.funnel_chart(pathway)}\n"
            f"{self.waits_chart(pathway)}\n"
            "</div>\n</section>"
        )

    def _kpis_of(self, pathway: str, *, sent: bool) -> list[KpiDefinition]:
        """The KPIs with a value for ``pathway``, in the definitions' order: the sending
        clinics' (``sent``) or the Talking Therapies providers'."""
        present = {v.kpi for v in self.data.kpis if v.group.pathway == pathway}
        return [d for d in self.data.definitions if d.id in present and (d.id in SENT_KPIS) == sent]

    def _groups_of(self, pathway: str, kpis: Sequence[KpiDefinition]) -> list[tuple[str, str]]:
        ids = {d.id for d in kpis}
        return sorted(
            {
                (v.group.provider, v.group.month)
                for v in self.data.kpis
                if v.group.pathway == pathway and v.kpi in ids
            }
        )

    def headline_table(self, pathway: str, *, sent: bool = False) -> str:
        """Every KPI of ``pathway`` for each provider (``sent``: each sending clinic, the
        referral loop's KPIs) and month: a row per month, the provider's rows grouped."""
        kpis = self._kpis_of(pathway, sent=sent)
        if not kpis:
            return ""
        groups = self._groups_of(pathway, kpis)
        head = "".join(f'<th scope="col" class="num">{self._kpi_heading(d)}</th>' for d in kpis)
        months_of: dict[str, int] = defaultdict(int)
        for provider, _ in groups:
            months_of[provider] += 1
        rows = []
        seen: set[str] = set()
        for provider, month in groups:
            cells = "".join(self._cell(d, Group(provider, pathway, month)) for d in kpis)
            first = provider not in seen
            seen.add(provider)
            lead = (
                f'<th scope="rowgroup" rowspan="{months_of[provider]}" class="provider">'
                f"{_e(provider)}</th>"
                if first
                else ""
            )
            css = ' class="first"' if first else ""
            rows.append(f'<tr{css}>{lead}<th scope="row">{_e(_month(month))}</th>{cells}</tr>')
        who = "Sending clinic" if sent else "Provider"
        caption = (
            f"The referral loop: {_e(PATHWAY_TITLES.get(pathway, pathway))}, by sending clinic "
            "and the month the referral was sent"
            if sent
            else f"Headline figures: {_e(PATHWAY_TITLES.get(pathway, pathway))}, by Talking "
            "Therapies provider and month"
        )
        return (
            f'<div class="table-wrap"><table class="headline{" sent" if sent else ""}">'
            f"<caption>{caption}</caption>"
            f'<thead><tr><th scope="col">{who}</th><th scope="col">Month</th>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>"
        )

    def _kpi_heading(self, d: KpiDefinition) -> str:
        target = (
            f'<span class="target">standard {_standard(d.target)}</span>'
            if d.target is not None
            else ""
        )
        return f'<a href="#kpi-{_slug(d.id)}">{_e(d.title)}</a>{target}'

    def _cell(self, d: KpiDefinition, group: Group) -> str:
        """The table cell of ``d`` for ``group``: the figure, or why there is none."""
        v = self.values.get((d.id, group))
        attrs = (
            f'data-kpi="{_e(d.id)}" data-pathway="{_e(group.pathway)}" '
            f'data-provider="{_e(group.provider)}" data-month="{_e(group.month)}"'
        )
        if v is None:
            return f'<td {attrs} class="none"><span aria-label="no figure">—</span></td>'
        if d.kind == "count":
            if v.numerator is None:
                return f'<td {attrs} class="sup">{_SUPPRESSED}</td>'
            return f'<td {attrs} class="num">{_count(v.numerator)}</td>'
        if v.rate is None:
            note = _SUPPRESSED if v.note == _SUPPRESSED else _NOT_AVAILABLE
            css = "sup" if note == _SUPPRESSED else "na"
            return f'<td {attrs} class="{css}">{note}</td>'
        mark = ""
        if d.target is not None:
            if v.rate >= d.target:
                mark = '<span class="meets" aria-hidden="true">▲</span>'
                mark += '<span class="visually-hidden"> meets the standard</span>'
            else:
                mark = '<span class="below" aria-hidden="true">▼</span>'
                mark += '<span class="visually-hidden"> below the standard</span>'
        fraction = ""
        if v.numerator is not None and v.denominator is not None:
            fraction = (
                f'<span class="fraction">{_count(v.numerator)} / {_count(v.denominator)}</span>'
            )
        return f'<td {attrs} class="num rate">{_pct(v.rate)}{mark}{fraction}</td>'

    # -- charts ------------------------------------------------------------------------

    def _rate_points(self, kpi: str, pathway: str) -> list[dict[str, Any]]:
        """One row per provider and month: the rate in %, or null when there is none (the
        line breaks there and no point is drawn: a missing rate is never plotted as 0)."""
        rows = [
            {
                "provider": v.group.provider,
                "month": _month(v.group.month),
                "order": v.group.month,
                "rate": None if v.rate is None else round(v.rate * 100, 1),
            }
            for v in self.data.kpis
            if v.kpi == kpi and v.group.pathway == pathway
        ]
        rows.sort(key=lambda r: (r["provider"], r["order"]))
        return rows

    def _rate_panel(
        self, kpi: KpiDefinition, pathway: str, y_title: str, title: str = ""
    ) -> alt.LayerChart | None:
        """A line per provider of ``kpi`` by month (0-100%), with its standard as a dashed
        line; None when the pathway has no value of ``kpi``. Its marks are named after the KPI
        (``kpi-<id>-points`` -> SVG class ``kpi_<id>_points_marks``)."""
        name = f"kpi-{kpi.id}"
        rows = self._rate_points(kpi.id, pathway)
        if not rows:
            return None
        providers = sorted({r["provider"] for r in rows})
        legend = alt.Legend(orient="bottom", direction="horizontal", columns=3, symbolSize=80)
        colour = alt.Color(
            "provider:N",
            title="Provider",
            scale=alt.Scale(domain=providers, range=[self.colours[p] for p in providers]),
            legend=legend,
        )
        shape = alt.Shape(
            "provider:N", title="Provider", scale=alt.Scale(domain=providers), legend=legend
        )
        x = alt.X(
            "month:O",
            title="Month",
            sort=[_month(m) for m in self.months],
            scale=alt.Scale(domain=[_month(m) for m in self.months]),
            # a year of months side by side would overlap: slanted past 8
            axis=alt.Axis(labelAngle=0 if len(self.months) <= 8 else -45),
        )
        y = alt.Y(
            "rate:Q",
            title=y_title,
            scale=alt.Scale(domain=[0, 100]),
            axis=alt.Axis(values=list(range(0, 101, 25)), labelExpr="datum.value + '%'"),
        )
        base = alt.Chart(alt.InlineData(values=rows))
        # the standard first, so the providers' lines and points are drawn over it
        layers: list[alt.Chart] = []
        if kpi.target is not None:
            standard = alt.Chart(
                alt.InlineData(
                    values=[
                        {
                            "standard": round(kpi.target * 100, 1),
                            "label": f"{_standard(kpi.target)} standard",
                        }
                    ]
                )
            )
            at = alt.Y("standard:Q", scale=alt.Scale(domain=[0, 100]))
            layers.append(
                standard.mark_rule(color=_STANDARD_COLOUR, strokeDash=[6, 4], size=2)
                .encode(y=at)
                .properties(name=f"{name}-standard")
            )
            # named at the line's end, outside the plot, where no provider's point can hide it
            layers.append(
                standard.mark_text(
                    align="left",
                    baseline="middle",
                    dx=6,
                    fontSize=12,
                    fontWeight="bold",
                    color=_STANDARD_COLOUR,
                )
                .encode(y=at, text="label:N", x=alt.value(_PANEL_WIDTH))
                .properties(name=f"{name}-standard-label")
            )
        layers += [
            base.mark_line(strokeWidth=2.5)
            .encode(x=x, y=y, color=colour)
            .properties(name=f"{name}-lines"),
            base.mark_point(filled=True, size=70, opacity=1)
            .encode(x=x, y=y, color=colour, shape=shape)
            .properties(name=f"{name}-points"),
        ]
        return alt.LayerChart(
            layer=layers, title=title or kpi.title, width=_PANEL_WIDTH, height=_PANEL_HEIGHT
        )

    def recovery_chart(self, pathway: str) -> str:
        d = self.definitions.get(RECOVERY_KPI)
        chart_id = self.unique_id(f"chart-recovery-{pathway}")
        title = "Recovery rate by month"
        if d is None:
            return self._no_chart(chart_id, title, "The recovery rate is not in these figures.")
        panel = self._rate_panel(
            d, pathway, "Recovery rate (%)", f"{d.title}: {PATHWAY_TITLES.get(pathway, pathway)}"
        )
        if panel is None:
            return self._no_chart(chart_id, title, "No recovery rate for this pathway.")
        summary = (
            f"{_e(d.title)} for each provider and month, against the "
            f"{_standard(d.target) if d.target is not None else ''} standard."
        )
        table = self._rate_table([d], pathway)
        return self._figure(chart_id, "recovery", title, summary, panel, table)

    def waits_chart(self, pathway: str) -> str:
        chart_id = self.unique_id(f"chart-waits-{pathway}")
        title = "First treatment within 6 and 18 weeks of referral"
        defs = [self.definitions[k] for k in WAIT_KPIS if k in self.definitions]
        panels = [
            p for d in defs if (p := self._rate_panel(d, pathway, "Referrals seen in time (%)"))
        ]
        if not panels:
            return self._no_chart(chart_id, title, "No waiting-time figures for this pathway.")
        standards = ", ".join(
            f"{_e(d.title)} against {_standard(d.target)}" for d in defs if d.target is not None
        )
        summary = f"Share of people whose first treatment came within the wait: {standards}."
        chart: alt.TopLevelMixin = alt.hconcat(*panels).resolve_scale(
            color="shared", shape="shared"
        )
        return self._figure(
            chart_id, "waits", title, summary, chart, self._rate_table(defs, pathway)
        )

    def funnel_chart(self, pathway: str) -> str:
        chart_id = self.unique_id(f"chart-funnel-{pathway}")
        title = "Referral funnel"
        stages = self._funnel(pathway)
        if not stages:
            return self._no_chart(chart_id, title, "No referral counts for this pathway.")
        rows = [{"stage": s.label, "total": s.total, "label": s.text} for s in stages]
        y = alt.Y(
            "stage:N", title=None, sort=[s.label for s in stages], axis=alt.Axis(labelFontSize=12)
        )
        base = alt.Chart(alt.InlineData(values=rows))
        chart = alt.LayerChart(
            layer=[
                base.mark_bar(color="#005eb8", height=24)
                .encode(
                    y=y,
                    x=alt.X(
                        "total:Q",
                        title="Referrals (all providers and months)",
                        axis=alt.Axis(tickMinStep=1, format="d"),
                    ),
                )
                .properties(name="funnel-bars"),
                base.mark_text(align="left", dx=4, fontSize=12, color="#212b32")
                .encode(y=y, x=alt.X("shown:Q"), text="label:N")
                .transform_calculate(shown="datum.total === null ? 0 : datum.total")
                .properties(name="funnel-labels"),
            ],
            title=f"Referral funnel: {PATHWAY_TITLES.get(pathway, pathway)}",
            width=_PANEL_WIDTH - 60,
            height=len(rows) * 36,
        )
        summary = "Referrals at each stage, added up over every provider and month of this pathway."
        if any(s.hidden for s in stages):
            summary += " * Some groups' counts were suppressed and are not in the total."
        table = (
            '<table class="small"><thead><tr><th scope="col">Stage</th>'
            '<th scope="col">Referrals</th><th scope="col">Groups suppressed</th>'
            "</tr></thead><tbody>"
            + "".join(
                f'<tr><th scope="row">{_e(s.label)}</th><td class="num">{_e(s.text)}</td>'
                f'<td class="num">{s.hidden} of {s.groups}</td></tr>'
                for s in stages
            )
            + "</tbody></table>"
        )
        return self._figure(chart_id, "funnel", title, summary, chart, table)

    def _funnel(self, pathway: str) -> list[_Stage]:
        """Each funnel stage's total over the pathway's groups, from the published counts."""
        stages = []
        for kpi, label in FUNNEL_KPIS:
            if kpi not in self.definitions:
                continue
            values = [v for v in self.data.kpis if v.kpi == kpi and v.group.pathway == pathway]
            if not values:
                continue
            published = [v.numerator for v in values if v.numerator is not None]
            stages.append(
                _Stage(
                    label=label,
                    total=sum(published) if published else None,
                    hidden=len(values) - len(published),
                    groups=len(values),
                )
            )
        return stages

    def _rate_table(self, defs: Sequence[KpiDefinition], pathway: str) -> str:
        head = "".join(f'<th scope="col">{_e(d.title)}</th>' for d in defs)
        groups = sorted(
            {
                (v.group.provider, v.group.month)
                for v in self.data.kpis
                if v.group.pathway == pathway and v.kpi in {d.id for d in defs}
            }
        )
        body = []
        for provider, month in groups:
            cells = []
            for d in defs:
                v = self.values.get((d.id, Group(provider, pathway, month)))
                if v is None:
                    cells.append('<td class="none">—</td>')
                elif v.rate is None:
                    note = _SUPPRESSED if v.note == _SUPPRESSED else _NOT_AVAILABLE
                    cells.append(f"<td>{note}</td>")
                else:
                    cells.append(f'<td class="num">{_pct(v.rate)}</td>')
            body.append(
                f'<tr><th scope="row">{_e(provider)}</th><td>{_e(_month(month))}</td>'
                f"{''.join(cells)}</tr>"
            )
        return (
            '<table class="small"><thead><tr><th scope="col">Provider</th>'
            f'<th scope="col">Month</th>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
        )

    def _figure(
        self,
        chart_id: str,
        kind: str,
        title: str,
        summary: str,
        chart: alt.TopLevelMixin,
        table: str,
    ) -> str:
        svg = _svg(chart)
        return (
            f'<figure class="chart" id="{chart_id}" data-chart="{kind}" '
            f'aria-labelledby="{chart_id}-t">\n'
            f'<figcaption><h3 id="{chart_id}-t">{_e(title)}</h3>'
            f'<p id="{chart_id}-d">{summary}</p></figcaption>\n'
            f'<div class="svg" role="img" aria-labelledby="{chart_id}-t" '
            f'aria-describedby="{chart_id}-d">{svg}</div>\n'
            f"<details><summary>The figures in this chart</summary>{table}</details>\n"
            "</figure>"
        )

    def _no_chart(self, chart_id: str, title: str, why: str) -> str:
        return (
            f'<figure class="chart empty" id="{chart_id}"><figcaption><h3>{_e(title)}</h3>'
            f"<p>{_e(why)}</p></figcaption></figure>"
        )

    # -- data quality ------------------------------------------------------------------

    def quality_section(self) -> str:
        by_check: dict[str, list[QualityValue]] = defaultdict(list)
        titles: dict[str, str] = {}
        for q in self.data.quality:
            by_check[q.check].append(q)
            titles.setdefault(q.check, q.title)
        parts = [
            '<section id="data-quality" aria-labelledby="data-quality-h">',
            '<h2 id="data-quality-h">Data quality</h2>',
            '<p class="intro">Each check per provider and month: how many pathways or referrals '
            "it found, their share, and the rows they came from (ids only, no patient data).</p>",
        ]
        if not by_check:
            parts.append("<p>No data-quality checks in this report.</p>")
        parts.append('<div class="quality-grid">')
        for check, values in by_check.items():
            values.sort(key=lambda q: (q.provider, q.month))
            cid = self.unique_id(f"check-{check}")
            rows = "".join(self._quality_row(q) for q in values)
            parts.append(
                f'<div class="table-wrap"><table class="quality" id="{cid}" '
                f'data-check="{_e(check)}"><caption>{_e(titles[check])} '
                f'<code class="check-id">{_e(check)}</code></caption>'
                '<thead><tr><th scope="col">Provider</th><th scope="col">Month</th>'
                '<th scope="col" class="num">Found</th><th scope="col" class="num">Out of</th>'
                '<th scope="col" class="num">Share</th>'
                '<th scope="col">Rows</th></tr></thead>'
                f"<tbody>{rows}</tbody></table></div>"
            )
        parts.append("</div>\n</section>")
        return "\n".join(parts)

    def _quality_row(self, q: QualityValue) -> str:
        attrs = (
            f'data-check="{_e(q.check)}" data-provider="{_e(q.provider)}" '
            f'data-month="{_e(q.month)}"'
        )
        count = (
            f'<td class="sup">{_SUPPRESSED}</td>'
            if q.count is None
            else f'<td class="num">{_count(q.count)}</td>'
        )
        denominator = (
            f'<td class="sup">{_SUPPRESSED}</td>'
            if q.denominator is None
            else f'<td class="num">{_count(q.denominator)}</td>'
        )
        if q.share is not None:
            share = f'<td class="num">{_pct(q.share)}</td>'
        elif q.count is None or q.denominator is None or q.note == _SUPPRESSED:
            share = f'<td class="sup">{_SUPPRESSED}</td>'
        else:
            share = f'<td class="na">{_NOT_AVAILABLE}</td>'
        if q.ids:
            items = "".join(f"<li><code>{_e(i)}</code></li>" for i in q.ids)
            label = "1 row" if len(q.ids) == 1 else f"{len(q.ids):,} rows"
            ids = (
                f"<td><details><summary>{label}</summary>"
                f'<ul class="ids">{items}</ul></details></td>'
            )
        elif self.data.suppressed and (q.count is None or q.count > 0):
            ids = '<td class="none">withheld in published figures (--no-suppress lists them)</td>'
        else:
            ids = '<td class="none">none</td>'
        # "suppressed" / "not available" already show in the cells
        shown = q.note and q.note not in {_SUPPRESSED, _NOT_AVAILABLE}
        note = f'<span class="note">{_e(q.note)}</span>' if shown else ""
        return (
            f'<tr {attrs}><th scope="row">{_e(q.provider)}</th><td>{_e(_month(q.month))}{note}</td>'
            f"{count}{denominator}{share}{ids}</tr>"
        )

    # -- inputs, rejected rows, definitions -----------------------------------------------

    def about_section(self) -> str:
        data = self.data
        inputs = (
            "<ul>" + "".join(f"<li><code>{_e(i)}</code></li>" for i in data.inputs) + "</ul>"
            if data.inputs
            else "<p>Not recorded.</p>"
        )
        if data.rejected:
            rejected = (
                '<table class="small" id="rejected"><caption class="visually-hidden">'
                "Rejected rows by error code</caption>"
                '<thead><tr><th scope="col">Reason (error code)</th><th scope="col">Rows</th>'
                "</tr></thead><tbody>"
                + "".join(
                    f'<tr><th scope="row"><code>{_e(code)}</code></th>'
                    f'<td class="num">{_count(n)}</td></tr>'
                    for code, n in sorted(data.rejected.items())
                )
                + f'</tbody><tfoot><tr><th scope="row">Total</th>'
                f'<td class="num">{_count(sum(data.rejected.values()))}</td></tr></tfoot></table>'
            )
        else:
            rejected = '<p id="rejected">None: every row could be used.</p>'
        definitions = "".join(self._definition(d) for d in data.definitions)
        return (
            '<section id="about" aria-labelledby="about-h">\n'
            '<h2 id="about-h">Inputs, rejected rows and definitions</h2>\n'
            '<div class="about-grid">'
            f"<div><h3>Inputs read</h3>{inputs}</div>"
            f'<div class="table-wrap"><h3>Rejected rows</h3>{rejected}</div>'
            "</div>\n"
            '<div class="table-wrap"><table class="definitions">'
            "<caption>What each figure means</caption>"
            '<thead><tr><th scope="col">Figure</th><th scope="col">Counts</th>'
            '<th scope="col">Out of</th><th scope="col">Leaving out</th>'
            '<th scope="col">Standard</th><th scope="col">Source</th></tr></thead>'
            f"<tbody>{definitions}</tbody></table></div>\n"
            "</section>"
        )

    def _definition(self, d: KpiDefinition) -> str:
        target = _standard(d.target) if d.target is not None else "—"
        return (
            f'<tr id="kpi-{_slug(d.id)}"><th scope="row">{_e(d.title)}</th>'
            f"<td>{_e(d.numerator)}</td><td>{_e(d.denominator) or '—'}</td>"
            f"<td>{_e(d.exclusion) or '—'}</td><td>{target}</td>"
            f'<td class="source">{_e(d.source)}</td></tr>'
        )


@dataclass(frozen=True, slots=True)
class _Stage:
    """One bar of the funnel: the published counts of a stage added up."""

    label: str
    total: int | None  # None: every group's count was suppressed
    hidden: int  # groups whose count was suppressed (not in the total)
    groups: int

    @property
    def text(self) -> str:
        if self.total is None:
            return _SUPPRESSED
        return _count(self.total) + (" *" if self.hidden else "")


def _svg(chart: alt.TopLevelMixin) -> str:
    """``chart`` as an inline SVG element: no XML namespace declarations (HTML's parser puts
    an ``<svg>`` in the SVG namespace itself), sized by its viewBox so it scales down."""
    spec = chart.to_dict(validate=False)
    spec["config"] = _CHART_CONFIG
    svg = vlc.vegalite_to_svg(spec)
    return re.sub(r'\s+xmlns(?::xlink)?="[^"]*"', "", svg, count=2)


#: The look of every chart (Vega-Lite config): the page's font and colours, readable sizes.
_CHART_CONFIG: dict[str, Any] = {
    "font": _FONT,
    "background": "white",
    "padding": 8,
    "view": {"stroke": "#d8dde0"},
    "axis": {
        "labelFontSize": 12,
        "titleFontSize": 13,
        "labelColor": "#212b32",
        "titleColor": "#212b32",
        "gridColor": "#e8edee",
        "domainColor": "#768692",
        "tickColor": "#768692",
    },
    "title": {"fontSize": 15, "anchor": "start", "color": "#212b32", "offset": 10},
    "legend": {
        "labelFontSize": 12,
        "titleFontSize": 12,
        "titleColor": "#212b32",
        "labelLimit": 220,
    },
}


_CSS = """
:root { --blue: #005eb8; --text: #212b32; --grey: #4c6272; --pale: #f0f4f5; --line: #d8dde0;
  --red: #d5281b; --green: #007f3b; --warm: #fff9c4; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1280px; padding: 24px 32px 48px; color: var(--text);
  font: 16px/1.5 Arial, Helvetica, sans-serif; background: #fff; }
header { border-bottom: 4px solid var(--blue); padding-bottom: 12px; margin-bottom: 16px; }
.kicker { margin: 0; color: var(--blue); font-weight: bold; text-transform: uppercase;
  letter-spacing: .04em; font-size: 14px; }
h1 { margin: 4px 0 8px; font-size: 32px; line-height: 1.2; }
h2 { font-size: 24px; margin: 32px 0 12px; padding-top: 8px; border-top: 1px solid var(--line); }
h3 { font-size: 18px; margin: 0 0 4px; }
.meta { margin: 0 0 12px; color: var(--grey); }
.banner { margin: 12px 0; padding: 10px 14px; border-left: 6px solid var(--blue);
  background: var(--pale); }
.banner.exact { border-left-color: var(--red); background: #fbe9e7; }
.legend-note { font-size: 14px; color: var(--grey); margin: 8px 0 0; }
nav ul { list-style: none; padding: 0; margin: 0; display: flex; flex-wrap: wrap; gap: 8px 20px; }
nav a, a { color: var(--blue); }
.table-wrap { overflow-x: auto; margin: 8px 0 16px; }
table { border-collapse: collapse; font-size: 14px; }
table.headline:not(.sent) { width: 100%; }
caption { text-align: left; font-weight: bold; font-size: 16px; padding: 4px 0 8px; }
th, td { border-bottom: 1px solid var(--line); padding: 6px 10px; vertical-align: top; }
thead th { background: var(--pale); text-align: left; vertical-align: bottom;
  border-bottom: 2px solid var(--grey); }
thead th.num { text-align: right; }
thead th a { color: var(--text); text-decoration: none; }
tbody th { text-align: left; font-weight: bold; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.target { display: block; font-weight: normal; color: var(--grey); font-size: 12px; }
.fraction { display: block; color: var(--grey); font-size: 12px; }
.sup, .na, td.none { color: var(--grey); font-style: italic; text-align: center;
  white-space: nowrap; }
td.sup { background: repeating-linear-gradient(45deg, #fff, #fff 4px, var(--pale) 4px,
  var(--pale) 8px); }
span.sup, span.na, span.none { font-style: italic; }
.meets { color: var(--green); margin-left: 4px; }
.below { color: var(--red); margin-left: 4px; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(440px, 1fr));
  gap: 16px 24px; align-items: start; }
.charts figure[data-chart="waits"] { grid-column: 1 / -1; }
tbody tr.first > * { border-top: 2px solid var(--line); }
th.provider { background: #fafbfb; border-right: 1px solid var(--line); }
figure.chart { margin: 0; padding: 12px; border: 1px solid var(--line); border-radius: 4px; }
figure.chart figcaption p { margin: 0 0 8px; font-size: 14px; color: var(--grey); }
.svg svg { max-width: 100%; height: auto; display: block; }
details { margin-top: 6px; font-size: 14px; }
summary { cursor: pointer; color: var(--blue); }
table.small { font-size: 13px; margin-top: 6px; }
ul.ids { margin: 4px 0; padding-left: 18px; max-height: 240px; overflow-y: auto; }
code { font-family: Consolas, "Courier New", monospace; font-size: 13px; }
.check-id { font-weight: normal; color: var(--grey); margin-left: 8px; }
.note { display: block; color: var(--grey); font-size: 12px; }
.quality-grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr));
  gap: 0 24px; align-items: start; }
.about-grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr));
  gap: 0 24px; align-items: start; }
table.definitions { width: 100%; }
td.source { color: var(--grey); font-size: 13px; }
tfoot th { text-align: left; }
tfoot th, tfoot td { border-top: 2px solid var(--grey); font-weight: bold; }
.visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden;
  clip: rect(0 0 0 0); white-space: nowrap; }
@media print { body { max-width: none; padding: 0; } details { display: block; }
  figure.chart { break-inside: avoid; } }
"""


__all__ = ["render_html"]
