"""A TCP proxy the test controls, put between the controller and PostgreSQL to cut the database:
``cut()`` closes every link and refuses new ones, ``black_hole()`` accepts and reads but never
answers (a dead route), ``restore()`` forwards again (the held links are closed, as a network
that came back would reset them).

It runs its own event loop in its own thread: the controller's database calls block the thread
they run on (often the test's event loop, e.g. the migrations at start), and a proxy sharing that
loop could never forward them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Coroutine, Iterator
from typing import Any

logger = logging.getLogger(__name__)


class TcpCut:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.mode = "pass"
        self.port = 0
        self.accepted = 0  # links accepted so far (whatever the mode)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-cut", daemon=True)
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()

    def start(self) -> None:
        self._thread.start()
        server = asyncio.run_coroutine_threadsafe(asyncio.start_server(self._serve, "127.0.0.1", 0),
                                                  self._loop).result(10)
        self._server = server
        self.port = server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def cut(self) -> None:
        self.mode = "cut"
        self._call(self._close_links())

    def black_hole(self) -> None:
        self.mode = "hole"

    def restore(self) -> None:
        self.mode = "pass"
        self._call(self._close_links())

    def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _shutdown(self) -> None:
        await self._close_links()
        if self._server is not None:
            self._server.close()

    async def _close_links(self) -> None:
        for w in list(self._links):
            w.close()
        self._links.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self.mode == "cut":
            writer.close()
            return
        self._links.add(writer)
        up_w: asyncio.StreamWriter | None = None
        try:
            if self.mode == "pass":
                up_r, up_w = await asyncio.open_connection(*self.target)
                self._links.add(up_w)
                await asyncio.gather(self._pump(reader, up_w), self._pump(up_r, writer))
            else:
                while await reader.read(65536):
                    pass
        except (ConnectionError, OSError):
            pass
        finally:
            for w in (writer, up_w):
                if w is not None:
                    self._links.discard(w)
                    w.close()

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await src.read(65536):
                while self.mode == "hole":  # a dead route: nothing passes, nothing is answered
                    await asyncio.sleep(0.05)
                    if dst.is_closing():
                        return
                dst.write(data)
                await dst.drain()
        dst.close()


@contextlib.contextmanager
def tcp_cut(target_host: str, target_port: int) -> Iterator[TcpCut]:
    proxy = TcpCut(target_host, target_port)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
