"""``loaphuong backup FILE`` and ``loaphuong restore FILE [--force]`` (controller/core/backup.py).

The database is the one the controller would use (``--database-url``, ``DATABASE_URL``,
``LOAPHUONG_DATABASE_URL``, else the SQLite file in ``--data-dir``); the audio directory is the
data directory's. A refusal is printed in Vietnamese then English, with exit status 2."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from controller.cli.db_args import add_database_args, settings_from
from controller.core.backup import BackupError, Summary, backup
from controller.core.db import make_engine
from controller.core.restore import restore

logger = logging.getLogger(__name__)


def _parser(cmd: str) -> argparse.ArgumentParser:
    what = ("write the database's rows and the audio to a portable archive (.tar.gz)" if cmd == "backup" else
            "restore an archive into an EMPTY database (and the audio into the data directory)")
    ap = argparse.ArgumentParser(prog=f"loaphuong {cmd}", description=what)
    ap.add_argument("file", help="the archive to write" if cmd == "backup" else "the archive to read")
    add_database_args(ap, "the controller's data directory (SQLite, audio)")
    if cmd == "restore":
        ap.add_argument("--force", action="store_true",
                        help="restore even into a database that holds data: DELETES all of it first")
    return ap


def _report(cmd: str, path: str, s: Summary) -> None:
    verb = "đã sao lưu / backed up" if cmd == "backup" else "đã khôi phục / restored"
    sys.stderr.write(f"{path}: {verb} {sum(s.tables.values())} rows in {len(s.tables)} tables, "
                     f"{s.audio_files} audio files, schema {s.revision} ({s.seconds:.1f} s)\n")


def main(cmd: str, argv: list[str]) -> int:
    args = _parser(cmd).parse_args(argv)
    settings = settings_from(args)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.db_url)
    try:
        if cmd == "backup":
            summary = backup(engine, settings.audio_dir, Path(args.file))
        else:
            summary = restore(engine, Path(args.file), settings.audio_dir, force=args.force)
    except BackupError as exc:
        sys.stderr.write(f"lỗi / error [{exc.code}]: {exc.vi}\n  {exc.en}\n")
        return 2
    finally:
        engine.dispose()
    _report(cmd, args.file, summary)
    return 0
