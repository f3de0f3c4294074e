"""Strict types for request bodies: an id is a JSON integer, a flag a JSON boolean (issue 11 item 2).

Pydantic's lax mode turns ``"6"``, ``6.0`` and ``true`` into the integer 6 (and ``"yes"`` into
True); a check that looked at the raw JSON and the row that was aired could then disagree. These
types accept only what they say, and name what they got in the 422.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field, StrictBool

MAX_ID = 2**63 - 1  # what the database stores (64-bit signed)


def _json_integer(v: object) -> object:
    if type(v) is not int:  # bool is an int subclass; "6" and 6.0 are not ids
        shown = repr(v) if len(repr(v)) <= 40 else repr(v)[:37] + "..."
        raise ValueError(f"an id is a JSON integer such as 6, not {type(v).__name__} {shown}")
    return v


DbId = Annotated[int, BeforeValidator(_json_integer), Field(ge=1, le=MAX_ID)]
Flag = StrictBool
