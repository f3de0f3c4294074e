"""`loaphuong normalize` and `loaphuong say`."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from controller.bulletins.models import PronunciationEntry
from controller.cli.loaphuong import main
from controller.core.db import Database
from tts.audio import decode


def test_normalize_prints_the_spoken_form(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["normalize", "Họp lúc 7h30 ngày 22/11, 105 hộ", "--data-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out == ("Họp lúc bảy giờ ba mươi phút ngày hai mươi hai tháng mười một, "
                                       "một trăm linh năm hộ\n")
    assert main(["normalize", "105 hộ", "--dialect", "south", "--no-dictionary"]) == 0
    assert capsys.readouterr().out == "một trăm lẻ năm hộ\n"
    assert main(["normalize", "105 hộ", "--voice", "vi-vn-x-south", "--data-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out == "một trăm lẻ năm hộ\n"


def test_normalize_reads_stdin_and_warns(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("Thong bao: sang mai phuong to chuc tiem phong\n"))
    assert main(["normalize", "-", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr()
    assert out.out == "Thong bao: sang mai phuong to chuc tiem phong\n"
    assert out.err.startswith("warning: The text looks like Vietnamese typed without diacritics")
    assert main(["normalize", "🔥🔥", "--data-dir", str(tmp_path)]) == 1


def top_level_entry(data_dir: Path, term: str, spoken: str) -> None:
    """A dictionary entry of the top of the org tree in the data directory's SQLite database."""
    db = Database(f"sqlite:///{data_dir / 'loaphuong.db'}")
    db.migrate()
    with db.session() as s:
        s.add(PronunciationEntry(term=term, term_key=term.lower(), spoken=spoken))
        s.commit()
    db.dispose()


def test_normalize_uses_the_ward_dictionary(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    top_level_entry(tmp_path, "Kẻ Sặt", "Kẻ Sặt")
    assert main(["normalize", "thôn kẻ sặt", "--data-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out == "thôn Kẻ Sặt\n"
    assert main(["normalize", "thôn kẻ sặt", "--data-dir", str(tmp_path), "--no-dictionary"]) == 0
    assert capsys.readouterr().out == "thôn kẻ sặt\n"


def test_say_writes_audio(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "ban-tin.mp3"
    assert main(["say", "Thông báo: 7h30 họp tổ dân phố", "-o", str(out), "--data-dir", str(tmp_path)]) == 0
    assert out.read_bytes()[:1] == b"\xff" and len(decode(out.read_bytes())) > 1000
    assert "espeak-ng/vi" in capsys.readouterr().err
    opus = tmp_path / "x.opus"
    assert main(["say", "Xin chào", "-o", str(opus), "--data-dir", str(tmp_path), "--repeat", "2"]) == 0
    assert opus.read_bytes()[:4] == b"OggS"
    assert main(["say", "!!!", "-o", str(tmp_path / "y.mp3"), "--data-dir", str(tmp_path)]) == 2
    assert "nothing to read aloud" in capsys.readouterr().err and not (tmp_path / "y.mp3").exists()


def test_normalize_explains_each_span(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["normalize", "Sáng mai 24/11, kết nối đến 9/9 xã", "--no-dictionary", "--explain"]) == 0
    out = capsys.readouterr()
    assert out.out == "Sáng mai ngày hai mươi tư tháng mười một, kết nối đến chín trên chín xã\n"
    assert "day and month: '24/11' → 'ngày hai mươi tư tháng mười một'" in out.err
    assert "ratio or fraction: '9/9' → 'chín trên chín'" in out.err


def test_normalize_explains_the_dictionary_first(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    top_level_entry(tmp_path, "QL1A", "quốc lộ một A")
    assert main(["normalize", "QL1A ngày 2/9", "--data-dir", str(tmp_path), "--explain"]) == 0
    out = capsys.readouterr()
    assert out.out == "quốc lộ một A ngày hai tháng chín\n"
    assert out.err.splitlines()[0] == "ward dictionary: 'QL1A' → 'quốc lộ một A'"


def test_quick_path_reads_as_the_full_path(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the settings (quick) and with them (an HTTP engine configured): same dictionary, dialect."""
    top_level_entry(tmp_path, "Kẻ Sặt", "Kẻ Sặt")
    args = ["normalize", "thôn kẻ sặt có 105 hộ", "--data-dir", str(tmp_path), "--voice", "vi-vn-x-south"]
    assert main(args) == 0
    quick = capsys.readouterr().out
    monkeypatch.setenv("LOAPHUONG_TTS__HTTP_ENGINES", "[]")
    assert main(args) == 0
    assert capsys.readouterr().out == quick == "thôn Kẻ Sặt có một trăm lẻ năm hộ\n"


def test_normalize_imports_neither_controller_nor_engines() -> None:
    """What makes `loaphuong normalize` start fast (< 0.5 s): it imports only tts.vi and sqlite3."""
    code = ("import sys; from controller.cli import main; "
            "main(['normalize', 'ngày 2/9', '--no-dictionary']); "
            "print(sorted(m for m in ('controller.settings', 'sqlalchemy', 'tts.render', 'tts.audio', "
            "'pydantic', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.splitlines() == ["ngày hai tháng chín", "[]"]
