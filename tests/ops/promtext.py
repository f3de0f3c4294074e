"""A strict reader of the Prometheus text format (0.0.4) for the tests: every line must parse,
each family is declared (HELP, TYPE) before its samples, histogram buckets only grow."""

from __future__ import annotations

import math
import re

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')

Key = tuple[str, frozenset[tuple[str, str]]]


def _labels(text: str) -> frozenset[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        m = _LABEL.match(text, pos)
        assert m, f"bad labels: {text!r}"
        out.append((m.group(1), m.group(2)))
        pos = m.end()
    return frozenset(out)


def parse(body: str) -> dict[Key, float]:
    samples: dict[Key, float] = {}
    types: dict[str, str] = {}
    assert body.endswith("\n")
    for line in body.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("gauge", "counter", "histogram"), line
            assert name not in types, f"{name} declared twice"
            types[name] = kind
            continue
        m = _SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        name = m.group(1)
        family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in types else name
        assert family in types, f"{name} has no TYPE before it"
        key = (name, _labels(m.group(3) or ""))
        assert key not in samples, f"{line!r} twice"
        samples[key] = float(m.group(4).replace("+Inf", "inf"))
    for name, kind in types.items():
        if kind == "histogram":
            _check_histogram(name, samples)
    return samples


def _check_histogram(name: str, samples: dict[Key, float]) -> None:
    series: dict[frozenset[tuple[str, str]], list[tuple[float, float]]] = {}
    for (n, labels), v in samples.items():
        if n == f"{name}_bucket":
            le = dict(labels)["le"]
            rest = frozenset((k, x) for k, x in labels if k != "le")
            series.setdefault(rest, []).append((float(le.replace("+Inf", "inf")), v))
    for rest, buckets in series.items():
        buckets.sort()
        counts = [c for _, c in buckets]
        assert counts == sorted(counts), f"{name} buckets must only grow: {buckets}"
        assert math.isinf(buckets[-1][0]) and buckets[-1][1] == samples[(f"{name}_count", rest)]


def value(samples: dict[Key, float], name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]
