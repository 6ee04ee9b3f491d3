"""``fhir-iapt ledger``: the referral ledger's upkeep (``purge``).

The ledger (:mod:`fhir_iapt.ledger`) holds, for every referral ``convert`` or the relay sent,
what matching outcomes back needs: the ServiceRequest identifier, NHS number, authored date,
performer ODS code, LTC and the share-outcomes choice. ``purge`` removes the entries authored
before a date, as the service's retention policy says.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import NoReturn

import click

from fhir_iapt.cli._errors import error_format_option
from fhir_iapt.cli._run import EXIT_OK, fail_usage
from fhir_iapt.errors import Location
from fhir_iapt.ledger import LEDGER_ENV, Ledger, LedgerError, default_ledger_path


@click.group()
def ledger() -> None:
    """The referral ledger that fhir-iapt convert and the relay record referrals in."""


@ledger.command()
@click.option(
    "--ledger",
    "ledger_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"The ledger file (default: ${LEDGER_ENV}, else "
    "$XDG_DATA_HOME/fhir-iapt/ledger.sqlite, i.e. ~/.local/share/fhir-iapt/ledger.sqlite).",
)
@click.option(
    "--before",
    required=True,
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Remove every entry whose referral was authored before this date (YYYY-MM-DD).",
)
@error_format_option()
def purge(ledger_path: Path | None, before: datetime) -> NoReturn:
    """Remove the ledger entries of referrals authored before --before.

    The removed rows are overwritten in the file. Outcomes for a purged referral can no longer
    be matched (they are counted as no-referral-in-ledger). Exit status: 0 done, 2 the ledger
    is missing or cannot be used.
    """
    path = ledger_path or default_ledger_path()
    if not path.is_file():  # a mistyped path must not become a new, empty ledger
        fail_usage(
            LedgerError(
                "there is no referral ledger at this path", location=Location(file=str(path))
            )
        )
    try:
        with Ledger(path) as opened:
            count = opened.purge(before=before.date())
    except LedgerError as exc:
        fail_usage(exc)
    click.echo(
        f"ledger: {count} entries authored before {before.date().isoformat()} purged from {path}",
        err=True,
    )
    raise SystemExit(EXIT_OK)
