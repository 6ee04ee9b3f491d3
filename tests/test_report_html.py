"""report.html from a hand-built ReportData: escaped, self-contained, and never showing a
suppressed or unavailable figure as a number, in the tables or the charts."""

from __future__ import annotations

import re
from dataclasses import replace
from html.parser import HTMLParser

import pytest
from lxml import etree
from report_helpers import HOSTILE_PROVIDER, PATHWAYS, report_data

from fhir_iapt.report import KpiValue, ReportData
from fhir_iapt.report._html import render_html

DATA = report_data()


@pytest.fixture(scope="module")
def page() -> str:
    return render_html(DATA)


@pytest.fixture(scope="module")
def doc(page: str) -> etree._Element:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.fromstring(page.encode("utf-8"), parser)


class _Tokens(HTMLParser):
    """Every start tag and every run of text, as a browser's tokenizer sees them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _tokens(page: str) -> _Tokens:
    tokens = _Tokens()
    tokens.feed(page)
    tokens.close()
    return tokens


def _text(element: etree._Element) -> str:
    return " ".join("".join(str(t) for t in element.itertext()).split())


def _cell(doc: etree._Element, value: KpiValue) -> etree._Element:
    g = value.group
    cells = [
        td
        for td in doc.iter("td")
        if td.get("data-kpi") == value.kpi
        and td.get("data-pathway") == g.pathway
        and td.get("data-provider") == g.provider
        and td.get("data-month") == g.month
    ]
    assert len(cells) == 1, f"{value.kpi} {g}: {len(cells)} cells"
    return cells[0]


def _figure(doc: etree._Element, pathway: str, kind: str) -> etree._Element:
    sections = [s for s in doc.iter("section") if s.get("id") == f"pathway-{pathway}"]
    assert len(sections) == 1, pathway
    figures = [f for f in sections[0].iter("figure") if f.get("data-chart") == kind]
    assert len(figures) == 1, (pathway, kind)
    return figures[0]


def _marks(figure: etree._Element, name: str) -> list[etree._Element]:
    """The drawn items of one named mark of a chart (points, lines, bars, rules); in a row of
    plots Vega-Lite numbers the mark: ``<name>_<i>_marks``."""
    pattern = re.compile(rf"{re.escape(name)}(?:_\d+)?_marks")
    groups = [
        g
        for g in figure.iter("g")
        if any(pattern.fullmatch(c) for c in (g.get("class") or "").split())
    ]
    return [item for g in groups for item in g if item.tag in {"path", "line", "text"}]


def _mark_name(kpi: str, part: str) -> str:
    return re.sub(r"\W", "_", f"kpi-{kpi}-{part}")


def test_every_value_is_escaped(page: str) -> None:
    """A provider code or row id holding markup is text on the page: no element comes of it."""
    tokens = _tokens(page)
    assert [t for t, _ in tokens.tags if t in {"script", "b"}] == []
    text = "\n".join(tokens.text)
    assert HOSTILE_PROVIDER in text
    assert "IDS201.csv:<b>140</b>" in text


def test_page_is_well_formed(doc: etree._Element) -> None:
    """The page parses as XML (every element closed), so a browser builds the tree we wrote."""
    assert doc.tag == "html"


def test_no_external_reference(page: str) -> None:
    """Nothing on the page points outside the file: no URL, no script, no src but data:."""
    assert re.findall(r"https?:|//|@import|url\(", page, flags=re.IGNORECASE) == []
    tokens = _tokens(page)
    assert [t for t, _ in tokens.tags if t in {"script", "link", "iframe", "object", "embed"}] == []
    for tag, attrs in tokens.tags:
        for name, value in attrs.items():
            if name in {"src", "srcset", "poster", "data", "action", "formaction"}:
                assert (value or "").startswith("data:"), (tag, name)
            if name in {"href", "xlink:href"}:
                assert (value or "").startswith("#"), (tag, name)
            assert not name.startswith("on"), (tag, name)


def test_suppressed_and_not_available_cells_show_no_number(doc: etree._Element) -> None:
    """Each suppressed figure reads "suppressed" and each 0-based rate "not available"."""
    suppressed = [v for v in DATA.kpis if v.numerator is None or v.note == "suppressed"]
    unavailable = [v for v in DATA.kpis if v.note == "not available"]
    assert suppressed
    assert unavailable
    for value in suppressed:
        assert _text(_cell(doc, value)) == "suppressed", value
    for value in unavailable:
        assert _text(_cell(doc, value)) == "not available", value


def test_shown_rates_are_percentages_of_their_counts(doc: etree._Element) -> None:
    """A rate shows as its percentage with the counts it comes from."""
    value = next(v for v in DATA.kpis if v.rate is not None and v.rate < 0.5)
    assert value.numerator is not None
    assert value.denominator is not None
    text = _text(_cell(doc, value))
    assert text.startswith(f"{100 * value.numerator / value.denominator:.1f}%")
    assert f"{value.numerator} / {value.denominator}" in text


def test_one_chart_of_each_kind_per_pathway(doc: etree._Element) -> None:
    """Every pathway has its recovery, waiting-time and funnel chart, each an inline SVG with a
    title and a text alternative."""
    for pathway in PATHWAYS:
        for kind in ("recovery", "waits", "funnel"):
            figure = _figure(doc, pathway, kind)
            svgs = list(figure.iter("svg"))
            assert len(svgs) == 1, (pathway, kind)
            holder = svgs[0].getparent()
            assert holder is not None
            assert holder.get("role") == "img"
            labelled = {e.get("id"): _text(e) for e in figure.iter() if e.get("id")}
            assert labelled.get(holder.get("aria-labelledby")), (pathway, kind)
            assert labelled.get(holder.get("aria-describedby")), (pathway, kind)
            assert list(figure.iter("table")), (pathway, kind)


def test_charts_plot_only_the_rates_that_are_shown(doc: etree._Element) -> None:
    """Each rate chart has one point per shown rate: none for a suppressed or unavailable one
    (which would otherwise sit at 0%)."""
    kinds = {
        "recovery-rate": "recovery",
        "first-treatment-6-weeks": "waits",
        "first-treatment-18-weeks": "waits",
    }
    for pathway in PATHWAYS:
        for kpi, kind in kinds.items():
            shown = [
                v
                for v in DATA.kpis
                if v.kpi == kpi and v.group.pathway == pathway and v.rate is not None
            ]
            points = _marks(_figure(doc, pathway, kind), _mark_name(kpi, "points"))
            assert len(points) == len(shown), (pathway, kpi)


def _axis_tick_y(figure: etree._Element, label: str, panel: int) -> float:
    """Where the y axis of the ``panel``-th plot of ``figure`` has its ``label`` tick."""
    axes = [
        g
        for g in figure.iter("g")
        if "role-axis" in (g.get("class") or "")
        and (g.get("aria-label") or "").startswith("Y-axis")
    ]
    axis = axes[panel]
    ticks = next(e for e in axis.iter("g") if "role-axis-tick" in (e.get("class") or ""))
    labels = next(e for e in axis.iter("g") if "role-axis-label" in (e.get("class") or ""))
    names = [_text(t) for t in labels]
    transform = list(ticks)[names.index(label)].get("transform") or ""
    m = re.fullmatch(r"translate\(([-\d.]+),([-\d.]+)\)", transform)
    assert m, transform
    return float(m[2])


def _rule_y(figure: etree._Element, name: str) -> float:
    rules = [e for e in _marks(figure, name) if e.tag == "line"]
    assert len(rules) == 1, name
    m = re.fullmatch(r"translate\(([-\d.]+),([-\d.]+)\)", rules[0].get("transform") or "")
    assert m
    return float(m[2])


@pytest.mark.parametrize(
    ("kpi", "kind", "panel", "label"),
    [
        ("recovery-rate", "recovery", 0, "50%"),
        ("first-treatment-6-weeks", "waits", 0, "75%"),
        ("first-treatment-18-weeks", "waits", 1, "95%"),
    ],
)
def test_standard_line_drawn_at_its_value(
    doc: etree._Element, kpi: str, kind: str, panel: int, label: str
) -> None:
    """The 50% / 75% / 95% standard is a line across the plot at that height of the y axis
    (read off its 0% and 100% ticks), labelled with it."""
    definition = next(d for d in DATA.definitions if d.id == kpi)
    assert definition.target is not None
    for pathway in PATHWAYS:
        figure = _figure(doc, pathway, kind)
        rule = _rule_y(figure, _mark_name(kpi, "standard"))
        low = _axis_tick_y(figure, "0%", panel)
        high = _axis_tick_y(figure, "100%", panel)
        expected = low + (high - low) * definition.target
        assert abs(rule - expected) < 1, (pathway, rule, expected)
        labels = [_text(t) for t in _marks(figure, _mark_name(kpi, "standard-label"))]
        assert labels == [f"{label} standard"], pathway


def test_funnel_adds_only_published_counts(doc: etree._Element) -> None:
    """Each funnel bar is the sum of the stage's published counts; a stage with a suppressed
    group says so (*) rather than counting it as 0."""
    stages = [
        ("referrals-sent", "Sent"),
        ("referrals-received", "Received"),
        ("entered-treatment", "Entered treatment"),
        ("finished-treatment", "Finished treatment"),
        ("recovery-rate", "Recovered"),
    ]
    for pathway in PATHWAYS:
        figure = _figure(doc, pathway, "funnel")
        bars = {
            (b.get("aria-label") or "").rsplit("stage: ", 1)[-1]: b
            for b in _marks(figure, "funnel_bars")
        }
        labels = [_text(t) for t in _marks(figure, "funnel_labels")]
        assert list(bars) == [label for _, label in stages], pathway
        for (kpi, stage), text in zip(stages, labels, strict=True):
            values = [v for v in DATA.kpis if v.kpi == kpi and v.group.pathway == pathway]
            total = sum(v.numerator for v in values if v.numerator is not None)
            hidden = any(v.numerator is None for v in values)
            assert f": {total};" in (bars[stage].get("aria-label") or ""), (pathway, stage)
            assert text == f"{total:,}" + (" *" if hidden else ""), (pathway, stage)


def test_suppression_note_says_which_rule_applied() -> None:
    """The page says the publication rule was applied, or that the figures are exact and not
    for publication."""
    figures = replace(DATA, kpis=DATA.kpis[:40])
    published = _text(_by_id(render_html(figures), "suppression"))
    exact = _text(_by_id(render_html(replace(figures, suppressed=False)), "suppression"))
    assert "counts under 5 are suppressed" in published
    assert "not applied" in exact
    assert "Do not publish" in exact


def _by_id(page: str, id_: str) -> etree._Element:
    doc = etree.fromstring(page.encode(), etree.XMLParser(resolve_entities=False))
    found = [e for e in doc.iter() if e.get("id") == id_]
    assert len(found) == 1, id_
    return found[0]


def test_data_quality_rows_show_count_share_and_ids(doc: etree._Element) -> None:
    """Each data-quality value is a row with its count (or "suppressed"), its share and, folded
    in a <details>, every id it came from."""
    rows = {
        (r.get("data-check"), r.get("data-provider"), r.get("data-month")): r
        for r in doc.iter("tr")
        if r.get("data-check")
    }
    assert len(rows) == len(DATA.quality)
    for q in DATA.quality:
        row = rows[(q.check, q.provider, q.month)]
        cells = [_text(c) for c in row.iter("td")]
        assert cells[1] == ("suppressed" if q.count is None else str(q.count)), q
        if q.share is not None:
            assert cells[3] == f"{q.share * 100:.1f}%", q
        else:
            assert not re.search(r"\d", cells[3]), q
        folded = [i for d in row.iter("details") for i in d.iter("code")]
        assert [_text(c) for c in folded] == list(q.ids), q


def test_rejected_rows_and_inputs_listed(doc: etree._Element) -> None:
    """The rejected-row count of each error code, their total and the inputs are on the page."""
    table = next(t for t in doc.iter("table") if t.get("id") == "rejected")
    rows = {_text(r[0]): _text(r[1]) for r in table.iter("tr") if r[0].tag == "th"}
    for code, n in DATA.rejected.items():
        assert rows[code] == str(n)
    assert rows["Total"] == str(sum(DATA.rejected.values()))
    about = _text(next(s for s in doc.iter("section") if s.get("id") == "about"))
    for name in DATA.inputs:
        assert name in about


def test_headline_table_per_pathway_has_every_kpi(doc: etree._Element) -> None:
    """Each pathway's headline tables hold a cell for every KPI value of that pathway."""
    for pathway in PATHWAYS:
        cells = [td for td in doc.iter("td") if td.get("data-pathway") == pathway]
        keys = {(td.get("data-kpi"), td.get("data-provider"), td.get("data-month")) for td in cells}
        expected = {
            (v.kpi, v.group.provider, v.group.month)
            for v in DATA.kpis
            if v.group.pathway == pathway
        }
        assert expected <= keys, pathway


def test_empty_report_renders() -> None:
    """A report with no figures still renders, saying there are none."""
    empty = ReportData(
        definitions=(), kpis=(), quality=(), suppressed=True, generated=DATA.generated
    )
    page = render_html(empty)
    assert "There are no KPI figures in this report." in page
    assert "No data-quality checks in this report." in page


def test_published_quality_rows_say_their_ids_are_withheld() -> None:
    """In published figures a check that found rows but lists no ids (the KPI stage withholds
    them: a list is an exact count) says they are withheld, never "none"; an exact report
    with no rows found says "none"."""
    found = replace(DATA.quality[1], ids=())
    assert found.count != 0
    cells = {
        suppressed: [
            _text(c)
            for r in etree.fromstring(
                render_html(replace(DATA, quality=(found,), suppressed=suppressed)).encode(),
                etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False),
            ).iter("tr")
            if r.get("data-check")
            for c in r.iter("td")
        ][-1]
        for suppressed in (True, False)
    }
    assert cells[True].startswith("withheld in published figures")
    assert cells[False] == "none"
