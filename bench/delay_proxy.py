"""`python -m bench.delay_proxy LISTEN_PORT TARGET_PORT DELAY_MS`: a database far away.

A TCP proxy on 127.0.0.1 that holds every chunk DELAY_MS before passing it on, in each
direction, so a round trip through it costs about twice that: PostgreSQL in another
machine or zone, for a run on one machine. Point the bench at it (both the admin
connection and the server's then go through it):

    python -m bench.delay_proxy 15432 5432 0.5 &
    AUDIT_TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:15432/test \\
        python -m bench --only single --backends postgres

Loopback only, and it runs until it is stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

HOST = "127.0.0.1"


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    loop = asyncio.get_running_loop()
    try:
        while data := await reader.read(65536):
            due = loop.time() + delay
            await asyncio.sleep(max(0.0, due - loop.time()))
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            writer.close()


async def _serve(listen: int, target: int, delay: float) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(HOST, target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(
            _pipe(reader, upstream_writer, delay), _pipe(upstream_reader, writer, delay)
        )

    server = await asyncio.start_server(handle, HOST, listen)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("listen", type=int, help="port to listen on, on 127.0.0.1")
    parser.add_argument("target", type=int, help="port on 127.0.0.1 to pass connections to")
    parser.add_argument("delay_ms", type=float, help="delay of each chunk, each way")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.listen, args.target, args.delay_ms / 1000))


if __name__ == "__main__":
    main()
