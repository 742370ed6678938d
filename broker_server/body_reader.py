"""Reading a whole HTTP body under a size limit, charged to a memory budget as it arrives."""

from __future__ import annotations

from aiohttp import StreamReader

from broker_server.budget import Account, OverBudget


async def read_body(
    content: StreamReader, limit: int, account: Account | None = None
) -> bytes | None:
    """A whole HTTP body, or None as soon as it exceeds ``limit`` bytes.

    With ``account``, each piece is charged to it before it is kept (the caller gives the body's
    length back when done); :class:`OverBudget` if it does not fit, with nothing left charged.
    (``StreamReader.read(n)`` returns only what is buffered, so it cannot be used for this.)
    """
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in content.iter_any():
            size += len(chunk)
            if size > limit:
                if account is not None:
                    account.give(size - len(chunk))
                return None
            if account is not None:
                account.take(len(chunk))
            chunks.append(chunk)
    except OverBudget:
        assert account is not None
        account.give(size - len(chunk))
        raise
    return b"".join(chunks)
