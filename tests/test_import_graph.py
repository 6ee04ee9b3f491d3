"""The stages import one way: read -> map -> build/validate -> emit -> push, then the joins.

grimp (import-linter's graph builder) reads every import statement in the package, including
the ones inside functions, so a lazy import of a later stage is caught too.
"""

from __future__ import annotations

import grimp
import pytest

#: Each package-level module, by layer: a module may import its own layer and earlier ones.
LAYERS: list[tuple[str, set[str]]] = [
    # shared leaves: errors, identifiers, data files, canonical records and results, the
    # clinical rules (instrument tables, thresholds, NHS outcome definitions)
    (
        "shared",
        {
            "errors",
            "error_codes",
            "limits",
            "systems",
            "nhs_number",
            "_data",
            "_logging",
            "records",
            "results",
            "scoring",
        },
    ),
    ("read", {"sources"}),
    ("map", {"mapping", "dataset"}),
    ("build and validate", {"fhir"}),
    ("emit", {"emit"}),
    ("push", {"client", "push"}),
    # the joins: consent decided once, one contract per record kind, the pipeline, the
    # referral ledger (reads referral bundles; the CLI and the relay record into it)
    ("join", {"consent", "targets", "pipeline", "ledger"}),
    # the pathway report: reads outcome inputs, the ledger and the shipped Measures
    ("report", {"report"}),
    # batch on Spark (the spark extra): the pipeline and the report's KPIs per partition;
    # nothing before it imports it
    ("spark", {"spark"}),
    ("relay", {"relay"}),
    ("cli", {"cli", "__main__"}),
]
_RANK = {name: rank for rank, (_, names) in enumerate(LAYERS) for name in names}


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("fhir_iapt", include_external_packages=False)


def _top(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_every_module_has_a_layer(graph: grimp.ImportGraph) -> None:
    """A new top-level module must be placed in a layer (so the next test sees it)."""
    unplaced = sorted({top for m in graph.modules if (top := _top(m)) and top not in _RANK})
    assert unplaced == []


def test_no_stage_imports_a_later_stage(graph: grimp.ImportGraph) -> None:
    """No module imports (even lazily, inside a function) a module of a later layer."""
    violations = []
    for module in sorted(graph.modules):
        top = _top(module)
        if top is None or top not in _RANK:
            continue
        for imported in graph.find_modules_directly_imported_by(module):
            other = _top(imported)
            if other is not None and other in _RANK and _RANK[other] > _RANK[top]:
                violations.append(f"{module} imports {imported}")
    assert violations == []


def test_no_import_cycles_between_modules(graph: grimp.ImportGraph) -> None:
    """No two modules import each other, directly or through others (e.g. app <-> routes)."""
    cycles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            if imported != module and graph.chain_exists(imported, module, as_packages=False):
                cycles.append(f"{module} -> {imported}")
    # a package's __init__ re-exporting its submodules is not a cycle of modules
    cycles = [c for c in cycles if not _is_package_reexport(c)]
    assert cycles == []


def _is_package_reexport(edge: str) -> bool:
    importer, imported = edge.split(" -> ")
    return imported.startswith(importer + ".") or importer.startswith(imported + ".")


def test_the_layer_check_can_fail(graph: grimp.ImportGraph) -> None:
    """The check above sees a real edge: the pipeline (join) imports the mapping stage."""
    assert "fhir_iapt.mapping" in graph.find_modules_directly_imported_by("fhir_iapt.pipeline")
    assert _RANK["mapping"] < _RANK["pipeline"]
