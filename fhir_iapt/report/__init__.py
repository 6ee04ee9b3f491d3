"""Report: each pathway's results (NHS England's KPIs per provider, LTC pathway and month, as
FHIR MeasureReports) and the data quality behind them, read from the outcome inputs and the
referral ledger."""

from fhir_iapt.report._model import (
    PATHWAYS,
    Group,
    KpiDefinition,
    KpiValue,
    QualityValue,
    ReportData,
)

__all__ = ["PATHWAYS", "Group", "KpiDefinition", "KpiValue", "QualityValue", "ReportData"]
