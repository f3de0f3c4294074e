"""The ``loaphuong`` commands that parse their own arguments; each imported only when it runs
(start-up speed: ``loaphuong normalize`` loads none of them)."""

from __future__ import annotations

import logging

#: Their names; all but the last three log through the command's ``_logging`` (text or JSON lines).
OWN_PARSER = ("sim", "broker", "user", "org", "mqtt-config", "backup", "restore", "unit", "gateway",
              "conformance")


def own_parser(cmd: str, rest: list[str]) -> int:
    """Run ``loaphuong CMD REST...`` for one of :data:`OWN_PARSER`."""
    if cmd == "sim":
        from firmware_sim.fleet import main as sim_main

        return sim_main(rest)
    if cmd == "broker":
        from devices.broker import main as broker_main

        return broker_main(rest)
    if cmd in ("user", "org"):
        from controller.cli.users import org_main, user_main

        logging.getLogger().setLevel(logging.WARNING)
        return user_main(rest) if cmd == "user" else org_main(rest)
    if cmd == "mqtt-config":
        from controller.cli.mqtt_config import main as mqtt_config_main

        return mqtt_config_main(rest)
    if cmd in ("backup", "restore"):
        from controller.cli.backup import main as backup_main

        return backup_main(cmd, rest)
    if cmd == "unit":
        from firmware_sim.unit.cli import main as unit_main

        return unit_main(rest)
    if cmd == "gateway":
        from devices.serial import main as gateway_main

        return gateway_main(rest)
    from devices.conformance import main as conformance_main

    return conformance_main(rest)
