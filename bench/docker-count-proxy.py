#!/usr/bin/env python3
"""A Unix-socket proxy in front of dockerd that counts the API requests
passing through it (request lines client → daemon), for benchmarks that
must say how many Docker calls a run made. Usage:
    docker-count-proxy.py LISTEN.sock TARGET.sock COUNT_FILE
The count is rewritten to COUNT_FILE after every request."""
import asyncio
import re
import sys

LISTEN, TARGET, COUNT = sys.argv[1], sys.argv[2], sys.argv[3]
REQUEST = re.compile(rb"(?:^|\r\n)(GET|POST|PUT|DELETE|HEAD) /[^ ]* HTTP/1\.[01]\r\n")
count = 0


def note(n):
    global count
    count += n
    with open(COUNT, "w") as f:
        f.write(f"{count}\n")


async def pipe(reader, writer, counting):
    try:
        while data := await reader.read(65536):
            if counting:
                n = len(REQUEST.findall(data))
                if n:
                    note(n)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def handle(client_reader, client_writer):
    daemon_reader, daemon_writer = await asyncio.open_unix_connection(TARGET)
    await asyncio.gather(
        pipe(client_reader, daemon_writer, True),
        pipe(daemon_reader, client_writer, False),
    )


async def main():
    note(0)
    server = await asyncio.start_unix_server(handle, path=LISTEN)
    async with server:
        await server.serve_forever()


asyncio.run(main())
