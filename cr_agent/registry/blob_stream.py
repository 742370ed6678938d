"""One blob's bytes as they arrive, hashed and counted against its descriptor."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

from cr_agent.registry.errors import DigestMismatch, RegistryUnreachable, UnsupportedManifest
from cr_agent.registry.transport import BodyInterrupted, Response


class BlobStream:
    """Chunks of one blob; the digest (and size, when known) are checked as the bytes pass."""

    def __init__(self, response: Response, digest: str, size: int | None, chunk_size: int) -> None:
        self._response = response
        self.digest = digest
        self.size = size
        self._chunk_size = chunk_size
        algorithm, _, self._expected = digest.partition(":")
        if algorithm not in ("sha256", "sha512"):
            raise UnsupportedManifest(f"blob {digest}: unsupported digest algorithm", "blob")
        self._hash = hashlib.new(algorithm)
        self.bytes_read = 0

    def update(self, chunk: bytes) -> None:
        """Hash a chunk yourself (e.g. in a worker thread) after ``chunks(verify=False)``."""
        self._hash.update(chunk)

    async def chunks(self, *, verify: bool = True) -> AsyncIterator[bytes]:
        """The blob's bytes. With ``verify=False`` the caller hashes each chunk with
        :meth:`update` and calls :meth:`verify` at the end (so hashing can leave the loop)."""
        try:
            async for chunk in self._response.chunks(self._chunk_size):
                self.bytes_read += len(chunk)
                if self.size is not None and self.bytes_read > self.size:
                    raise DigestMismatch(
                        f"blob {self.digest} is larger than the {self.size} bytes its descriptor says",
                        "blob",
                    )
                if verify:
                    self._hash.update(chunk)
                yield chunk
        except BodyInterrupted as exc:
            raise RegistryUnreachable(
                f"blob {self.digest}: {exc} after {self.bytes_read} bytes", "blob"
            ) from None
        if verify:
            self.verify()

    def verify(self) -> None:
        """Raise :class:`DigestMismatch` unless every byte arrived and hashes to the digest."""
        if self.size is not None and self.bytes_read != self.size:
            raise DigestMismatch(
                f"blob {self.digest}: got {self.bytes_read} bytes, descriptor says {self.size}",
                "blob",
            )
        actual = self._hash.hexdigest()
        if actual != self._expected:
            raise DigestMismatch(
                f"blob {self.digest}: content hashes to {self._hash.name}:{actual}", "blob"
            )
