"""Từ điển phát âm (issue 14): the ward's pronunciation dictionary on the phone — the entries that
apply to the user's org unit (controller/bulletins/dictionary.py, the one the speech module reads
bulletins with), search, add / edit / delete through ``/api/speech/dictionary`` (the API's role
rules: editors and approvers their own org unit's, admins their subtree's), and how a word is read
(``/api/speech/normalize`` and ``/api/speech/preview``)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response
from sqlmodel import select

from controller.accounts.models import OrgUnit
from controller.bulletins.dictionary import edit_refusal, effective_entries
from controller.ui.i18n import T
from controller.ui.render import Page, PageDep

router = APIRouter(include_in_schema=False)

MAX_SHOWN = 300  # entries on one screen; the search finds the others
_KEYS = ("d_saved", "d_added", "d_deleted", "d_delete_confirm", "d_reads_as", "d_need_term", "d_no_match",
         "d_hits")


@router.get("/dictionary", response_class=HTMLResponse)
def dictionary_page(p: PageDep, q: str = "") -> Response:
    if not isinstance(p, Page):
        return p
    assert p.user is not None
    t = T[p.lang]
    needle = " ".join(q.split()).casefold()[:100]
    names = {o.id: o.name for o in p.s.exec(select(OrgUnit)).all()}
    rows = []
    for x in effective_entries(p.s, p.user.org_unit_id):
        e = x.entry
        if needle and needle not in e.term.casefold() and needle not in e.spoken.casefold():
            continue
        rows.append({"id": e.id, "term": e.term, "spoken": e.spoken, "note": e.note, "by": e.created_by,
                     "overridden": x.overridden, "mine": e.org_unit_id == p.user.org_unit_id,
                     "whose": names.get(e.org_unit_id, e.org_unit_id) if e.org_unit_id else t["d_top"],
                     "editable": edit_refusal(p.s, p.user, e.org_unit_id) is None})
    return p.render("dictionary.html", "dictionary", entries=rows[:MAX_SHOWN], total=len(rows), q=q[:100],
                    can_add=edit_refusal(p.s, p.user, p.user.org_unit_id) is None,
                    extra={k: t[k] for k in _KEYS})
