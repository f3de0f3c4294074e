"""An asyncio driver for paho-mqtt 2.x clients (one event loop, many clients, no threads).

paho's ``loop_start`` costs a thread per client and its ``select()`` fails past 1024 descriptors,
so the controller and the simulator drive paho's sockets from the asyncio loop instead
(``add_reader``/``add_writer`` + ``loop_read``/``loop_write``/``loop_misc``), as aiomqtt does. Also:

* reconnect with jittered, capped exponential backoff and a clear log line per failure, going
  round a list of brokers (the one rule of :mod:`devices.failover`);
* publishes awaitable until the broker acknowledges them (QoS 1);
* every message handler wrapped: one bad payload is logged and counted, never fatal; byte counters.

Only the blocking TCP connect runs in a worker thread; every other call on the paho
client happens on the loop thread, because paho is not fully thread-safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode

from devices.failover import DUPLICATE_FLAPS, STABLE_S, Backoff, BrokerRing
from devices.mqtt_paho import abort_on_close, discard_outbox, paho_client
from devices.mqtt_types import BrokerAddress, Brokers, LinkStats, MqttError, NotConnected, Will, fail_waiters

logger = logging.getLogger(__name__)

FLAP_S = STABLE_S  # a connection that dies sooner than this after CONNACK counts as a flap
CONNACK_S = 10.0  # how long a broker may take to answer CONNECT before the next address is tried
LOGIN = (4, 5, 134, 135)  # CONNACK codes of a refused login: bad user name or password, not authorized

MessageHandler = Callable[[str, bytes, bool], None]
ConnectHandler = Callable[[], Awaitable[None] | None]

__all__ = ["DUPLICATE_FLAPS", "AsyncMqttClient", "Backoff", "BrokerAddress", "Brokers", "ConnectHandler",
           "LinkStats", "MessageHandler", "MqttError", "NotConnected", "Will"]


class AsyncMqttClient:
    """One MQTT 3.1.1 connection driven by the running asyncio loop."""

    def __init__(self, client_id: str, broker: Brokers, *,
                 will: Will | None = None, on_message: MessageHandler | None = None,
                 on_connect: ConnectHandler | None = None, clean_session: bool = True,
                 min_backoff: float = 0.5, max_backoff: float = 30.0, log_failures: bool = True,
                 refuse_duplicate: bool = False, subscribe_qos: Callable[[str], int] | None = None) -> None:
        self.client_id = client_id
        self._subscribe_qos = subscribe_qos or (lambda _topic: 1)  # of a topic subscribed without a QoS
        self.ring = BrokerRing(client_id, broker, Backoff(min_backoff, max_backoff),
                               refuse_duplicate=refuse_duplicate)  # stop for good on a duplicate id
        self.stats = LinkStats()
        self.connected = asyncio.Event()
        self._on_message = on_message
        self._on_connect = on_connect
        self._log_failures = log_failures
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sock: Any = None  # socket.socket, or ssl.SSLSocket with TLS
        self._writing = False
        self._flush_after_read = False
        self._connecting = False
        self._stopping = self._leaving = False
        self._lost = asyncio.Event()
        self._connack: asyncio.Future[int] | None = None
        self._connack_reason = ""
        self._pending: dict[int, asyncio.Future[None]] = {}
        self._subacks: dict[int, asyncio.Future[list[int]]] = {}
        self._connected_at: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._misc_task: asyncio.Task[None] | None = None
        self.last_error = ""

        self._client = paho_client(client_id, self.ring.current, will, clean_session)
        self._wire(self._client)

    def _wire(self, c: paho.Client) -> None:
        """paho's callbacks into this driver (all called on the loop thread)."""
        c.on_connect = self._paho_connect
        c.on_disconnect = self._paho_disconnect
        c.on_message = self._paho_message
        c.on_publish = self._paho_publish
        c.on_subscribe = self._paho_subscribe
        c.on_socket_open = None  # the socket is attached after connect() returns, on the loop thread
        c.on_socket_close = self._sock_close
        c.on_socket_register_write = self._sock_want_write
        c.on_socket_unregister_write = self._sock_done_write

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> asyncio.Task[None]:
        """Start connecting (and reconnecting) in the background."""
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=f"mqtt-{self.client_id}")
        self._misc_task = asyncio.create_task(self._misc(), name=f"mqtt-misc-{self.client_id}")
        return self._task

    async def stop(self, *, final: tuple[str, bytes] | None = None) -> None:
        """Disconnect cleanly (publishing ``final`` retained first, e.g. a shutdown state)."""
        self._stopping = True
        if final is not None and self.connected.is_set():
            try:
                await asyncio.wait_for(self.publish(final[0], final[1], qos=1, retain=True), 2)
            except (MqttError, TimeoutError):
                logger.warning("%s: could not publish final state before stopping", self.client_id)
        if self._sock is not None:
            self._client.disconnect()
            self._flush()
        await self._cancel_tasks()
        self._detach()
        self.connected.clear()

    async def kill(self) -> None:
        """Drop the TCP connection without DISCONNECT: the broker publishes the last-will."""
        self._stopping = True
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
        await self._cancel_tasks()
        self._detach()
        self.connected.clear()

    async def _cancel_tasks(self) -> None:
        tasks = [t for t in (self._task, self._misc_task) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):  # shutting down
                await t
        self._task = self._misc_task = None
        fail_waiters(NotConnected("client stopped"), self._pending, self._subacks)

    @property
    def broker(self) -> BrokerAddress:
        """The broker this client is on (or tries next)."""
        return self.ring.current

    @property
    def flaps(self) -> int:
        """Connections in a row that died young (:data:`FLAP_S`)."""
        return self.ring.flaps

    async def _run(self) -> None:
        assert self._loop is not None
        while not self._stopping:
            self._lost.clear()
            try:
                await self._connect_once()
            except (OSError, MqttError, TimeoutError) as exc:
                self.stats.connect_failures += 1
                self.last_error = str(exc) or type(exc).__name__
                failed = self.broker
                delay = self.ring.failed()
                if self._log_failures:
                    logger.warning("%s: MQTT connect to %s failed (%s); trying %s in %.1f s", self.client_id,
                                   failed, self.last_error, self.broker, delay)
                self._detach()
                await asyncio.sleep(delay)
                continue
            self.stats.connects += 1
            self.last_error = ""
            self.connected.set()
            if self._on_connect is not None:
                try:
                    res = self._on_connect()
                    if res is not None:
                        await res
                except Exception:
                    logger.exception("%s: on_connect handler failed", self.client_id)
            self._connected_at = time.monotonic()
            await self._lost.wait()
            self.connected.clear()
            self._detach()
            fail_waiters(NotConnected("connection lost"), self._pending, self._subacks)
            if self._stopping:
                break
            delay = self._after_loss_delay()
            if self.ring.refused:
                self.last_error = "refused: another client uses this client id"
                break
            await asyncio.sleep(delay)

    def _after_loss_delay(self) -> float:
        """Wait after a lost connection: short and jittered, doubling while connections die young."""
        lived = time.monotonic() - (self._connected_at or time.monotonic())
        lost_on, ours, self._leaving = self.broker, self._leaving, False
        delay = self.ring.lost(lived, ours=ours)
        if self.ring.flaps == DUPLICATE_FLAPS:
            logger.error("%s: %s closed %d connections in a row right after they opened: another client is "
                         "probably using this client id; %s", self.client_id, lost_on, self.ring.flaps,
                         "this client STOPS connecting with it: give each controller its own id "
                         "(LOAPHUONG_MQTT__CLIENT_ID, or leave it unset) and restart" if self.ring.refused
                         else "give each controller its own")
        if self._log_failures:
            logger.warning("%s: connection to %s lost after %.1f s; trying %s in %.1f s",
                           self.client_id, lost_on, lived, self.broker, delay)
        return delay

    async def _connect_once(self) -> None:
        assert self._loop is not None
        b = self.broker
        if b.username is not None:
            self._client.username_pw_set(b.username, b.password)
        self._connecting = True
        try:
            await self._loop.run_in_executor(None, self._client.connect, b.host, b.port, b.keepalive)
        finally:
            self._connecting = False
        sock = self._client.socket()
        if sock is None:
            raise MqttError("no socket after connect")
        self._attach(sock)
        self._connack = self._loop.create_future()
        try:
            rc = await asyncio.wait_for(self._connack, CONNACK_S)
        except TimeoutError:
            raise MqttError(f"no CONNACK within {CONNACK_S:.0f} s") from None
        if rc != 0:
            login = "; check this client's username and password, and the broker's ACL" if rc in LOGIN else ""
            raise MqttError(f"broker refused the connection: {self._connack_reason} (code {rc}){login}")

    async def _misc(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            if self._sock is not None and not self._connecting:
                rc = self._client.loop_misc()
                if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    self._lost.set()

    # ------------------------------------------------------------------ socket plumbing

    def _attach(self, sock: Any) -> None:
        assert self._loop is not None
        self._sock = sock
        self._loop.add_reader(sock, self._readable)
        if self._client.want_write():
            self._sock_want_write(self._client, None, sock)

    def _detach(self) -> None:
        if self._sock is not None and self._loop is not None:
            self._loop.remove_reader(self._sock)
            self._loop.remove_writer(self._sock)
        self._sock = None
        self._writing = False

    def _readable(self) -> None:
        self._client.loop_read()
        # TLS: bytes already decrypted into the SSL buffer never wake the selector again
        while self._sock is not None and isinstance(self._sock, ssl.SSLSocket) and self._sock.pending():
            self._client.loop_read()
        if self._flush_after_read:
            self._flush_after_read = False
            self._flush()
        if self._sock is not None and self._client.socket() is None:
            self._lost.set()

    def _writable(self) -> None:
        self._client.loop_write()

    def flush_soon(self) -> None:
        """Write what is queued once the packet being handled is done (not from paho's callback)."""
        self._flush_after_read = True

    def _flush(self) -> None:
        if self._sock is not None:
            for _ in range(100):
                if not self._client.want_write():
                    break
                self._client.loop_write()

    def _sock_close(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        if self._connecting:
            return
        self._detach()
        self._lost.set()

    def _sock_want_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        if self._connecting or self._loop is None or self._sock is None or self._writing:
            return
        self._writing = True
        self._loop.add_writer(self._sock, self._writable)

    def _sock_done_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        if self._loop is not None and self._sock is not None and self._writing:
            self._loop.remove_writer(self._sock)
        self._writing = False

    # ------------------------------------------------------------------ paho callbacks

    def _paho_connect(self, client: paho.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        value = rc.value if hasattr(rc, "value") else int(rc)
        self._connack_reason = str(rc)  # paho 2 maps 3.1.1 codes to MQTT 5 names ("Not authorized")
        if self._connack is not None and not self._connack.done():
            self._connack.set_result(value)

    def _paho_disconnect(self, client: paho.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        self._lost.set()

    def _paho_publish(self, client: paho.Client, userdata: Any, mid: int, rc: Any, props: Any) -> None:
        fut = self._pending.pop(mid, None)
        if fut is not None and not fut.done():
            fut.set_result(None)

    def _paho_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        self.stats.msgs_in += 1
        self.stats.bytes_in += len(msg.payload) + len(msg.topic)
        if self._on_message is None:
            return
        try:
            payload = msg.payload if isinstance(msg.payload, bytes) else bytes(msg.payload)
            self._on_message(msg.topic, payload, bool(msg.retain))
        except Exception:
            self.stats.handler_errors += 1
            logger.exception("%s: handler failed for a message on %s", self.client_id, msg.topic)

    # ------------------------------------------------------------------ API

    @property
    def is_connected(self) -> bool:
        return self.connected.is_set()

    @property
    def outbox(self) -> int:
        """Publishes handed to paho not yet acknowledged (QoS 1 in flight or queued behind them)."""
        return len(getattr(self._client, "_out_messages", ()))

    def publish_nowait(self, topic: str, payload: bytes, *, qos: int = 0, retain: bool = False) -> int:
        """Queue a publish; returns its message id. Raises NotConnected when offline."""
        if not self.connected.is_set():
            raise NotConnected(f"not connected to {self.broker}")
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise NotConnected(f"publish to {topic} failed: {paho.error_string(info.rc)}")
        self.stats.msgs_out += 1
        self.stats.bytes_out += len(payload) + len(topic.encode()) + 4
        return int(info.mid)

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False,
                      timeout: float = 30.0) -> None:
        """Publish and, for QoS 1, wait until the broker has acknowledged it."""
        assert self._loop is not None
        fut: asyncio.Future[None] = self._loop.create_future()
        mid = self.publish_nowait(topic, payload, qos=qos, retain=retain)
        if qos == 0:
            return
        self._pending[mid] = fut
        try:
            await asyncio.wait_for(asyncio.shield(fut), timeout)
        except TimeoutError:
            raise MqttError(f"no PUBACK for {topic} within {timeout:.0f} s") from None
        finally:
            self._pending.pop(mid, None)

    def subscribe(self, topics: list[str], qos: int | None = None) -> asyncio.Future[list[int]] | None:
        """Subscribe (``qos``, else ``subscribe_qos(topic)``): a future of the SUBACK codes (128: refused)."""
        if not topics or not self.connected.is_set() or self._loop is None:
            return None
        q = self._subscribe_qos
        rc, mid = self._client.subscribe([(t, q(t) if qos is None else qos) for t in topics])
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
            return None
        fut: asyncio.Future[list[int]] = self._loop.create_future()
        self._subacks[mid] = fut
        return fut

    def _paho_subscribe(self, client: paho.Client, userdata: Any, mid: int, codes: Any, props: Any) -> None:
        fut = self._subacks.pop(mid, None)
        if fut is not None and not fut.done():
            fut.set_result([c.value if hasattr(c, "value") else int(c) for c in codes])

    def unsubscribe(self, topics: list[str]) -> None:
        if topics and self.connected.is_set():
            self._client.unsubscribe(topics)

    def drop_outbox(self, why: str) -> int:
        """Forget what paho holds to publish and reset the connection (nothing of it sent later)."""
        n = discard_outbox(self._client)
        abort_on_close(self._sock)
        fail_waiters(NotConnected(why), self._pending)
        self.reconnect(why)
        return n

    def reconnect(self, why: str) -> None:
        """End this connection cleanly (DISCONNECT: no last-will) and go on as after a lost one:
        the backoff wait, then the next broker of the ring (a broker node that refuses what a
        client needs, e.g. a subscription, is left for another)."""
        if self.connected.is_set() and self._sock is not None:
            logger.warning("%s: leaving %s: %s", self.client_id, self.broker, why)
            self.last_error, self._leaving = why, True
            self._client.disconnect()
            self._flush()
            self._lost.set()

