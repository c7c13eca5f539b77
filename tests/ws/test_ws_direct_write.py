"""The direct-write path against the installed trio-websocket: an incompatible upgrade fails here.

:mod:`exchange.ws.direct_write` writes through trio-websocket internals; these tests check that
the installed version is the pinned one, that the internals it names exist on a real connection
with the types it assumes, and that frames written through it (and through the public path)
reach a real client intact, in order, large ones included; and that a closed connection refuses.
"""

from __future__ import annotations

import importlib.metadata
import re
import socket
import tomllib
from pathlib import Path

import pytest
import trio
from trio_websocket import (
    ConnectionClosed,
    WebSocketConnection,
    WebSocketRequest,
    open_websocket_url,
    serve_websocket,
)
from wsproto.connection import ConnectionState

from exchange.ws import direct_write
from exchange.ws.frames import send_messages, text_frame, text_payloads

ROOT = Path(__file__).resolve().parents[2]
MESSAGES = [b'{"a":1}', b'{"b":"' + b"x" * 200 + b'"}', b'{"c":"' + b"y" * 70_000 + b'"}']


def test_the_installed_trio_websocket_is_the_pinned_one() -> None:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"trio-websocket=={direct_write.WRITTEN_AGAINST}" in dependencies
    assert any(re.match(r"wsproto\b", dependency) for dependency in dependencies)
    assert importlib.metadata.version("trio-websocket") == direct_write.WRITTEN_AGAINST
    assert direct_write.incompatibility() is None


def test_payloads_come_back_out_of_joined_frames() -> None:
    data = b"".join(text_frame(message) for message in MESSAGES)
    assert list(text_payloads(data)) == MESSAGES


@pytest.mark.parametrize("path", ["direct", "nowait", "public"])
async def test_frames_written_reach_a_real_client_intact(path: str) -> None:
    data = b"".join(text_frame(message) for message in MESSAGES)
    connections: list[WebSocketConnection] = []
    written = trio.Event()

    async def handler(request: WebSocketRequest) -> None:
        ws = await request.accept()
        connections.append(ws)
        # What direct_write relies on, on a live connection.
        assert isinstance(ws._stream, trio.SocketStream)
        assert isinstance(ws._stream_lock, trio.StrictFIFOLock)
        assert ws._close_reason is None and ws._wsproto.state is ConnectionState.OPEN
        sock = direct_write.raw_socket(ws)
        assert isinstance(sock, socket.socket) and not sock.getblocking()
        if path == "direct":
            await direct_write.send_frames(ws, data)
        elif path == "nowait":
            sent = direct_write.try_send_nowait(ws, sock, data)
            assert 0 < sent <= len(data)
            if sent < len(data):
                await direct_write.send_frames(ws, data[sent:])
        else:
            await send_messages(ws, data)
        written.set()
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve_websocket, handler, "127.0.0.1", 0, None)
        url = f"ws://127.0.0.1:{server.port}/"
        with trio.fail_after(10):
            async with open_websocket_url(url) as client:
                received = [await client.get_message() for _ in MESSAGES]
                await written.wait()
                # A ping from the client is still answered: our writes left wsproto in step.
                await client.ping()
        assert [message.encode() for message in received] == MESSAGES
        assert all(isinstance(message, str) for message in received)  # text frames

        # Once closed, the direct path refuses instead of writing after the close frame.
        ws = connections[0]
        with trio.fail_after(5):
            while ws._close_reason is None:
                await trio.sleep(0.01)
        with pytest.raises(ConnectionClosed):
            await direct_write.send_frames(ws, text_frame(b"{}"))
        assert direct_write.try_send_nowait(ws, direct_write.raw_socket(ws), b"") == 0
        nursery.cancel_scope.cancel()
