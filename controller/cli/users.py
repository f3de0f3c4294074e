"""``loaphuong user add|list|disable|passwd`` and ``loaphuong org add|list``: accounts from the shell.

``user add`` prints a one-time password (there is no default password anywhere).
"""

from __future__ import annotations

import argparse
import secrets
import sys

from sqlmodel import Session, col, select

from controller.accounts.audit import audit
from controller.accounts.auth import hash_password
from controller.accounts.models import OrgUnit, User
from controller.accounts.passwords import password_problem
from controller.accounts.roles import ROLES
from controller.accounts.sessions import end_sessions
from controller.accounts.users import add_user
from controller.cli.db_args import add_database_args, settings_from
from controller.core.db import Database


def _db(args: argparse.Namespace) -> Database:
    settings = settings_from(args)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.db_url)
    db.migrate(settings.data_dir)
    return db


_common = argparse.ArgumentParser(add_help=False)
add_database_args(_common, "where the SQLite database lives")


def _parser(prog: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog=prog)


def user_main(argv: list[str]) -> int:
    ap = _parser("loaphuong user")
    sub = ap.add_subparsers(dest="op", required=True)
    add = sub.add_parser("add", parents=[_common], help="create an account and print its one-time password")
    add.add_argument("username")
    add.add_argument("--role", choices=ROLES, default="admin")
    add.add_argument("--org", default=None, help="org unit id (none: the whole tree)")
    sub.add_parser("list", parents=[_common])
    dis = sub.add_parser("disable", parents=[_common], help="disable an account and end its sessions")
    dis.add_argument("username")
    pw = sub.add_parser("passwd", parents=[_common],
                        help="set a new password (one-time unless --password-stdin), end the sessions")
    pw.add_argument("username")
    for p in (add, pw):
        p.add_argument("--password-stdin", action="store_true",
                       help="read the password from the first line of standard input (it must pass the "
                            "password policy: 10+ characters, not a common password, not the user name)")
    args = ap.parse_args(argv)
    db = _db(args)
    out = sys.stdout
    with db.session() as s:
        if args.op == "add":
            try:
                user, password = add_user(s, args.username, args.role, args.org, _stdin_password(args))
            except ValueError as exc:
                sys.stderr.write(f"error: {exc}\n")
                return 1
            audit(s, "cli", "user_add", user.username, f"role={user.role} org={user.org_unit_id}")
            shown = "" if args.password_stdin else f"; one-time password: {password}"
            out.write(f"created {user.username} ({user.role}){shown}\n")
        elif args.op == "list":
            for u in s.exec(select(User).order_by(col(User.id))).all():
                state = "active" if u.active else "disabled"
                out.write(f"{u.username}\t{u.role}\t{u.org_unit_id or '-'}\t{state}\n")
        else:
            found = s.exec(select(User).where(User.username == args.username)).first()
            if found is None or found.id is None:
                sys.stderr.write(f"error: no user {args.username}\n")
                return 1
            if args.op == "passwd":
                return _passwd(s, found, _stdin_password(args))
            found.active = False
            s.add(found)
            s.commit()
            end_sessions(s, found.id)
            audit(s, "cli", "user_disable", found.username)
            out.write(f"disabled {found.username}\n")
    db.dispose()
    return 0


def _stdin_password(args: argparse.Namespace) -> str | None:
    return sys.stdin.readline().rstrip("\r\n") if args.password_stdin else None


def _passwd(s: Session, user: User, password: str | None) -> int:
    assert user.id is not None
    if password is not None and (problem := password_problem(password, user.username)):
        sys.stderr.write(f"error: {problem}\n")
        return 1
    chosen = password is not None
    password = password or secrets.token_urlsafe(12)
    user.password_hash = hash_password(password)
    s.add(user)
    s.commit()
    end_sessions(s, user.id)
    audit(s, "cli", "password_reset", user.username)
    sys.stdout.write(f"new password for {user.username}" + ("\n" if chosen else f" (one-time): {password}\n"))
    return 0


def org_main(argv: list[str]) -> int:
    ap = _parser("loaphuong org")
    sub = ap.add_subparsers(dest="op", required=True)
    add = sub.add_parser("add", parents=[_common], help="add an org unit (province, ward, ...)")
    add.add_argument("id")
    add.add_argument("name")
    add.add_argument("--parent", default=None)
    sub.add_parser("list", parents=[_common])
    args = ap.parse_args(argv)
    db = _db(args)
    with db.session() as s:
        if args.op == "add":
            if args.parent and s.get(OrgUnit, args.parent) is None:
                sys.stderr.write(f"error: unknown parent {args.parent}\n")
                return 1
            s.add(OrgUnit(id=args.id, name=args.name, parent_id=args.parent))
            s.commit()
            audit(s, "cli", "org_unit_add", args.id, args.name)
        for u in s.exec(select(OrgUnit).order_by(col(OrgUnit.id))).all():
            sys.stdout.write(f"{u.id}\t{u.name}\t{u.parent_id or '-'}\n")
    db.dispose()
    return 0
