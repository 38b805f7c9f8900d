"""Client labels (``X-User-ID``, the check-cache ``user_id``): checked at the edge.

A label is written to ``request_log.user_id``; a value no database can store (a lone
surrogate, NUL on PostgreSQL) or longer than the column would fail the whole write-behind
batch, so such labels are a 422 ``validation_error`` before anything is served.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

# request_log.user_id is String(128).
MAX_LABEL_CHARS = 128
# C0 and C1 control characters (NUL included) and UTF-16 surrogates.
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def label_problem(value: str) -> str | None:
    """Why ``value`` is not an acceptable label, or None when it is."""
    if len(value) > MAX_LABEL_CHARS:
        return f"at most {MAX_LABEL_CHARS} characters"
    if _FORBIDDEN.search(value):
        return "control characters and lone surrogates are not allowed"
    return None


def _check_label(value: str | None) -> str | None:
    if value is not None and (problem := label_problem(value)) is not None:
        raise ValueError(problem)
    return value


# A pydantic field type for labels in JSON bodies.
ClientLabel = Annotated[str | None, AfterValidator(_check_label)]
