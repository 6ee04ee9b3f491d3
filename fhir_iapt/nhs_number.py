"""NHS number check: the modulus 11 check digit, and the normal 10-digit form.

DOMAIN.md: digits 1-9 are multiplied by the weights 10...2 and summed; the check is
11 - (sum mod 11); a check of 11 is 0; a check of 10 means the number is invalid; otherwise it
must equal digit 10. Only ASCII digits count: ``str.isdigit`` also accepts other Unicode digits
(superscripts, Arabic-Indic), which are not NHS numbers.

Neither function says why a number is invalid in terms of its value: callers name the field and
the rule, never the number.
"""

from __future__ import annotations

import operator
from typing import Final

#: Weights of digits 1-9 (DOMAIN.md).
_WEIGHTS: Final = (10, 9, 8, 7, 6, 5, 4, 3, 2)


def check_digit(first_nine: str) -> int | None:
    """The modulus 11 check digit for 9 ASCII digits, or None when no valid number has them."""
    total: int = sum(map(operator.mul, map(int, first_nine), _WEIGHTS))
    check = 11 - total % 11
    if check == 11:
        return 0
    return None if check == 10 else check


def is_valid_nhs_number(digits: str) -> bool:
    """True when ``digits`` is exactly 10 ASCII digits whose modulus 11 check digit matches."""
    if len(digits) != 10 or not (digits.isascii() and digits.isdigit()):
        return False
    check = check_digit(digits[:9])
    return check is not None and check == int(digits[9])


def normalise_nhs_number(raw: str) -> str | None:
    """``"900 000 0009"`` -> ``"9000000009"``: spaces removed, ends stripped; None if invalid."""
    digits = raw.replace(" ", "").strip()
    return digits if is_valid_nhs_number(digits) else None


__all__ = ["check_digit", "is_valid_nhs_number", "normalise_nhs_number"]
