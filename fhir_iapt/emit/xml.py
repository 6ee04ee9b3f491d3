"""FHIR XML output: one ``<bundle id>.xml`` file per transaction Bundle.

FHIR XML has no line-per-resource stream like NDJSON, so each Bundle is its own XML document
(each can be POSTed to a server as it is), in ``<out_dir>/bundles-xml/``. The folder is built
under a hidden temporary name and renamed into place on close, replacing the folder of an
earlier run; an error discards it. The XML comes from :func:`fhir_iapt.fhir.xml.resource_to_xml`
(element order from the R4 definitions).
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

from fhir_iapt.emit._atomic import emit_error, temp_path
from fhir_iapt.emit._base import WriterBase
from fhir_iapt.errors import EmitError, Location, UnwritableRecordError
from fhir_iapt.results import Converted

XML_DIR = "bundles-xml"


def _unwritable(converted: Converted, exc: EmitError) -> UnwritableRecordError:
    """``resource_to_xml``'s error (it names the element) as the rejection of this record."""
    where = converted.location
    issues = [replace(issue, location=where) for issue in exc.issues]
    return UnwritableRecordError(
        exc.message, issues=issues, location=where, error_code=exc.error_code
    )


class XmlBundleWriter(WriterBase):
    """``<out_dir>/bundles-xml/<Bundle.id>.xml``, one FHIR XML Bundle per file.

    A bundle with no FHIR XML form (a string XML 1.0 cannot hold, such as a control character
    or a lone surrogate: FI641; an element R4 does not define: FI640) raises
    :class:`~fhir_iapt.errors.UnwritableRecordError` naming the record and the element;
    nothing of it is written and the writer takes the next record.
    """

    def __init__(self, out_dir: Path, *, dirname: str = XML_DIR) -> None:
        self.path = Path(out_dir) / dirname
        self._tmp = temp_path(self.path)
        try:
            self._tmp.mkdir(parents=True, exist_ok=False)
        except OSError as exc:
            raise emit_error("cannot create output folder", self.path, exc) from exc
        self._open = True
        self.count = 0

    def write(self, converted: Converted) -> None:
        from fhir_iapt.fhir.xml import resource_to_xml

        bundle_id = converted.bundle.get("id")
        if not isinstance(bundle_id, str) or not bundle_id or "/" in bundle_id:
            raise EmitError(
                "Bundle.id is needed to name its XML file",
                location=Location(element="Bundle.id"),
            )
        try:
            data = resource_to_xml(converted.bundle)
        except EmitError as exc:  # this bundle has no FHIR XML form: the record is rejected
            raise _unwritable(converted, exc) from exc
        target = self._tmp / f"{bundle_id}.xml"
        try:
            target.write_bytes(data)
        except OSError as exc:
            raise emit_error("cannot write output file", target, exc) from exc
        self.count += 1

    def close(self) -> None:
        if not self._open:
            return
        self._open = False
        try:
            if self.path.exists():
                shutil.rmtree(self.path)
            self._tmp.replace(self.path)
        except OSError as exc:
            raise emit_error("cannot finish output folder", self.path, exc) from exc

    def abort(self) -> None:
        if not self._open:
            return
        self._open = False
        shutil.rmtree(self._tmp, ignore_errors=True)


__all__ = ["XML_DIR", "XmlBundleWriter"]
