"""A serial child's reboot as the controller sees it (issue 13, S5), without a broker or a line:
the states the gateway's board side publishes (devices/serial/boards.py on the fakes of
tests/devices) are handed to the controller's Presence on a FakeUnitBus. The reboot's
``shutdown`` carries the session it ends, so the controller shows it; the child is then online
again with its new session."""

from __future__ import annotations

from pathlib import Path

from controller.core.db import Database
from controller.core.writer import DbWriter
from controller.fleet.presence import Presence
from devices import protocol as p
from devices.serial.wire import BoardStatus
from tests.devices.test_serial_boards import _boards
from tests.fakes import FakeUnitBus


async def test_the_controller_shows_a_serial_childs_reboot_then_its_new_session(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'ward.db'}")
    db.migrate()
    try:
        bus = FakeUnitBus()
        presence = Presence(bus, DbWriter(db))  # the writer is not started: events just queue
        presence.provision("c-1")
        io, serial_bus, boards, child = _boards()
        seen: list[str] = []
        done = [0]  # how many of the gateway's publishes were handed over

        def forward() -> None:
            """Hand the states published since the last call to the controller, noting its view."""
            for t, payload in io.sent[done[0]:]:
                if t == io.topics.state("c-1"):
                    bus.deliver("state", "c-1", p.decode(p.NodeState, payload))
                    seen.append(presence.status("c-1"))
            done[0] = len(io.sent)

        boards.update_board(child, serial_bus.status)
        forward()
        await boards.reboot(child)
        forward()
        boards.update_board(child, BoardStatus(uptime_s=1, fw=(1, 2)))
        forward()
        assert seen == ["online", "shutdown", "online"]
        view = presence.view("c-1")
        assert view is not None and view.session == child.session
    finally:
        db.dispose()
