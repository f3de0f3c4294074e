"""What happened to a broadcast, in one line staff can read: its summary state and text.

A broadcast's ``status`` says where the controller stands (``active`` until every unit is
final); the summary says what the ward heard: "Đã phát xong ở 4/5 cụm loa, 1 cụm mất kết nối — sẽ
phát khi kết nối lại đến 09:04" / "Aired on 4/5 units, 1 offline — they play when they reconnect,
until 09:04". It is computed from the
broadcast row, its delivery rows and presence (a unit whose delivery is still ``sent`` but which
is offline now is *waiting*, not *on its way*), for the API (``summary`` of
``GET /api/broadcasts`` and ``/{id}``) and the delivery view (docs/airing.md, *What staff see*).

Summary states:

* ``scheduled`` / ``sending``: not on air yet;
* ``ready``: the audio is out ahead of a future ``play_at`` and nothing sounds yet;
* ``airing``: some online unit is still on its way (receiving, ready to start, playing);
* ``waiting``: nothing is on its way any more except units that are offline; they get it if they
  come back before ``waiting_until`` (the broadcast's expiry), or an operator ends the waiting
  (``POST /api/broadcasts/{id}/end-waiting``: reason :data:`ENDED_BY_OPERATOR`);
* ``aired`` (every unit played), ``partly_aired`` (some did), ``not_aired`` (none did),
  ``cancelled``, ``failed``: finished.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from controller.airing.models import Broadcast, BroadcastStatus, DeliveryState
from scheduler import TIMEZONE

S = DeliveryState
B = BroadcastStatus

#: the reason of a delivery an operator stopped waiting for (its state ``cancelled``)
ENDED_BY_OPERATOR = "ended_by_operator"

GROUPS = ("played", "playing", "ready", "receiving", "waiting_offline", "ended_by_operator", "not_played")
_ON_THE_WAY = ("playing", "ready", "receiving")

_HEAD = {  # summary state → (Vietnamese, English)
    "scheduled": ("Chờ đến giờ phát", "Scheduled for"),
    "sending": ("Đang gửi", "Sending"),
    "ready": ("Chờ đến giờ phát", "Due at"),
    "airing": ("Đang phát", "Airing"),
    "aired": ("Đã phát xong", "Aired"),
    "partly_aired": ("Đã phát xong một phần", "Partly aired"),
    "not_aired": ("Không phát được", "Not aired"),
    "cancelled": ("Đã hủy", "Cancelled"),
    "failed": ("Lỗi, không gửi được", "Failed"),
}
_PART = {  # group → (Vietnamese, English) with {n} (and {until} for the waiting ones)
    "played": ("{n} loa đã phát", "{n} played"),
    "playing": ("{n} loa đang phát", "{n} playing"),
    "ready": ("{n} loa đã nhận, chờ phát", "{n} ready to play"),
    "receiving": ("{n} loa đang nhận", "{n} receiving"),
    "waiting_offline": ("{n} loa đang chờ (mất kết nối) đến {until}", "{n} waiting offline until {until}"),
    "ended_by_operator": ("{n} loa thôi chờ (người vận hành kết thúc)",
                          "{n} no longer waited for (ended by an operator)"),
    "not_played": ("{n} loa không phát được", "{n} not played"),
}


@dataclass(frozen=True)
class DeliveryRow:
    """One unit's delivery as the summary needs it."""

    node_id: str
    state: str
    reason: str = ""


@dataclass
class Summary:
    state: str
    counts: dict[str, int]  # per delivery state (every state, zeros included)
    groups: dict[str, int]  # per group of GROUPS
    waiting_until: int | None  # epoch ms: the expiry the offline units are waited for until
    text_vi: str
    text_en: str
    waiting_nodes: list[str] = field(default_factory=list)


def online_from(status: Callable[[str], str]) -> Callable[[str], bool]:
    """The ``online`` of :func:`summarize` from presence's ``status(node_id)``: a unit is taken as
    offline only when presence knows it is (``offline``, ``shutdown``); while nothing is known
    (``unknown``: no broker link, or never heard since the start) the delivery row says."""
    return lambda node_id: status(node_id) not in ("offline", "shutdown")


def group_of(row: DeliveryRow, online: Callable[[str], bool]) -> str:
    """Which of :data:`GROUPS` a delivery is in now."""
    st = S(row.state)
    if st == S.PLAYED:
        return "played"
    if st.final:
        return "ended_by_operator" if row.reason == ENDED_BY_OPERATOR else "not_played"
    if st == S.OFFLINE or not online(row.node_id):
        return "waiting_offline"
    return {S.PLAYING: "playing", S.VERIFIED: "ready"}.get(st, "receiving")


def clock(ms: int, now_ms: int) -> str:
    """``HH:MM`` ward time, with ``dd/mm`` when it is not today."""
    at = datetime.fromtimestamp(ms / 1000, tz=TIMEZONE)
    today = datetime.fromtimestamp(now_ms / 1000, tz=TIMEZONE).date()
    return at.strftime("%H:%M") if at.date() == today else at.strftime("%H:%M %d/%m")


def _state(bc: Broadcast, groups: dict[str, int], now_ms: int) -> str:
    if bc.status in (B.SCHEDULED.value, B.SENDING.value, B.CANCELLED.value, B.FAILED.value):
        return bc.status
    if (bc.status == B.ACTIVE.value and bc.play_at is not None and now_ms < bc.play_at
            and not groups["played"] and not groups["playing"]):
        return "ready"
    if any(groups[g] for g in _ON_THE_WAY):
        return "airing"
    if groups["waiting_offline"]:
        return "waiting"
    if groups["played"] and groups["played"] == sum(groups.values()):
        return "aired"
    return "partly_aired" if groups["played"] else "not_aired"


def summarize(bc: Broadcast, rows: Iterable[DeliveryRow], online: Callable[[str], bool],
              now_ms: int) -> Summary:
    """The summary of ``bc`` with its delivery ``rows``; ``online(node_id)`` is presence's answer."""
    counts = {st.value: 0 for st in S}
    groups = dict.fromkeys(GROUPS, 0)
    waiting: list[str] = []
    for row in rows:
        counts[row.state] = counts.get(row.state, 0) + 1
        g = group_of(row, online)
        groups[g] += 1
        if g == "waiting_offline":
            waiting.append(row.node_id)
    state = _state(bc, groups, now_ms)
    until = bc.expires_at if waiting and state not in ("cancelled", "failed") else None
    at = clock(until, now_ms) if until is not None else ""
    head = _HEAD.get(state, ("", ""))  # "waiting" has a sentence of its own
    if state in ("scheduled", "ready"):
        when = clock(bc.play_at or bc.air_at, now_ms)
        head = (f"{head[0]} {when}", f"{head[1]} {when}")
        if state == "scheduled":
            return Summary(state, counts, groups, None, head[0], head[1])
    if state == "waiting":
        texts = _waiting_texts(groups, at)
    else:
        texts = []
        for lang in (0, 1):
            parts = [_PART[g][lang].format(n=n, until=at) for g, n in groups.items() if n]
            texts.append(f"{head[lang]}: {', '.join(parts)}" if parts else head[lang])
    return Summary(state, counts, groups, until, texts[0], texts[1], sorted(waiting))


def _waiting_texts(groups: dict[str, int], at: str) -> list[str]:
    """The ``waiting`` line (issue 14): "Đã phát xong ở 4/5 cụm loa, 1 cụm mất kết nối — sẽ phát
    khi kết nối lại đến 09:04", then those that will not play ("; 1 cụm không phát được")."""
    total, played, off = sum(groups.values()), groups["played"], groups["waiting_offline"]
    head = ((f"Đã phát xong ở {played}/{total} cụm loa", f"Aired on {played}/{total} units") if played
            else (f"Chưa phát ở cụm loa nào (0/{total})", f"Not aired on any unit yet (0/{total})"))
    texts = [f"{head[0]}, {off} cụm mất kết nối — sẽ phát khi kết nối lại đến {at}",
             f"{head[1]}, {off} offline — they play when they reconnect, until {at}"]
    for lang in (0, 1):
        rest = [_REST[g][lang].format(n=n) for g in _REST if (n := groups[g])]
        if rest:
            texts[lang] += "; " + ", ".join(rest)
    return texts


_REST = {"not_played": ("{n} cụm không phát được", "{n} not played"),
         "ended_by_operator": ("{n} cụm thôi chờ", "{n} no longer waited for")}
