"""A single-file Django project that streams a generator with StreamingHttpResponse.

GET /stream?count=N&interval_ms=M yields "1\n" .. "N\n", sleeping M ms before each item
after the first (defaults: count=10, interval_ms=1000). Django's default content type
(text/html; charset=utf-8) is kept. ZOO_GZIP=1 adds django.middleware.gzip.GZipMiddleware.

Run: ZOO_GZIP=0 .venv/bin/gunicorn --bind 127.0.0.1:PORT django_app:application
(from conformance/zoo, or with --chdir conformance/zoo).
"""
import os
import time

from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.http import StreamingHttpResponse
from django.urls import path

MIDDLEWARE = []
if os.environ.get("ZOO_GZIP") == "1":
    # As Django's docs put it: GZipMiddleware goes before any middleware that needs
    # to read or write the response body, so that compression happens afterwards.
    MIDDLEWARE.insert(0, "django.middleware.gzip.GZipMiddleware")

settings.configure(
    DEBUG=False,
    SECRET_KEY="conformance-zoo-not-secret",
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=MIDDLEWARE,
)


def stream(request):
    count = int(request.GET.get("count", 10))
    interval = int(request.GET.get("interval_ms", 1000)) / 1000

    def generate():
        for i in range(1, count + 1):
            if i > 1:
                time.sleep(interval)
            yield f"{i}\n"

    return StreamingHttpResponse(generate())


urlpatterns = [path("stream", stream)]

application = get_wsgi_application()
