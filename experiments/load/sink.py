"""A minimal HTTP responder, so that the load generator can be measured on its own.

    python -m experiments.load.sink --host 10.0.0.250 --port 8080

It answers every request at once with a tiny 200 (or a 201 with an id for a POST), no
database behind it, so that in `bench loadgen` the generator, not the service, is what is
measured. It runs inside a Mininet host, started by the experiment's process runner.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools

_ids = itertools.count(1)


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        if length:
            await reader.readexactly(length)
        if head.startswith(b"POST"):
            status, body = b"201 Created", b'{"id": %d}' % next(_ids)
        else:
            status, body = b"200 OK", b"ok"
        writer.write(b"HTTP/1.1 " + status + b"\r\nX-Served-By: sink\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
        await writer.drain()
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
        pass
    finally:
        writer.close()


async def serve(host: str, port: int) -> None:
    server = await asyncio.start_server(handle, host, port, backlog=4096)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m experiments.load.sink", description=__doc__)
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
