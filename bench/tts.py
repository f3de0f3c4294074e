"""Speech benchmark: real-time factor per engine and voice, pipeline cost, cache hits.

    python bench/tts.py            # default: 3 repetitions
    python bench/tts.py --quick    # 1 repetition (what the test suite runs)

Real-time factor (RTF) = seconds of work / seconds of audio (lower is faster; 0.01 = 100×
real time). Measured in the same run, as baselines: the engine alone (``synth_rtf``) against
the whole render (normalise, synthesise, finish, encode: ``render_rtf``), and a cache miss
against a cache hit. gTTS and the HTTP engine cannot reach their services from a machine
without internet: they are measured against a local fake service answering at once, so
their figures are this client's own overhead only (``fake_service: true``).

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.tts.fakes import FakeServer, Reply, google_reply, tone_mp3  # noqa: E402
from tts import HttpEngine, HttpEngineConfig, get_engine, normalize, register_engine, render  # noqa: E402
from tts.gtts_engine import GttsEngine  # noqa: E402
from tts.http import RetryPolicy  # noqa: E402
from tts.vi import clean_unicode  # noqa: E402
from tts.vi.wording import join_lines, tidy  # noqa: E402

logger = logging.getLogger("bench.tts")

BULLETIN = (
    "Thông báo của UBND phường Ngô Quyền: Thực hiện Kế hoạch số 125/KH-UBND ngày 15/11/2026, "
    "từ 7h30 đến 11h00 ngày 22/11/2026 (Chủ nhật), phường tổ chức tiêm vắc xin cho trẻ em từ 6-59 tháng "
    "tuổi tại nhà văn hóa TDP số 3. Năm 2026 tỷ lệ tiêm chủng đạt 99,3%, 18/18 tổ dân phố hoàn thành "
    "chỉ tiêu; 6.665 người đã có thẻ BHYT. Đề nghị các gia đình đưa trẻ đến đúng giờ, mang theo sổ tiêm "
    "chủng. Mọi thắc mắc xin liên hệ trạm y tế phường, số điện thoại 0912.345.678."
)


def best(fn: Callable[[], Any], reps: int) -> tuple[float, Any]:
    """Fastest of ``reps`` runs (seconds) and the last result."""
    times: list[float] = []
    result: Any = None
    for _ in range(reps):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return min(times), result


def bench_espeak(reps: int, cache_dir: Path) -> dict[str, Any]:
    engine = get_engine("espeak-ng")
    out: dict[str, Any] = {}
    for voice in engine.voices:
        spoken = normalize(BULLETIN, dialect=engine.accent(voice)).text
        synth_s, seg = best(partial(engine.synthesize, spoken, voice=voice, speed=1.0), reps)
        render_s, audio = best(partial(render, BULLETIN, voice=voice), reps)
        seconds = audio.duration_ms / 1000
        out[voice] = {
            "audio_s": round(seconds, 2),
            "synth_rtf": round(synth_s / (len(seg) / 1000), 4),
            "render_rtf": round(render_s / seconds, 4),
        }
        logger.info(
            "espeak-ng %-16s %.1f s audio: synth RTF %.4f, render RTF %.4f",
            voice,
            seconds,
            out[voice]["synth_rtf"],
            out[voice]["render_rtf"],
        )
    miss_s, _ = best(lambda: render(BULLETIN, cache_dir=cache_dir / f"miss{time.perf_counter_ns()}"), reps)
    render(BULLETIN, cache_dir=cache_dir / "hit")
    hit_s, hit = best(lambda: render(BULLETIN, cache_dir=cache_dir / "hit"), max(reps, 5))
    assert hit.cached
    out["cache"] = {"miss_s": round(miss_s, 4), "hit_s": round(hit_s, 5), "speedup": round(miss_s / hit_s, 1)}
    logger.info("cache: miss %.3f s, hit %.4f s (%.0f×)", miss_s, hit_s, miss_s / hit_s)
    return out


def bench_online(reps: int) -> dict[str, Any]:
    mp3 = tone_mp3(2500)  # what each request gets back (2.5 s of audio)
    out: dict[str, Any] = {}
    with FakeServer(lambda _: google_reply(mp3)) as fake:
        register_engine(
            GttsEngine(base_url=fake.url, policy=RetryPolicy(retries=0), pause_s=0.0), replace=True
        )
        s, audio = best(lambda: render(BULLETIN, engine="gtts"), reps)
        out["gtts"] = {
            "fake_service": True,
            "requests": len(fake.received) // reps,
            "render_rtf": round(s / (audio.duration_ms / 1000), 4),
            "audio_s": audio.duration_ms / 1000,
        }
    register_engine(GttsEngine(), replace=True)
    with FakeServer(lambda _: Reply(200, mp3, {"Content-Type": "audio/mpeg"})) as fake:
        cfg = HttpEngineConfig(
            name="bench-http",
            url=fake.url,
            voices={"a": "north"},  # type: ignore[call-arg]
            max_chars=500,
        )
        register_engine(HttpEngine(cfg), replace=True)
        s, audio = best(lambda: render(BULLETIN, engine="bench-http", voice="a"), reps)
        out["http"] = {
            "fake_service": True,
            "requests": len(fake.received) // reps,
            "render_rtf": round(s / (audio.duration_ms / 1000), 4),
            "audio_s": audio.duration_ms / 1000,
        }
    for name in ("gtts", "http"):
        logger.info(
            "%s (fake service): %d requests, render RTF %.4f",
            name,
            out[name]["requests"],
            out[name]["render_rtf"],
        )
    return out


def _corpus(unseen: bool = False) -> list[tuple[str, str]]:
    """The tuned and held-out corpus, or (``unseen``) the evaluation set never tuned on."""
    folder = ROOT / "tests" / "tts" / "corpus"
    paths = sorted((folder / "unseen").rglob("*.tsv")) if unseen else [
        p for p in sorted(folder.rglob("*.tsv")) if "unseen" not in p.relative_to(folder).parts]
    rows = []
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.startswith("#"):
                written, spoken = line.split("\t")
                rows.append((written, spoken))
    return rows


def bench_normalize(reps: int) -> dict[str, Any]:
    """Throughput on the bulletin and on the real-sentence corpus (number-dense), against a
    baseline measured in the same run: the clean-up every text costs (Unicode, lines, tidy)."""
    text = BULLETIN * 10
    s, _ = best(lambda: normalize(text), reps)
    corpus = _corpus()
    joined = "\n".join(w for w, _ in corpus)
    cs, _ = best(lambda: [normalize(w) for w, _ in corpus], reps)
    floor, _ = best(lambda: tidy(join_lines(clean_unicode(joined))), reps)
    exact = sum(normalize(w).text == spoken for w, spoken in corpus)
    unseen = _corpus(unseen=True)
    unseen_exact = sum(normalize(w).text == spoken for w, spoken in unseen)
    logger.info("normalise: %d chars in %.4f s; corpus %d sentences (%d chars) in %.4f s, %d as expected",
                len(text), s, len(corpus), len(joined), cs, exact)
    return {"chars": len(text), "seconds": round(s, 4), "chars_per_s": round(len(text) / s),
            "corpus_sentences": len(corpus), "corpus_chars_per_s": round(len(joined) / cs),
            "corpus_read_as_expected": round(exact / len(corpus), 4),
            "unseen_sentences": len(unseen), "unseen_read_as_expected": round(unseen_exact / len(unseen), 4),
            "baseline_cleanup_chars_per_s": round(len(joined) / floor)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="one repetition")
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s: %(message)s")
    logger.setLevel(logging.INFO)
    reps = 1 if args.quick else args.reps
    with tempfile.TemporaryDirectory() as tmp:
        espeak = bench_espeak(reps, Path(tmp))
    result = {
        "bench": "tts",
        "reps": reps,
        "bulletin_chars": len(BULLETIN),
        "espeak_ng": espeak,
        **bench_online(reps),
        "normalize": bench_normalize(reps),
        "espeak_render_rtf_median": statistics.median(
            v["render_rtf"] for k, v in espeak.items() if k != "cache"
        ),
    }
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
