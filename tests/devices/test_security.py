"""Broker accounts: the Mosquitto hash format, the ACL and configuration we write (no broker here)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from devices import security as sec


def test_hash_round_trip_and_format() -> None:
    h = sec.mosquitto_hash("s3cret", salt=b"\x01" * 12)
    assert h.startswith("$7$101$AQEBAQEBAQEBAQEB$") and len(h.split("$")) == 5
    assert sec.verify_mosquitto_hash("s3cret", h)
    assert not sec.verify_mosquitto_hash("s3cret ", h)
    assert sec.mosquitto_hash("s3cret") != sec.mosquitto_hash("s3cret")  # random salt


def test_our_verifier_accepts_what_mosquitto_passwd_writes() -> None:
    theirs = sec.mosquitto_passwd_hash("pa:ss wörd")
    if theirs is None:
        pytest.fail("mosquitto_passwd is not installed (apt-get install mosquitto)")
    assert theirs.startswith("$7$")
    assert sec.verify_mosquitto_hash("pa:ss wörd", theirs)
    assert not sec.verify_mosquitto_hash("pa:ss word", theirs)


@pytest.mark.parametrize("bad", ["", "$7$", "$7$x$y$z", "$7$101$!!$AA==", "$1$abc$def", "plain",
                                 "$7$99999999$AQ==$AQ=="])
def test_garbage_hashes_never_verify(bad: str) -> None:
    assert sec.verify_mosquitto_hash("x", bad) is False


def test_bad_inputs_are_refused_with_reasons() -> None:
    with pytest.raises(sec.SecurityError, match="empty password"):
        sec.mosquitto_hash("")
    with pytest.raises(sec.SecurityError, match="cannot be used"):
        sec.Account("a:b", sec.mosquitto_hash("x"))
    with pytest.raises(sec.SecurityError, match="not a Mosquitto password hash"):
        sec.Account("n1", "plaintext")
    with pytest.raises(sec.SecurityError, match="appears twice"):
        sec.render_passwd([sec.Account("n1", sec.mosquitto_hash("a")),
                           sec.Account("n1", sec.mosquitto_hash("b"))])
    with pytest.raises(sec.SecurityError, match="invalid node id"):
        sec.render_acl("lp", "ctl", {"Bad/Id": ["all"]})
    with pytest.raises(sec.SecurityError, match="invalid group id"):
        sec.render_acl("lp", "ctl", {"n1": ["#"]})
    with pytest.raises(sec.SecurityError, match="controller's user name"):
        sec.render_acl("lp", "ctl", {"ctl": []})
    with pytest.raises(sec.SecurityError, match="prefix"):
        sec.render_acl("lp/#", "ctl", {})


def test_acl_gives_each_node_its_own_topics_and_its_groups_only() -> None:
    acl = sec.render_acl("lp/x", "ctl", {"n1": ["all", "z1"], "n2": ["all"]}).splitlines()
    # the controller may do everything under the prefix, nothing else
    assert acl[acl.index("user ctl") + 1] == "topic readwrite lp/x/#"
    n1 = acl[acl.index("user n1") + 1: acl.index("user n2")]
    assert "topic read lp/x/group/z1/cmd" in n1 and "topic read lp/x/group/z1/bcast/+/+" in n1
    n2 = acl[acl.index("user n2") + 1:]
    assert not any("z1" in line for line in n2[: n2.index("")])
    # one pattern per node-owned leaf, and no write rule on any cmd/config/bcast topic
    assert "pattern write lp/x/node/%u/state" in acl and "pattern write lp/x/node/%u/resp" in acl
    assert "pattern read lp/x/node/%u/cmd" in acl
    writes = [line for line in acl if " write " in f" {line} " or "readwrite" in line]
    assert all(("cmd" not in w and "config" not in w and "bcast" not in w) or w.endswith("lp/x/#")
               for w in writes)


def test_conf_refuses_anonymous_and_pins_client_id(tmp_path: Path) -> None:
    conf = sec.render_conf(tmp_path, port=1884, bind="127.0.0.1",
                           tls=sec.TlsListener(8883, "/c.pem", "/k.pem", "/ca.pem")).splitlines()
    for line in ("allow_anonymous false", f"password_file {tmp_path / 'passwd'}",
                 f"acl_file {tmp_path / 'acl'}", "use_username_as_clientid true", "listener 1884 127.0.0.1",
                 "listener 8883", "certfile /c.pem", "keyfile /k.pem", "cafile /ca.pem",
                 f"max_packet_size {sec.MAX_PACKET_SIZE}"):
        assert line in conf


def test_conf_has_only_the_listeners_asked_for_and_each_pins_client_ids(tmp_path: Path) -> None:
    # Mosquitto 2.0: a listener option before the first `listener` line configures the implicit
    # default listener (0.0.0.0:1883 and [::]:1883) — issue 11 item 5. Every listener is followed
    # by use_username_as_clientid (item 1).
    for tls in (None, sec.TlsListener(8883, "/c.pem", "/k.pem", bind="127.0.0.1")):
        conf = [x for x in sec.render_conf(tmp_path, port=1884, tls=tls).splitlines()
                if x and not x.startswith("#")]
        first = next(i for i, x in enumerate(conf) if x.startswith("listener "))
        listener_options = ("use_username_as_clientid", "port ", "bind_address", "certfile", "protocol")
        assert not any(x.startswith(listener_options) for x in conf[:first])
        listeners = [i for i, x in enumerate(conf) if x.startswith("listener ")]
        assert [conf[i] for i in listeners] == ["listener 1884 127.0.0.1"] + (
            ["listener 8883 127.0.0.1"] if tls else [])
        assert all(conf[i + 1] == "use_username_as_clientid true" for i in listeners)
    tls_only = sec.render_conf(tmp_path, port=None, tls=sec.TlsListener(8883, "/c", "/k")).splitlines()
    assert [x for x in tls_only if x.startswith("listener")] == ["listener 8883"]


@pytest.mark.parametrize("kw", [{"port": None}, {"port": 8883, "tls": sec.TlsListener(8883, "/c", "/k")},
                                {"port": 0}, {"port": 1883, "bind": "1.2.3.4 5"}])
def test_conf_refuses_impossible_listeners(tmp_path: Path, kw: dict[str, object]) -> None:
    with pytest.raises(sec.SecurityError):
        sec.render_conf(tmp_path, **kw)  # type: ignore[arg-type]


def test_packet_limit_fits_the_largest_legitimate_message() -> None:
    from devices import protocol as p
    topic = "lp/group/" + "g" * 63 + "/bcast/" + "b" * 63 + "/data"
    chunk = p.frame_chunk(0, 1, b"\xff" * p.MAX_CHUNK_SIZE, b"t" * 8)  # the biggest audio chunk message
    for payload in (chunk, b" " * p.MAX_JSON_PAYLOAD):  # and the biggest JSON from a node
        assert 5 + 2 + len(topic) + 2 + len(payload) <= sec.MAX_PACKET_SIZE < 1024 * 1024


def test_acl_gives_a_gateway_its_provisioned_children_only() -> None:
    acl = sec.render_acl("lp", "ctl", {"gw1": ["all"], "c1": ["all", "z1"], "other": ["all", "z9"]},
                         gateways={"gw1": ["c1"]}).splitlines()
    gw = acl[acl.index("user gw1") + 1:]
    gw = gw[: gw.index("")]
    assert "topic write lp/node/c1/state" in gw and "topic write lp/node/c1/resp" in gw
    assert "topic read lp/node/c1/cmd" in gw and "topic read lp/group/z1/bcast/+/+" in gw
    assert not any("other" in x or "z9" in x for x in gw)
    with pytest.raises(sec.SecurityError):
        sec.render_acl("lp", "ctl", {"gw1": []}, gateways={"gw1": ["nobody"]})


def test_reserved_ids() -> None:
    assert sec.reserved_id("loaphuong-controller") and sec.reserved_id("loaphuong")
    assert not sec.reserved_id("tdp1-01")


def test_files_are_written_privately_and_atomically(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "passwd"
    sec.write_private(target, "a:b\n")
    sec.write_private(target, "c:d\n")
    assert target.read_text() == "c:d\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in target.parent.iterdir()] == ["passwd"]  # no temp file left
