"""A local HTTP receiver that answers /import the way Mixpanel does, scripted per request."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import threading
import time
from collections import Counter
from typing import Any

from aiohttp import web

SECRET = "test-api-secret"


class MixpanelLike:
    """Actions per request, in order: ok, 500, 503, 429, slow (store, then answer late),
    lost (store, then close the connection without an answer), 401."""

    def __init__(self, script: list[str] | None = None, slow_seconds: float = 3.0) -> None:
        self.script = list(script or [])
        self.slow_seconds = slow_seconds
        self.accepted: dict[str, dict[str, Any]] = {}
        self.deliveries: Counter[str] = Counter()
        self.batch_sizes: list[int] = []
        self.requests = 0
        self.holding = threading.Event()  # set while a slow answer is being held back

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/import", self.import_events)
        return app

    async def import_events(self, request: web.Request) -> web.Response:
        self.requests += 1
        expected = "Basic " + base64.b64encode(f"{SECRET}:".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return web.json_response({"error": "Unauthorized", "status": 0}, status=401)
        action = self.script.pop(0) if self.script else "ok"
        if action in ("500", "503"):
            return web.json_response({"error": "service unavailable"}, status=int(action))
        if action == "429":
            return web.json_response({"error": "rate limited"}, status=429,
                                     headers={"Retry-After": "0.2"})
        body = await request.read()
        if body[:2] == b"\x1f\x8b":  # aiohttp already inflates Content-Encoding: gzip
            body = gzip.decompress(body)
        events = json.loads(body)
        self.batch_sizes.append(len(events))
        failed, imported = [], 0
        for index, event in enumerate(events):
            problem = self._validate(event)
            if problem:
                failed.append({"index": index, "$insert_id": event["properties"].get("$insert_id"),
                               "field": problem[0], "message": problem[1]})
                continue
            insert_id = event["properties"]["$insert_id"]
            self.deliveries[insert_id] += 1
            self.accepted.setdefault(insert_id, event)  # Mixpanel dedups by $insert_id
            imported += 1
        if action == "lost":  # stored, but the answer never reaches the sender
            assert request.transport is not None
            request.transport.abort()
            return web.Response(status=200)
        if action == "slow":
            self.holding.set()
            await asyncio.sleep(self.slow_seconds)
            self.holding.clear()
        if failed:
            return web.json_response({"code": 400, "error": "some data points in the request"
                                      " failed validation", "failed_records": failed,
                                      "num_records_imported": imported, "status": "Bad Request"},
                                     status=400)
        return web.json_response({"code": 200, "num_records_imported": imported,
                                  "status": "OK"})

    @staticmethod
    def _validate(event: dict[str, Any]) -> tuple[str, str] | None:
        props = event.get("properties") or {}
        if not event.get("event"):
            return "event", "'event' must be a non-empty string"
        if not props.get("distinct_id"):
            return "properties.distinct_id", "'properties.distinct_id' is required"
        insert_id = props.get("$insert_id")
        if not isinstance(insert_id, str) or len(insert_id) > 36:
            return "properties.$insert_id", "'$insert_id' must be a string of at most 36"
        stamp = props.get("time")
        seconds = stamp / 1000 if isinstance(stamp, int) and stamp > 10**11 else stamp
        if not isinstance(seconds, int | float) or seconds > time.time() + 3600:
            return "properties.time", "'properties.time' must not be more than 1 hour ahead"
        return None
