"""Ward time: the one timezone of every schedule (Asia/Ho_Chi_Minh, UTC+7, no DST) and epoch ms."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

TIMEZONE = ZoneInfo("Asia/Ho_Chi_Minh")


def local(ms: int) -> datetime:
    """Epoch milliseconds → an aware datetime in ward time."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone(TIMEZONE)


def epoch_ms(t: datetime) -> int:
    """An aware datetime → epoch milliseconds."""
    return int(t.timestamp() * 1000)
