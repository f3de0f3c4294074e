"""devices/hls.py: HLS playlists parsed as the relays need them (pure, no I/O)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices import hls

BASE = "http://radio.example/vov/live/index.m3u8?token=abc"

MASTER = """#EXTM3U
#EXT-X-VERSION:3
#EXT-X-STREAM-INF:BANDWIDTH=128000,CODECS="mp4a.40.2,avc1.4d401e",RESOLUTION=640x360
hi/index.m3u8?token=abc
#EXT-X-STREAM-INF:PROGRAM-ID=1,BANDWIDTH=48000,CODECS="mp4a.40.5"
../lo/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=64000
http://cdn.example/mid.m3u8
"""

LIVE = """#EXTM3U
#EXT-X-VERSION:3
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:1041
#EXTINF:2.000,
seg1041.aac
#EXTINF:2.000,title
seg1042.aac?x=1
#EXTINF:2,
/abs/seg1043.aac
#EXTINF:1.5,
http://other.example/seg1044.aac
"""


def test_master_playlist_variants_resolved_and_the_cheapest_chosen() -> None:
    pl = hls.parse(MASTER, BASE)
    assert pl.is_master and not pl.segments
    assert pl.variants == [
        hls.Variant("http://radio.example/vov/live/hi/index.m3u8?token=abc", 128000, "mp4a.40.2,avc1.4d401e"),
        hls.Variant("http://radio.example/vov/lo/index.m3u8", 48000, "mp4a.40.5"),
        hls.Variant("http://cdn.example/mid.m3u8", 64000, ""),
    ]
    assert hls.choose_variant(pl).uri == "http://radio.example/vov/lo/index.m3u8"


def test_variant_without_bandwidth_comes_last() -> None:
    pl = hls.parse("#EXTM3U\n#EXT-X-STREAM-INF:CODECS=\"mp4a.40.2\"\na.m3u8\n"
                   "#EXT-X-STREAM-INF:BANDWIDTH=96000\nb.m3u8\n", "http://r/x/")
    assert hls.choose_variant(pl).uri == "http://r/x/b.m3u8"


def test_live_media_playlist() -> None:
    pl = hls.parse(LIVE, BASE)
    assert not pl.is_master and not pl.ended and pl.init_uri is None
    assert (pl.target_duration, pl.media_sequence, pl.last_sequence) == (2.0, 1041, 1044)
    assert [(s.uri, s.duration, s.sequence) for s in pl.segments] == [
        ("http://radio.example/vov/live/seg1041.aac", 2.0, 1041),
        ("http://radio.example/vov/live/seg1042.aac?x=1", 2.0, 1042),
        ("http://radio.example/abs/seg1043.aac", 2.0, 1043),
        ("http://other.example/seg1044.aac", 1.5, 1044),
    ]
    # 3 target durations = 6 s from the end: 1.5 + 2 + 2 = 5.5 is not enough, + 2 = 7.5 is
    assert hls.start_sequence(pl) == 1041


def test_live_edge_start_keeps_three_target_durations() -> None:
    body = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:7\n" + "".join(
        f"#EXTINF:1.0,\ns{i}.ts\n" for i in range(7, 13))
    pl = hls.parse(body, "http://r/live.m3u8")
    assert hls.start_sequence(pl) == 10  # s10, s11, s12: 3 s
    short = hls.parse("#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\na.ts\n#EXTINF:4,\nb.ts\n", "http://r/")
    assert hls.start_sequence(short) == 0  # shorter than 3 target durations: from the first
    empty = hls.parse("#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:9\n", "http://r/")
    assert (hls.start_sequence(empty), empty.last_sequence) == (9, 8)


def test_endlist_starts_at_the_first_segment() -> None:
    pl = hls.parse(LIVE + "#EXT-X-ENDLIST\n", BASE)
    assert pl.ended and hls.start_sequence(pl) == 1041


def test_sliding_window_by_media_sequence() -> None:
    def window(first: int) -> hls.Playlist:
        return hls.parse("#EXTM3U\n#EXT-X-TARGETDURATION:1\n"
                         f"#EXT-X-MEDIA-SEQUENCE:{first}\n"
                         + "".join(f"#EXTINF:1,\nseg{i % 3}.ts\n" for i in range(first, first + 4)),
                         "http://r/l.m3u8")

    a, b = window(100), window(102)
    # the same URI (seg1.ts) reappears with another sequence number: sequence, not URI, tells new
    assert a.segments[0].uri == b.segments[1].uri == "http://r/seg1.ts"
    assert (a.segments[0].sequence, b.segments[1].sequence) == (100, 103)
    assert [s.sequence for s in b.segments if s.sequence > a.last_sequence] == [104, 105]


def test_crlf_bom_blank_lines_and_missing_targetduration() -> None:
    body = "\ufeff#EXTM3U\r\n\r\n#EXTINF:3.2,\r\n a.aac \r\n#EXTINF:5.9,\r\nb.aac\r\n#EXT-X-ENDLIST\r\n"
    pl = hls.parse(body, "http://r/p/x.m3u8")
    assert [s.uri for s in pl.segments] == ["http://r/p/a.aac", "http://r/p/b.aac"]
    assert pl.target_duration == 6.0 and pl.ended  # missing: the longest segment, rounded up


def test_init_segment_and_unencrypted_key() -> None:
    body = ('#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-KEY:METHOD=NONE\n'
            '#EXT-X-MAP:URI="init.mp4"\n#EXTINF:6,\nseg1.m4s\n')
    pl = hls.parse(body, "http://r/a/b.m3u8")
    assert pl.init_uri == "http://r/a/init.mp4"


@pytest.mark.parametrize(("body", "message"), [
    ("", "not an HLS playlist"),
    ("<html>404</html>", "not an HLS playlist"),
    ("ID3\x03\x00garbage", "not an HLS playlist"),
    ('#EXTM3U\n#EXT-X-KEY:METHOD=AES-128,URI="k.key"\n#EXTINF:2,\na.ts\n',
     "encrypted HLS (METHOD=AES-128) is not supported"),
    ('#EXTM3U\n#EXT-X-KEY:METHOD=SAMPLE-AES,URI="k"\n', "encrypted HLS (METHOD=SAMPLE-AES)"),
    ("#EXTM3U\n#EXT-X-TARGETDURATION:two\n", "bad EXT-X-TARGETDURATION"),
    ("#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:-1\n", "bad EXT-X-MEDIA-SEQUENCE"),
    ("#EXTM3U\n#EXTINF:nan,\na.ts\n", "bad EXTINF duration"),
    ("#EXTM3U\na.ts\n", "segment without #EXTINF"),
    ("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=x1\nv.m3u8\n", "bad BANDWIDTH"),
    ("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n", "without variants"),
    ("#EXTM3U\n#EXT-X-BYTERANGE:100@0\n#EXTINF:1,\na.ts\n", "byte-range"),
    ("#EXTM3U\n#EXT-X-MAP:BYTERANGE=\"1@0\"\n", "without URI"),
])
def test_refused_with_a_clear_reason(body: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        hls.parse(body, "http://r/x.m3u8")


def test_looks_like_hls() -> None:
    assert hls.looks_like_hls("/live/index.m3u8")
    assert hls.looks_like_hls("/live/INDEX.M3U8")
    assert hls.looks_like_hls("/playlist", "application/vnd.apple.mpegurl; charset=utf-8")
    assert hls.looks_like_hls("/playlist", "audio/mpegurl")
    assert hls.looks_like_hls("/playlist", "application/x-mpegURL")
    assert hls.looks_like_hls("/stream", "text/plain", b"#EXTM3U\n#EXT-X-VERSION:3\n")
    assert not hls.looks_like_hls("/vov1.mp3", "audio/mpeg", b"\xff\xfb\x90")


_LINE = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["#EXTINF:", "#EXT-X-STREAM-INF:", "#EXT-X-TARGETDURATION:", "#EXT-X-MEDIA-SEQUENCE:",
                     "#EXT-X-KEY:", "#EXT-X-MAP:", "#EXT-X-ENDLIST", "#EXT-X-BYTERANGE:"]).flatmap(
        lambda tag: st.text(max_size=30).map(lambda rest: tag + rest)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_LINE, max_size=12), st.booleans(), st.sampled_from(["\n", "\r\n", "\r"]))
def test_garbage_is_a_value_error_never_a_crash(lines: list[str], header: bool, eol: str) -> None:
    body = eol.join((["#EXTM3U"] if header else []) + lines)
    try:
        pl = hls.parse(body, "http://r/a/x.m3u8")
    except ValueError:
        return
    if pl.is_master:
        assert hls.choose_variant(pl) in pl.variants
    else:
        seq = hls.start_sequence(pl)
        assert pl.media_sequence <= seq <= max(pl.media_sequence, pl.last_sequence)
        assert pl.target_duration > 0
