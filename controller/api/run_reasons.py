"""A stable code (and its numbers) beside the English ``reason`` of a schedule's run (issue 14).

The scheduler and the airer write each run's reason in English for logs and scripts
(scheduler/firing.py, controller/schedules/airer.py, the airing rules). The schedules page shows
a sentence in the user's language instead: ``runr_<code>`` in controller/ui/i18n_phone.py, with
``{name}`` filled from ``reason_args``. A reason no pattern knows gets code ``other`` (the page
says "see the log" rather than showing English on a Vietnamese screen)."""

from __future__ import annotations

import re

from controller.api.error_codes import code_for

_PARTIAL = re.compile(r"^(?P<msg>.*) \((?P<made>\d+) of (?P<total>\d+) aired\)$", re.S)

#: (pattern of the English reason, code); first match wins. Codes never change once given.
PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(p, re.I | re.S), c) for p, c in (
    (r"^(?P<day>\d{4}-\d{2}-\d{2}) is an exception date", "exception_day"),
    (r"^no controller fired the slot .* found (?P<late>\d+) s late, beyond the (?P<grace>\d+) s grace",
     "missed_late"),
    (r"^relay joined (?P<late>[\d.]+) s after its slot", "relay_late"),
    (r"^aired (?P<late>[\d.]+) s after its slot", "aired_late"),
    (r"^the controller stopped while creating the broadcasts \((?P<made>\d+) created", "stopped_midway"),
    (r"set to air as an emergency by (?P<user>\S+), who", "bypass_lapsed"),
    (r"^bulletin \S+ was rejected", "rejected"),
    (r"^bulletin \S+ is (?P<approval>\w+); it can air only once approved", "not_approved"),
    (r"needs approval again", "needs_reapproval"),
    (r"no such file|audio .* (missing|not found)", "audio_missing"),
))


def run_reason(reason: str) -> tuple[str | None, dict[str, str]]:
    """``(code, args)`` for a run's English reason; ``(None, {})`` when there is none.

    A failure after some broadcasts were made ("… (2 of 3 aired)") carries ``made`` and
    ``total`` beside the code of its cause."""
    if not reason:
        return None, {}
    args: dict[str, str] = {}
    if (m := _PARTIAL.match(reason)) is not None:
        reason, args = m["msg"], {"made": m["made"], "total": m["total"]}
    for pattern, code in PATTERNS:
        if (m := pattern.search(reason)) is not None:
            return code, {**args, **{k: v for k, v in m.groupdict().items() if v is not None}}
    if (err := code_for(reason)) is not None:
        return "err_" + err, args
    return "other", {}  # the English page shows the reason itself, the Vietnamese one a pointer to the log
