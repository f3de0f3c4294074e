"""The password policy: long enough, not a common password, not the user name.

Applied wherever a person chooses a password: ``POST /api/me/password``, an admin setting one,
``loaphuong user``, and ``LOAPHUONG_ADMIN_PASSWORD``. Generated one-time passwords pass it.
The list of common passwords ships in ``controller/data/common_passwords.txt``.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

MIN_LENGTH = 10
MAX_LENGTH = 200
_LEET = str.maketrans({"@": "a", "4": "a", "0": "o", "1": "i", "!": "i", "3": "e", "$": "s", "5": "s",
                       "7": "t"})
_EDGES = re.compile(r"^[^a-z]+|[^a-z]+$")


@cache
def common_passwords() -> frozenset[str]:
    text = resources.files("controller").joinpath("data/common_passwords.txt").read_text("utf-8")
    return frozenset(w for w in (line.strip() for line in text.splitlines()) if w and not w.startswith("#"))


def password_problem(password: str, username: str = "") -> str | None:
    """Why ``password`` may not be used by ``username`` (English, for ``detail``), or None."""
    if len(password) < MIN_LENGTH:
        return f"the password must have at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"the password must have at most {MAX_LENGTH} characters"
    low = password.lower()
    name = username.lower()
    if len(set(low)) < 4:
        return "the password repeats too few characters"
    if low.isdigit():
        return "the password is only digits (a phone number or a date is easy to guess)"
    if len(name) >= 3 and (name in low or name in low.translate(_LEET)):
        return "the password must not contain the user name"
    common = common_passwords()
    if low in common:
        return "this password is one of the most common passwords"
    core = _EDGES.sub("", low.translate(_LEET))
    if len(core) >= 4 and (core in common or _EDGES.sub("", low) in common):
        return "this password is a common password with digits or symbols added"
    return None
