"""Flask streaming a generator, as Flask's "Streaming Contents" pattern shows.

GET /stream?count=N&interval_ms=M yields "1\n" .. "N\n", sleeping M ms before each item
after the first (defaults: count=10, interval_ms=1000). Flask's default mimetype
(text/html; charset=utf-8) is kept.

Run: .venv/bin/gunicorn --bind 127.0.0.1:PORT flask_app:app
"""
import time

from flask import Flask, Response, request

app = Flask(__name__)


@app.route("/stream")
def stream():
    count = request.args.get("count", 10, type=int)
    interval = request.args.get("interval_ms", 1000, type=int) / 1000

    def generate():
        for i in range(1, count + 1):
            if i > 1:
                time.sleep(interval)
            yield f"{i}\n"

    return Response(generate())
