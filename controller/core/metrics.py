"""The Prometheus text exposition format (version 0.0.4), written by hand, and a histogram.

Everything ``GET /metrics`` shows is read at scrape time from the services that already keep it
(counts in the database, the presence registry, the writer's queue, the broker link's counters);
only latencies need a store of their own, :class:`Histogram`. A few dozen lines here instead of
``prometheus_client``: its process-wide registry and collector classes would have to wrap those
same reads, and a controller per process in the tests would share that registry.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

#: The media type a Prometheus server asks for and gets.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: Latency buckets (seconds): a LAN answers in milliseconds, a 4G unit in tenths, a bad link in seconds.
LATENCY_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

Labels = Mapping[str, str]


class Histogram:
    """Cumulative counts of observations per upper bound (``le``), their sum and count."""

    def __init__(self, buckets: Sequence[float] = LATENCY_BUCKETS) -> None:
        if list(buckets) != sorted(buckets) or not buckets:
            raise ValueError("histogram buckets must be given in increasing order")
        self.buckets = tuple(buckets)
        self._counts = [0] * len(self.buckets)  # per bucket, not cumulative; +Inf is the count
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        if math.isnan(value):
            return
        self.count += 1
        self.sum += value
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self._counts[i] += 1
                break

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations at most that), ending with (+Inf, count)."""
        out, total = [], 0
        for bound, n in zip(self.buckets, self._counts, strict=True):
            total += n
            out.append((bound, total))
        out.append((math.inf, self.count))
        return out


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return str(int(value)) if float(value).is_integer() and abs(value) < 2**53 else repr(float(value))


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape_label(str(v))}"' for k, v in labels.items()) + "}"


@dataclass(frozen=True)
class Sample:
    labels: Labels
    value: float


class Exposition:
    """Metric families in the order added, rendered as one text document."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._names: set[str] = set()

    def _family(self, name: str, kind: str, help_text: str) -> None:
        if name in self._names:
            raise ValueError(f"metric {name} added twice")
        self._names.add(name)
        self._lines.append(f"# HELP {name} {help_text.replace(chr(92), chr(92) * 2).replace(chr(10), ' ')}")
        self._lines.append(f"# TYPE {name} {kind}")

    def gauge(self, name: str, help_text: str, samples: Iterable[Sample] | float) -> None:
        self._simple(name, "gauge", help_text, samples)

    def counter(self, name: str, help_text: str, samples: Iterable[Sample] | float) -> None:
        """A counter: ``name`` should end in ``_total``."""
        self._simple(name, "counter", help_text, samples)

    def _simple(self, name: str, kind: str, help_text: str, samples: Iterable[Sample] | float) -> None:
        self._family(name, kind, help_text)
        if isinstance(samples, int | float):
            samples = [Sample({}, samples)]
        for s in samples:
            self._lines.append(f"{name}{_labels(s.labels)} {_number(s.value)}")

    def histogram(self, name: str, help_text: str, series: Iterable[tuple[Labels, Histogram]]) -> None:
        self._family(name, "histogram", help_text)
        for labels, h in series:
            for bound, n in h.cumulative():
                self._lines.append(f"{name}_bucket{_labels({**labels, 'le': _number(bound)})} {n}")
            self._lines.append(f"{name}_sum{_labels(labels)} {_number(h.sum)}")
            self._lines.append(f"{name}_count{_labels(labels)} {h.count}")

    def render(self) -> str:
        return "\n".join(self._lines) + "\n"
