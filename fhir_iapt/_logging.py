"""Structured log events: a fixed sentence plus named fields, never values spliced into text.

Every log line about a message or a request is an *event*: a constant sentence (``"delivery
failed, will retry"``) and fields (``message_id``, ``destination``, ``error_code``, ``attempt``,
``retry_in``…). The fields go on the :class:`logging.LogRecord` as attributes (``extra``), with
the sentence as ``event``, so a JSON formatter or a log shipper reads them by name; they are also
appended to the message as ``key=value`` so a plain-text handler shows them::

    from fhir_iapt._logging import log_event

    log_event(_log, logging.WARNING, "delivery failed, will retry",
              message_id=message.id, destination=message.destination,
              error_code=error.error_code, attempt=2, retry_in=12.5)
    # delivery failed, will retry message_id=3f2a… destination=iapt error_code=FI722
    #   attempt=2 retry_in=12.5

Fields are identifiers, codes, counts and durations only: never patient data (NHS numbers,
names, dates of birth, scores) and never text a server sent (its diagnostics may quote them).
A field whose value is ``None`` is left out. A field named like a ``LogRecord`` attribute
(``message``, ``args``, ``name``…) is refused with ``ValueError``: it would overwrite the record.
"""

from __future__ import annotations

import logging

#: Names a field may not take: the record's own attributes (and what formatters add to it).
_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "event",
}

FieldValue = str | int | float | bool | None


def log_event(logger: logging.Logger, level: int, event: str, /, **fields: FieldValue) -> None:
    """Log ``event`` at ``level`` with ``fields`` as record attributes and as ``key=value``."""
    clash = _RESERVED.intersection(fields)
    if clash:
        raise ValueError(f"log field names clash with LogRecord attributes: {sorted(clash)}")
    if not logger.isEnabledFor(level):
        return
    kept = {name: value for name, value in fields.items() if value is not None}
    text = " ".join([event, *(f"{name}={value}" for name, value in kept.items())])
    logger.log(level, "%s", text, extra={"event": event, **kept}, stacklevel=2)


__all__ = ["FieldValue", "log_event"]
