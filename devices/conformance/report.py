"""Results of the conformance kit: one :class:`Result` per contract item, printed and as JSON."""

from __future__ import annotations

import enum
import json
from dataclasses import asdict, dataclass, field
from typing import Any


class Status(enum.StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    NOT_TESTED = "NOT TESTED"


@dataclass
class Result:
    """One contract item: its id, the docs/protocol.md section it checks, the verdict and why."""

    item: str
    section: str
    title: str
    status: Status = Status.NOT_TESTED
    evidence: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def note(self, line: str) -> None:
        self.evidence.append(line)

    def passed(self, line: str = "") -> Result:
        if line:
            self.note(line)
        self.status = Status.PASS
        return self

    def failed(self, line: str) -> Result:
        self.note(line)
        self.status = Status.FAIL
        return self

    def not_tested(self, line: str) -> Result:
        self.note(line)
        self.status = Status.NOT_TESTED
        return self


@dataclass
class Report:
    """Everything one run found, in the order the items ran."""

    unit: str
    broker: str
    prefix: str
    started_ms: int
    results: list[Result] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out = {s.value: 0 for s in Status}
        for r in self.results:
            out[r.status.value] += 1
        return out

    @property
    def ok(self) -> bool:
        """No item failed (items not tested do not fail the run; the report lists them)."""
        return all(r.status is not Status.FAIL for r in self.results)

    def to_json(self) -> dict[str, Any]:
        return {
            "kit": "loaphuong conformance", "protocol": 1, "unit": self.unit, "broker": self.broker,
            "prefix": self.prefix, "started_ms": self.started_ms, "counts": self.counts(), "ok": self.ok,
            "items": [asdict(r) | {"status": r.status.value} for r in self.results],
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), ensure_ascii=False, indent=2)


def render(result: Result) -> str:
    """``PASS  heartbeat  §1 heartbeat  ...`` and the evidence indented below."""
    head = f"{result.status.value:<10} {result.item:<22} {result.section}  ({result.seconds:.1f} s)"
    return "\n".join([head, *(f"    {line}" for line in result.evidence)])


def summary(report: Report) -> str:
    c = report.counts()
    return (f"{report.unit}: {c['PASS']} PASS, {c['FAIL']} FAIL, {c['NOT TESTED']} NOT TESTED"
            f" -> {'conforms to what was tested' if report.ok else 'does NOT conform'}")
