"""What the accounts domain can do: orgs, users, memberships, tokens, and who a token is.

A request's :class:`Principal` decides which orgs it may see; every org-scoped service
starts from :func:`visible_org`, which answers another org's id the same way as an unknown one
(:class:`~control_plane.errors.NotFound`).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.accounts import passwords
from control_plane.accounts.tokens import generate_token, hash_token
from control_plane.errors import Conflict, InvalidInput, NotFound
from control_plane.models import ApiToken, Membership, Org, User, utcnow
from control_plane.pagination import Page, PageRequest, fetch_page

#: last_used_at is written at most this often per token (a write per request would make
#: every read a write)
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


@dataclass(frozen=True)
class Principal:
    """Who is asking: a user, by one of their tokens."""

    user_id: uuid.UUID
    #: the API token used; None for a console session (signed in with a password)
    token_id: uuid.UUID | None
    is_admin: bool
    #: orgs the user is a member of (an admin sees every org)
    org_ids: frozenset[uuid.UUID]

    def may_see(self, org_id: uuid.UUID) -> bool:
        return self.is_admin or org_id in self.org_ids


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug or "org"


# --- orgs ----------------------------------------------------------------------------------


async def create_org(session: AsyncSession, name: str, slug: str | None = None) -> Org:
    name = name.strip()
    if not name:
        raise InvalidInput("org name must not be empty", pointer="/data/attributes/name")
    slug = slug or slugify(name)
    if await session.scalar(select(Org.id).where(Org.slug == slug)) is not None:
        raise Conflict(f"an org with slug {slug} exists")
    org = Org(name=name, slug=slug)
    session.add(org)
    await session.flush()
    return org


async def visible_org(session: AsyncSession, principal: Principal, org_id: uuid.UUID) -> Org:
    """The org, if the principal may see it; else NotFound (never 403: ids do not leak)."""
    org = await session.get(Org, org_id) if principal.may_see(org_id) else None
    if org is None:
        raise NotFound("org", org_id)
    return org


async def visible_org_id(
    session: AsyncSession, principal: Principal, org_id: uuid.UUID
) -> uuid.UUID:
    """``org_id`` if the principal may see that org, else NotFound; no query for a member
    (memberships go with their org), one for an admin."""
    if org_id in principal.org_ids:
        return org_id
    if principal.is_admin and await session.scalar(select(Org.id).where(Org.id == org_id)):
        return org_id
    raise NotFound("org", org_id)


async def list_orgs(
    session: AsyncSession,
    principal: Principal,
    page: PageRequest,
    *,
    slug: str | None = None,
    name: str | None = None,
) -> Page[Org]:
    query = select(Org)
    if not principal.is_admin:
        query = query.where(Org.id.in_(principal.org_ids))
    if slug is not None:
        query = query.where(Org.slug == slug)
    if name is not None:
        query = query.where(func.lower(Org.name).contains(name.lower(), autoescape=True))
    return await fetch_page(session, query, Org.id, page)


async def all_visible_orgs(session: AsyncSession, principal: Principal) -> list[Org]:
    """Every org the principal sees (v1 ``GET /orgs`` is not paginated)."""
    query = select(Org).order_by(Org.id)
    if not principal.is_admin:
        query = query.where(Org.id.in_(principal.org_ids))
    return list(await session.scalars(query))


# --- users ---------------------------------------------------------------------------------


async def create_user(
    session: AsyncSession,
    username: str,
    *,
    name: str | None = None,
    email: str | None = None,
    is_admin: bool = False,
) -> User:
    if await session.scalar(select(User.id).where(User.username == username)) is not None:
        raise Conflict(f"a user named {username} exists")
    user = User(username=username, name=name or username, email=email, is_admin=is_admin)
    session.add(user)
    await session.flush()
    return user


async def add_member(
    session: AsyncSession, org: Org, user: User, role: str = "collaborator"
) -> Membership:
    membership = await session.get(Membership, (org.id, user.id))
    if membership is None:
        membership = Membership(org_id=org.id, user_id=user.id, role=role)
        session.add(membership)
        await session.flush()
    return membership


async def org_user(
    session: AsyncSession, principal: Principal, org_id: uuid.UUID, user_id: uuid.UUID
) -> tuple[User, Membership | None]:
    """A user as seen from an org: a member of it, or an admin (who sees every org)."""
    await visible_org(session, principal, org_id)
    user = await session.get(User, user_id)
    membership = await session.get(Membership, (org_id, user_id))
    if user is None or (membership is None and not user.is_admin):
        raise NotFound("user", user_id)
    return user, membership


# --- tokens --------------------------------------------------------------------------------


async def create_token(
    session: AsyncSession, user: User, name: str, value: str | None = None
) -> tuple[ApiToken, str]:
    """A new token for ``user``; the value is returned once and only its hash is stored."""
    value = value or generate_token()
    digest = hash_token(value)
    if await session.scalar(select(ApiToken.id).where(ApiToken.token_hash == digest)) is not None:
        raise Conflict("that token value is already in use")
    token = ApiToken(user_id=user.id, name=name, token_hash=digest)
    session.add(token)
    await session.flush()
    return token, value


async def revoke_token(session: AsyncSession, token_id: uuid.UUID) -> None:
    token = await session.get(ApiToken, token_id)
    if token is None:
        raise NotFound("token", token_id)
    token.revoked_at = token.revoked_at or utcnow()


async def authenticate(session: AsyncSession, value: str) -> Principal | None:
    """The principal a token value stands for, or None (unknown, revoked, inactive user).

    On every request, so one query reads the token, its user and the user's memberships (a
    row per membership), by column; ``last_used_at`` is written only when it is older than
    :data:`LAST_USED_RESOLUTION`.
    """
    rows = (
        await session.execute(
            select(
                ApiToken.id,
                ApiToken.user_id,
                ApiToken.revoked_at,
                ApiToken.last_used_at,
                User.active,
                User.is_admin,
                Membership.org_id,
            )
            .join(User, User.id == ApiToken.user_id)
            .outerjoin(Membership, Membership.user_id == ApiToken.user_id)
            .where(ApiToken.token_hash == hash_token(value))
        )
    ).all()
    if not rows:
        return None
    row = rows[0]
    if row.revoked_at is not None or not row.active:
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        await session.execute(
            update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now)
        )
    return Principal(
        user_id=row.user_id,
        token_id=row.id,
        is_admin=row.is_admin,
        org_ids=frozenset(r.org_id for r in rows if r.org_id is not None),
    )


# --- console passwords ---------------------------------------------------------------------


async def set_password(
    session: AsyncSession, username: str, password: str, *, admin: bool = False
) -> User:
    """Set ``username``'s console password (argon2id); the user is created when missing and
    made a member of the first org."""
    try:
        digest = passwords.hash_password(password)
    except ValueError as exc:
        raise InvalidInput(str(exc), pointer="/password") from None
    if not username.strip():
        raise InvalidInput("the user name must not be empty", pointer="/username")
    user = await session.scalar(select(User).where(User.username == username))
    if user is None:
        user = await create_user(session, username, is_admin=admin)
        org = await session.scalar(select(Org).order_by(Org.id).limit(1))
        if org is not None:
            await add_member(session, org, user, role="admin" if admin else "collaborator")
    user.password_hash = digest
    await session.flush()
    return user


async def sign_in(session: AsyncSession, username: str, password: str) -> Principal | None:
    """The principal of an active user whose password matches, else None."""
    user = await session.scalar(select(User).where(User.username == username))
    stored = user.password_hash if user is not None and user.active else None
    if user is None or not passwords.verify(stored, password):
        return None
    if stored is not None and passwords.needs_rehash(stored):
        user.password_hash = passwords.hash_password(password)
    return await principal_of_user(session, user.id)


async def principal_of_user(session: AsyncSession, user_id: uuid.UUID) -> Principal | None:
    """A console session's principal (None when the user is gone or inactive)."""
    user = await session.get(User, user_id)
    if user is None or not user.active:
        return None
    org_ids = await session.scalars(select(Membership.org_id).where(Membership.user_id == user_id))
    return Principal(
        user_id=user.id, token_id=None, is_admin=user.is_admin, org_ids=frozenset(org_ids)
    )


async def home_org(session: AsyncSession, principal: Principal) -> Org:
    """The org a console user works in: the first one they see."""
    query = select(Org).order_by(Org.id).limit(1)
    if not principal.is_admin:
        query = query.where(Org.id.in_(principal.org_ids))
    org = await session.scalar(query)
    if org is None:
        raise NotFound("org of user", principal.user_id)
    return org


# --- first start ---------------------------------------------------------------------------

ADMIN_USERNAME = "admin"


async def bootstrap(
    session: AsyncSession,
    org_name: str,
    admin_token: str | None,
    admin_password: str | None = None,
) -> Org:
    """First start: one org, the admin user with ``admin_token`` if it is set, and the admin's
    console password if ``admin_password`` is set and the admin has none yet.

    Safe to run on every start and by several replicas at once (each step checks first, and
    the unique constraints stop a racing twin).
    """
    org = await session.scalar(select(Org).order_by(Org.id).limit(1))
    if org is None:
        org = await create_org(session, org_name)
    if admin_token:
        digest = hash_token(admin_token)
        if await session.scalar(select(ApiToken.id).where(ApiToken.token_hash == digest)) is None:
            admin = await session.scalar(select(User).where(User.username == ADMIN_USERNAME))
            if admin is None:
                admin = await create_user(
                    session, ADMIN_USERNAME, name="Administrator", is_admin=True
                )
            await add_member(session, org, admin, role="admin")
            await create_token(session, admin, "CRBROKER_ADMIN_TOKEN", admin_token)
    if admin_password:
        admin = await session.scalar(select(User).where(User.username == ADMIN_USERNAME))
        if admin is None or admin.password_hash is None:
            await set_password(session, ADMIN_USERNAME, admin_password, admin=True)
    return org
