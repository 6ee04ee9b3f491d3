"""Emit: write converted bundles, rejections and the run summary to an output folder.

Every writer is a context manager that writes under hidden temporary names and renames its
files into place only on a clean exit, so a crash never leaves a complete-looking file:

* :class:`NdjsonBundleWriter` -> ``bundles.ndjson`` (one transaction Bundle per line; default);
* :class:`BulkWriter` -> ``<ResourceType>.ndjson`` (FHIR Bulk Data layout, references
  rewritten to ``<Type>/<id>``, each resource once);
* :class:`XmlBundleWriter` -> ``bundles-xml/<Bundle.id>.xml`` (FHIR XML);
* :class:`RejectsWriter` -> ``rejects.ndjson`` (one OperationOutcome per rejected record);
* :func:`write_summary` -> ``summary.json``.
"""

from __future__ import annotations

from fhir_iapt.emit._base import OutputWriter
from fhir_iapt.emit.bulk import BulkWriter, rewrite_references
from fhir_iapt.emit.ndjson import (
    BUNDLES_FILE,
    FAILED_FILE,
    REJECTS_FILE,
    RESULTS_FILE,
    NdjsonBundleWriter,
    RejectsWriter,
)
from fhir_iapt.emit.summary import SUMMARY_FILE, write_summary
from fhir_iapt.emit.xml import XML_DIR, XmlBundleWriter

__all__ = [
    "BUNDLES_FILE",
    "FAILED_FILE",
    "REJECTS_FILE",
    "RESULTS_FILE",
    "SUMMARY_FILE",
    "XML_DIR",
    "BulkWriter",
    "NdjsonBundleWriter",
    "OutputWriter",
    "RejectsWriter",
    "XmlBundleWriter",
    "rewrite_references",
    "write_summary",
]
