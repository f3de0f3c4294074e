"""HTTP caching and compression for the web app (issue 14: a phone on a slow link).

The pages link the static files by a content hash (``/v/<hash>/app.css``, controller/ui/assets.py:
cached a year, immutable). Under their plain paths (``/app.css``, ``/live.html``) they get a short
``max-age`` and are revalidated with the ETag/Last-Modified that
:class:`StaticFiles` already sends (a 304 without a body). Text answers (HTML, JSON, JS, CSS, CSV)
are gzip-compressed when the client accepts it; audio, event streams, partial answers and
already-compressed files are not (see :data:`NOT_COMPRESSED`).
"""

from __future__ import annotations

import os

from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_MAX_AGE_S = 300  # an upgrade's new app.js reaches every phone within 5 minutes
GZIP_MIN_BYTES = 500  # below that the gzip header and the CPU cost more than they save
#: zlib's own default. Starlette's is 9: a 1,000-unit page of GET /api/nodes (456 KB of JSON) took
#: 42 ms of CPU to compress at 9 and 6.7 ms at 6, for 31.2 against 31.8 KB (bench/fleet.py at
#: 5,000 units: gzip was the largest cost of the request, before the handler itself)
GZIP_LEVEL = 6
# Starlette's list already has audio/*, video/*, text/event-stream, images and zip; plus files we
# serve that are compressed or opaque (XLSX is a zip; unknown audio codecs are octet-stream).
NOT_COMPRESSED = (*DEFAULT_EXCLUDED_CONTENT_TYPES, "application/octet-stream",
                  "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")


class CachedStaticFiles(StaticFiles):
    """StaticFiles with a ``Cache-Control``: short ``max-age`` for assets, ``no-cache`` (always
    revalidate, cheap with the ETag) for HTML pages such as live.html."""

    def file_response(self, full_path: str | os.PathLike[str], stat_result: os.stat_result, scope: Scope,
                      status_code: int = 200) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        html = str(full_path).endswith(".html")
        response.headers["Cache-Control"] = "no-cache" if html else f"max-age={STATIC_MAX_AGE_S}"
        return response
