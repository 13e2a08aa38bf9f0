"""Benchmark baseline: the plainest aiohttp reverse proxy, measuring nothing.

The sidecar's overhead splits into what any Python HTTP hop costs (this) and what llmkpi's
measurement adds on top (sidecar minus this).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from llmkpi.serve import install_fast_loop

SESSION = web.AppKey("session", aiohttp.ClientSession)


def build(upstream: str) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        async with request.app[SESSION].request(
                request.method, upstream + request.raw_path, data=body,
                headers={"Content-Type": request.headers.get("Content-Type", "")}) as up:
            response = web.StreamResponse(
                status=up.status, headers={"Content-Type": up.headers.get("Content-Type", "")})
            await response.prepare(request)
            async for data in up.content.iter_any():
                await response.write(data)
            await response.write_eof()
            return response

    async def session(app: web.Application) -> AsyncIterator[None]:
        app[SESSION] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                             auto_decompress=False)
        yield
        await app[SESSION].close()

    app = web.Application()
    app.cleanup_ctx.append(session)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


if __name__ == "__main__":
    install_fast_loop()
    web.run_app(build(sys.argv[1]), host="127.0.0.1", port=int(sys.argv[2]), print=None,
                access_log=None)
