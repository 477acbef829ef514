"""FastAPI streaming an async generator with StreamingResponse, no media_type given.

GET /stream?count=N&interval_ms=M yields "1\n" .. "N\n", sleeping M ms before each item
after the first (defaults: count=10, interval_ms=1000). With no media_type, Starlette's
StreamingResponse sends no Content-Type at all. ZOO_GZIP=1 adds Starlette's GZipMiddleware
as FastAPI's docs show it (app.add_middleware(GZipMiddleware, minimum_size=1000)).

Run: ZOO_GZIP=0 .venv/bin/uvicorn fastapi_app:app --host 127.0.0.1 --port PORT
"""
import asyncio
import os

from fastapi import FastAPI
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import StreamingResponse

app = FastAPI()

if os.environ.get("ZOO_GZIP") == "1":
    app.add_middleware(GZipMiddleware, minimum_size=1000)


@app.get("/stream")
async def stream(count: int = 10, interval_ms: int = 1000):
    async def gen():
        for i in range(1, count + 1):
            if i > 1:
                await asyncio.sleep(interval_ms / 1000)
            yield f"{i}\n"

    return StreamingResponse(gen())
