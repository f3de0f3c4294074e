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
                 "listener 8883", "certfile /c.pem", "keyfile /k.pem", "cafile /ca.pem"):
        assert line in conf


def test_files_are_written_privately_and_atomically(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "passwd"
    sec.write_private(target, "a:b\n")
    sec.write_private(target, "c:d\n")
    assert target.read_text() == "c:d\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in target.parent.iterdir()] == ["passwd"]  # no temp file left
