"""The phone web app: server-rendered screens (Jinja2, autoescaped), SSE delivery view, reports."""

from __future__ import annotations

from fastapi import APIRouter

from controller.ui import delivery_view, exports, pages, reports

router = APIRouter()
for _r in (pages.router, reports.router, exports.export_router, delivery_view.router):
    router.include_router(_r)
