"""log_event: structured log records (fields as attributes and as key=value, nothing else)."""

from __future__ import annotations

import logging

import pytest

from fhir_iapt._logging import log_event

_log = logging.getLogger("fhir_iapt.tests.logging")


def test_fields_become_record_attributes_and_key_value_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each field is an attribute of the record and a key=value after the event sentence."""
    caplog.set_level(logging.INFO, logger=_log.name)
    log_event(_log, logging.WARNING, "delivery failed", message_id="m1", attempt=2, retry_in=1.5)
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage() == "delivery failed message_id=m1 attempt=2 retry_in=1.5"
    assert (record.event, record.message_id, record.attempt, record.retry_in) == (  # type: ignore[attr-defined]
        "delivery failed",
        "m1",
        2,
        1.5,
    )
    assert record.funcName == "test_fields_become_record_attributes_and_key_value_text"


def test_none_fields_are_left_out(caplog: pytest.LogCaptureFixture) -> None:
    """A field whose value is None appears neither in the text nor on the record."""
    caplog.set_level(logging.INFO, logger=_log.name)
    log_event(_log, logging.INFO, "claimed", message_id="m1", http_status=None)
    [record] = caplog.records
    assert record.getMessage() == "claimed message_id=m1"
    assert not hasattr(record, "http_status")


@pytest.mark.parametrize("name", ["message", "args", "name", "event"])
def test_field_named_like_a_record_attribute_is_refused(name: str) -> None:
    """A field that would overwrite a LogRecord attribute raises ValueError, even unlogged."""
    with pytest.raises(ValueError, match=name):
        log_event(_log, logging.DEBUG, "x", **{name: "v"})
