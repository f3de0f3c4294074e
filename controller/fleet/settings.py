"""Broker connection settings."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

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
