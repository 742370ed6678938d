"""Command-line functions of the control plane, called by ``crbroker-server``'s entry point.

``crbroker-server token create [--user NAME] [--org SLUG] [--name LABEL] [--admin]`` prints
a new API token (shown once; only its hash is stored).
``crbroker-server user create NAME [--admin]`` sets a user's console password, read from
standard input (one line), creating the user when missing. :func:`run` takes the arguments after
``crbroker-server`` (``["token", "create", ...]``) and returns the exit status.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import TextIO

from sqlalchemy import select

from control_plane.accounts.services import add_member, create_token, create_user, set_password
from control_plane.bootstrap import open_control_plane
from control_plane.errors import DomainError
from control_plane.models import Org, User
from control_plane.settings import Settings, SettingsError, load_settings


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="crbroker-server", description="control-plane administration"
    )
    commands = top.add_subparsers(dest="command", required=True)
    token = commands.add_parser("token", help="API tokens")
    token_commands = token.add_subparsers(dest="action", required=True)
    create = token_commands.add_parser("create", help="create an API token and print it once")
    create.add_argument(
        "--user", default="admin", help="user the token acts as (created if missing)"
    )
    create.add_argument("--org", help="org slug the user joins (default: the first org)")
    create.add_argument("--name", default="cli", help="a label for the token")
    create.add_argument("--admin", action="store_true", help="a new user sees every org")
    user = commands.add_parser("user", help="console users")
    user_commands = user.add_subparsers(dest="action", required=True)
    user_create = user_commands.add_parser(
        "create", help="set a user's console password (read from standard input)"
    )
    user_create.add_argument("username")
    user_create.add_argument("--admin", action="store_true", help="a new user sees every org")
    return top


async def user_create(settings: Settings, *, username: str, password: str, admin: bool) -> None:
    """Create ``username`` (or update their password) for the console."""
    plane = await open_control_plane(settings)
    try:
        async with plane.db.sessions() as session, session.begin():
            await set_password(session, username, password, admin=admin)
    finally:
        await plane.close()


async def token_create(
    settings: Settings, *, username: str, org_slug: str | None, name: str, admin: bool
) -> str:
    """Create a token for ``username`` (made a member of the org) and return its value."""
    plane = await open_control_plane(settings)
    try:
        async with plane.db.sessions() as session, session.begin():
            query = select(Org).order_by(Org.id).limit(1)
            if org_slug:
                query = select(Org).where(Org.slug == org_slug)
            org = await session.scalar(query)
            if org is None:
                raise DomainError(f"no org with slug {org_slug}")
            user = await session.scalar(select(User).where(User.username == username))
            if user is None:
                user = await create_user(session, username, is_admin=admin)
            await add_member(session, org, user, role="admin" if admin else "collaborator")
            _, value = await create_token(session, user, name)
            return value
    finally:
        await plane.close()


def run(argv: Sequence[str], *, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    args = parser().parse_args(list(argv))
    if args.command == "user":
        password = sys.stdin.readline().rstrip("\r\n")
        try:
            asyncio.run(
                user_create(
                    load_settings(), username=args.username, password=password, admin=args.admin
                )
            )
        except (SettingsError, DomainError) as exc:
            print(f"crbroker-server: {exc}", file=err)
            return 2
        print(f"console password set for {args.username}", file=out)
        return 0
    try:
        settings = load_settings()
        value = asyncio.run(
            token_create(
                settings, username=args.user, org_slug=args.org, name=args.name, admin=args.admin
            )
        )
    except (SettingsError, DomainError) as exc:
        print(f"crbroker-server: {exc}", file=err)
        return 2
    print(value, file=out)
    return 0
