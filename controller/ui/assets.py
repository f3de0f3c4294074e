"""The installable web app (issue 14): static files under versioned URLs, the web manifest and the
service worker.

Each app-shell file is linked as ``/v/<content hash>/<name>`` (:func:`asset`) and served with a
year-long immutable ``Cache-Control``: a new release changes the hash, so a phone fetches the new
file at once instead of running the old script for minutes. ``/sw.js`` caches exactly these URLs
(plus the offline page) in a cache named after their combined hash (:func:`version`) and never
touches API answers or pages, which always go to the network (so a phone never shows stale data).
No push service is reachable from a ward's network: alerts appear in the app while it is open."""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, Response

STATIC = Path(__file__).resolve().parents[1] / "static"
#: the app shell: what the service worker keeps (no page with data, no API answer)
SHELL = ("app.css", "app.js", "schedules.js", "favicon.svg", "icon-192.png", "icon-512.png",
         "icon-maskable-512.png", "offline.html")
IMMUTABLE = "public, max-age=31536000, immutable"
THEME = "#8c1c13"
BACKGROUND = "#f6f6f3"

router = APIRouter(include_in_schema=False)


@lru_cache(maxsize=1)
def digests() -> dict[str, str]:
    """name → the first 12 hex digits of its SHA-256 (read once per process: a release restarts it)."""
    return {n: hashlib.sha256((STATIC / n).read_bytes()).hexdigest()[:12] for n in SHELL}


def asset(name: str) -> str:
    """The versioned URL of a shell file, e.g. ``/v/3f2a…/app.js``."""
    return f"/v/{digests()[name]}/{name}"


def version() -> str:
    """One hash of the whole shell: the service worker's cache name changes with any file."""
    return hashlib.sha256(json.dumps(digests(), sort_keys=True).encode()).hexdigest()[:12]


@router.get("/v/{digest}/{name}")
def versioned(digest: str, name: str) -> Response:
    """A shell file; cached for a year when ``digest`` is its current hash. An old page asking
    for an older hash gets today's file, not to be kept (``no-cache``)."""
    if name not in SHELL:
        raise HTTPException(404, "no such file")
    current = digest == digests()[name]
    return FileResponse(STATIC / name, headers={"Cache-Control": IMMUTABLE if current else "no-cache"})


@router.get("/favicon.ico")
def favicon() -> Response:
    """For browsers that ask for it without reading the page's ``<link rel="icon">``."""
    return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml",
                        headers={"Cache-Control": "max-age=86400"})


@router.get("/manifest.webmanifest")
def manifest() -> Response:
    body = {
        "name": "Loa phường — Hệ thống truyền thanh phường", "short_name": "Loa phường", "lang": "vi",
        "dir": "ltr", "description": "Soạn, duyệt và phát bản tin trên loa phường; xem từng cụm loa đã phát.",
        "id": "/", "start_url": "/", "scope": "/", "display": "standalone", "orientation": "portrait",
        "theme_color": THEME, "background_color": BACKGROUND,
        "icons": [{"src": asset("icon-192.png"), "sizes": "192x192", "type": "image/png", "purpose": "any"},
                  {"src": asset("icon-512.png"), "sizes": "512x512", "type": "image/png", "purpose": "any"},
                  {"src": asset("icon-maskable-512.png"), "sizes": "512x512", "type": "image/png",
                   "purpose": "maskable"},
                  {"src": asset("favicon.svg"), "sizes": "any", "type": "image/svg+xml", "purpose": "any"}],
    }
    return Response(json.dumps(body, ensure_ascii=False), media_type="application/manifest+json",
                    headers={"Cache-Control": "no-cache"})


_WORKER = """// loaphuong app shell (controller/ui/assets.py): only versioned static files are cached.
"use strict";
const CACHE = "lp-shell-%(version)s";
const SHELL = %(shell)s;
const OFFLINE = "%(offline)s";
self.addEventListener("install", ev => {
  ev.waitUntil(caches.open(CACHE).then(c => c.addAll(SHELL)).then(() => self.skipWaiting()));
});
self.addEventListener("activate", ev => {
  ev.waitUntil(caches.keys().then(keys => Promise.all(
    keys.filter(k => k.startsWith("lp-shell-") && k !== CACHE).map(k => caches.delete(k))))
    .then(() => self.clients.claim()));
});
self.addEventListener("fetch", ev => {
  const req = ev.request, url = new URL(req.url);
  if (req.method !== "GET" || url.origin !== self.location.origin) return;
  if (SHELL.includes(url.pathname)) {  // a versioned file never changes: the cache first
    ev.respondWith(caches.open(CACHE).then(c => c.match(req).then(hit => hit || fetch(req).then(r => {
      if (r.ok) c.put(req, r.clone());
      return r;
    }))));
  } else if (req.mode === "navigate") {  // pages and their data: always the network, never stored
    ev.respondWith(fetch(req).catch(() => caches.match(OFFLINE).then(r => r || Response.error())));
  }  // everything else (the API, audio, exports, the event stream): untouched, from the network
});
"""


@router.get("/sw.js")
def service_worker() -> Response:
    shell = [asset(n) for n in SHELL]
    js = _WORKER % {"version": version(), "shell": json.dumps(shell), "offline": asset("offline.html")}
    return Response(js, media_type="text/javascript", headers={"Cache-Control": "no-cache"})
