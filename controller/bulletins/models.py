"""Tables of bulletins: audio assets, bulletins, pronunciation entries, what was spoken."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, UniqueConstraint
from sqlalchemy import text as sql_text
from sqlmodel import Field, SQLModel

from controller.core.columns import ms_column


class AudioAsset(SQLModel, table=True):
    """Rendered audio in node format: its bytes in the audio store (controller/core/audiostore.py),
    by ``sha256``; ``path`` is where a controller's local cache keeps the file."""

    sha256: str = Field(primary_key=True, max_length=64)
    size: int
    duration_ms: int
    codec: str = Field(max_length=16)
    sample_rate: int
    bitrate_kbps: int
    engine: str = Field(max_length=64)
    voice: str = Field(max_length=64)
    path: str = Field(max_length=500)
    created_at: int = ms_column(nullable=False)


class Bulletin(SQLModel, table=True):
    """A text bulletin (bản tin) and the audio rendered from it."""

    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(max_length=200)
    text: str
    voice: str = Field(max_length=64)
    priority: str = Field(default="normal", max_length=16)
    audio_sha256: str | None = Field(default=None, foreign_key="audioasset.sha256")
    created_by: str = Field(default="", max_length=100)
    created_at: int = ms_column(nullable=False)
    # what staff must know about the speech (fallback to another engine, unreadable text); 0002
    warnings: list[str] = Field(default_factory=list,
                                sa_column=Column(JSON, nullable=False, server_default=sql_text("'[]'")))
    # approval (0005): draft → submitted → approved | rejected
    approval: str = Field(default="approved", max_length=16)
    org_unit_id: str | None = Field(default=None, max_length=63)
    submitted_at: int | None = Field(default=None, sa_column=Column(BigInteger))
    decided_by: str = Field(default="", max_length=100)
    decided_at: int | None = Field(default=None, sa_column=Column(BigInteger))
    decision_note: str = Field(default="", max_length=500)
    # what the approver approved (0009): the audio's sha256 and the spoken text shown to them;
    # only this audio airs (controller/bulletins/binding.py). ``pending_reason``: why it needs approval again
    approved_sha256: str | None = Field(default=None, max_length=64)
    approved_spoken_text: str | None = None
    pending_reason: str = Field(default="", max_length=500)


# --------------------------------------------------------------------------- speech (0002)


class PronunciationEntry(SQLModel, table=True):
    """A pronunciation dictionary entry of an org unit: a written term and how it is read aloud.

    Applied (whole word, case-insensitive) before normalisation to the bulletins of that org unit
    and of every unit below it; a lower unit's entry for the same term wins
    (controller/bulletins/dictionary.py).
    ``org_unit_id`` None: the top of the tree (every ward). ``term_key`` is the case-folded
    term, unique per org unit (0009).
    """

    __table_args__ = (UniqueConstraint("org_unit_id", "term_key", name="uq_pronunciation_org_term"),)
    id: int | None = Field(default=None, primary_key=True)
    org_unit_id: str | None = Field(default=None, max_length=63, index=True)
    term: str = Field(max_length=100)
    term_key: str = Field(max_length=100)
    spoken: str = Field(max_length=300)
    note: str = Field(default="", max_length=200)
    created_by: str = Field(default="", max_length=100)
    created_at: int = ms_column(nullable=False)


class BulletinSpeech(SQLModel, table=True):
    """How a bulletin was read: the spoken (normalised) text and the engine actually used."""

    bulletin_id: int = Field(foreign_key="bulletin.id", primary_key=True, ondelete="CASCADE")
    spoken_text: str
    requested_engine: str = Field(max_length=64)
    engine: str = Field(max_length=64)
    voice: str = Field(max_length=64)
    dictionary_hits: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    speed: float | None = None  # the speed it was rendered at (0009; None: the ward's default)


class AudioItem(SQLModel, table=True):
    """An item of the ward's audio library (0014): an uploaded or recorded file, prepared in the
    node format, reused as the audio of any number of bulletins."""

    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(max_length=200)
    audio_sha256: str = Field(foreign_key="audioasset.sha256", max_length=64)
    duration_ms: int
    source_format: str = Field(default="", max_length=16)
    org_unit_id: str | None = Field(default=None, max_length=63, index=True)
    created_by: str = Field(default="", max_length=100)
    created_at: int = ms_column(nullable=False)
