"""Broker connection settings."""

from __future__ import annotations

import json
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import NoDecode

from devices.failover import parse_brokers, with_hosts
from devices.mqtt_types import BrokerAddress
from devices.protocol import DEFAULT_PREFIX


class MqttSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    host: str = Field("127.0.0.1", description="MQTT broker host")
    port: int = Field(1883, ge=1, le=65535, description="MQTT broker port")
    username: str | None = Field(None, description="controller's broker account")
    password: str | None = Field(None, description="controller's broker password")
    tls: bool = Field(False, description="connect with TLS (mqtts)")
    ca_file: str | None = Field(None, description="CA bundle for TLS")
    prefix: str = Field(DEFAULT_PREFIX, description="topic prefix shared with the nodes")
    client_id: str = Field("", description="controller's MQTT client id; empty: derived per instance from "
                                           "the host and data directory (controller/fleet/client_id.py)")
    brokers: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="the brokers of a cluster as host[:port] (port default: `port`), in ring order; "
                    "LOAPHUONG_MQTT__BROKERS='a:1883,b:1883' or a JSON list. Empty: `host` and `port` alone. "
                    "On connection loss the link tries the next one (docs/protocol.md 'Several brokers')")
    windows_tick_s: float = Field(15.0, gt=0, le=60, description="how often the zones' timed power windows "
                                                                 "are checked (controller/fleet/windows.py)")
    config_dir: str = Field("/etc/mosquitto/lp",
                            description="where `loaphuong mqtt-config` writes the broker files (the step "
                                        "the units screen shows after adding or retiring a unit)")

    @field_validator("brokers", mode="before")
    @classmethod
    def _split(cls, v: object) -> object:
        if isinstance(v, str):
            v = v.strip()
            return json.loads(v) if v.startswith("[") else [e for e in v.split(",") if e.strip()]
        return v

    @field_validator("brokers")
    @classmethod
    def _valid(cls, v: list[str]) -> list[str]:
        if v:
            parse_brokers(v)  # raises ValueError with the bad entry
        return [e.strip() for e in v if e.strip()]

    def addresses(self) -> list[BrokerAddress]:
        """The addresses the controller's link goes round (the one host/port when no list is set)."""
        one = BrokerAddress(host=self.host, port=self.port, username=self.username, password=self.password,
                            tls=self.tls, ca_file=self.ca_file)
        return with_hosts(one, parse_brokers(self.brokers, default_port=self.port)) if self.brokers else [one]
