"""A forward proxy for the converge test's target: its only way out.

The private test engine gives containers no route to the outside world
(tests/rig/README.md). The Ansible target still has to install Debian and
PyPI packages, so the test runs this proxy on the engine's bridge address
and points apt and pip in the target at it. It forwards only to the hosts in
``allowed`` (the package registries): plain HTTP requests (apt) and CONNECT
tunnels (pip over HTTPS; TLS stays end to end).

    python -m tests.ansible.egress_proxy ADDRESS PORT HOST[,HOST…]
"""

from __future__ import annotations

import asyncio
import sys
from urllib.parse import urlsplit


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def _read_head(reader: asyncio.StreamReader) -> list[bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    return head.split(b"\r\n")[:-2]


def _refuse(writer: asyncio.StreamWriter, status: str) -> None:
    writer.write(f"HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
    writer.close()


def handler(allowed: set[str]):
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            lines = await _read_head(reader)
            method, target, version = lines[0].decode("latin-1").split(" ", 2)
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                path_line = None
            else:
                url = urlsplit(target)
                host, port = url.hostname or "", str(url.port or 80)
                path = url.path or "/"
                path_line = f"{method} {path}{'?' + url.query if url.query else ''} {version}".encode()
            if host not in allowed:
                _refuse(writer, "403 Forbidden")
                return
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
            if path_line is None:
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                headers = [h for h in lines[1:] if not h.lower().startswith(b"proxy-")]
                up_writer.write(b"\r\n".join([path_line, *headers]) + b"\r\n\r\n")
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            _refuse(writer, "502 Bad Gateway")

    return handle


async def serve(address: str, port: int, allowed: set[str]) -> None:
    server = await asyncio.start_server(handler(allowed), address, port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1], int(sys.argv[2]), set(sys.argv[3].split(","))))
