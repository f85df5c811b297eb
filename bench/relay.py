"""A small HTTP relay in front of a local store: throttles uploads (bench), lies on reads or
damages uploads (fault tests). Requests are otherwise forwarded unchanged; redirects keep
pointing at the relay."""

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import aiohttp
from aiohttp import web

HOP_BY_HOP = {"content-length", "transfer-encoding", "connection", "content-encoding"}


def flip_bytes(body: bytes) -> bytes:
    return bytes(b ^ 0x5A for b in body)


def damage(body: bytes, content_type: str) -> bytes:
    """``body`` with every byte of its content flipped: of a multipart body, the last part's
    content only (its framing and first parts, e.g. GCS's JSON resource, stay intact)."""
    if not content_type.startswith("multipart/"):
        return flip_bytes(body)
    boundary = content_type.partition("boundary=")[2].strip('"').encode()
    start = body.rindex(b"\r\n\r\n", 0, body.rindex(b"--" + boundary)) + 4
    end = body.rindex(b"\r\n--" + boundary)
    return body[:start] + flip_bytes(body[start:end]) + body[end:]


@asynccontextmanager
async def relay(
    upstream: str,
    *,
    upload_rate_bps: float | None = None,
    corrupt: Callable[[web.Request], bool] = lambda _: False,
    unavailable: Callable[[web.Request], bool] = lambda _: False,
    corrupt_upload: Callable[[web.Request], bool] = lambda _: False,
) -> AsyncIterator[str]:
    """Serve on a free 127.0.0.1 port and yield its base URL.

    ``upload_rate_bps`` holds each request body for len/rate seconds; responses to requests
    for which ``corrupt`` is true come back with every byte flipped; requests for which
    ``unavailable`` is true are answered 503 without reaching the store; requests for which
    ``corrupt_upload`` is true reach the store with every body byte flipped (same length, same
    headers, so signatures and checksums sent with them still name the original bytes).
    """
    session = aiohttp.ClientSession(auto_decompress=False)
    base = ""

    async def forward(request: web.Request) -> web.Response:
        body = await request.read()
        if unavailable(request):
            return web.Response(status=503, text="unavailable (relay)")
        if body and corrupt_upload(request):
            body = damage(body, request.headers.get("Content-Type", ""))
        if upload_rate_bps:
            await asyncio.sleep(len(body) / upload_rate_bps)
        async with session.request(
            request.method,
            upstream + request.path_qs,
            headers=request.headers,
            data=body or None,
            # Forward exactly: an added header would break a signed request.
            skip_auto_headers=("Content-Type", "Accept-Encoding", "User-Agent"),
        ) as resp:
            payload = await resp.read()
            if corrupt(request) and resp.status in (200, 206):
                payload = flip_bytes(payload)
            headers = {k: v for k, v in resp.headers.items() if k.lower() not in HOP_BY_HOP}
            if "Location" in headers:  # e.g. resumable-upload sessions: keep them on the relay
                headers["Location"] = headers["Location"].replace(upstream, base)
            return web.Response(status=resp.status, headers=headers, body=payload)

    app = web.Application(client_max_size=256 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", forward)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    try:
        yield base
    finally:
        await runner.cleanup()
        await session.close()
