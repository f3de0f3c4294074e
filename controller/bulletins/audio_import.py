"""At start, the audio files this controller has that the audio store lacks are put in.

Migration 0013 imports the files of the controller that migrates the database; another
controller that rendered bulletins before the upgrade holds files nobody else has. Each
controller's start therefore puts in the audio of every ``audioasset`` row the store lacks whose
file is in its own audio directory (the store's cache: the same ``<sha[:2]>/<sha>.<codec>``
layout). Rows whose file is elsewhere are left for the controller that has it; a damaged file
(wrong SHA-256) is logged and skipped.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlmodel import col, select

from controller.bulletins.models import AudioAsset
from controller.core.audiostore import AudioStore, AudioStoreError
from controller.core.db import Database
from controller.core.models import AudioBlob

logger = logging.getLogger(__name__)


def missing_assets(db: Database) -> list[AudioAsset]:
    """The audio assets whose bytes are not in the store."""
    with db.session() as s:
        q = select(AudioAsset).outerjoin(AudioBlob, col(AudioBlob.sha256) == col(AudioAsset.sha256)).where(
            col(AudioBlob.sha256).is_(None))
        return list(s.exec(q).all())


def import_local_audio(db: Database, store: AudioStore, audio_dir: Path) -> int:
    """Put in the store the missing assets' files found under ``audio_dir``; returns how many."""
    done = 0
    lacking = missing_assets(db)
    for asset in lacking:
        path = audio_dir / asset.path
        try:
            data = path.read_bytes()
        except OSError:
            continue  # another controller's audio: its own start puts it in
        try:
            store.put(data, sha256=asset.sha256, codec=asset.codec, duration_ms=asset.duration_ms)
        except AudioStoreError as exc:
            logger.error("audio file %s not put in the audio store: %s", path, exc)
            continue
        done += 1
    if lacking:
        logger.log(logging.WARNING if done < len(lacking) else logging.INFO,
                   "audio store: %d of %d audio assets it lacked put in from %s%s", done, len(lacking),
                   audio_dir, "" if done == len(lacking) else " (the rest are on other controllers, or lost)")
    return done
