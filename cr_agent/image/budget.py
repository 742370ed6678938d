"""What one image may cost to read, over all its layers: decompressed bytes and tar entries.

The per-layer cap stops one bomb; an image of thousands of small bombs with distinct digests
passes every per-layer cap and the compressed-size cap, and would still take hours. Every
layer of an image charges one :class:`ImageBudget` (from worker threads, hence the lock) as
its bytes come out of the decompressor, and layers served from the cache charge what they
cost when they were read.
"""

from __future__ import annotations

import threading

from cr_agent.registry.errors import RegistryError


class ImageBudgetExceeded(RegistryError):
    """The image decompresses to more bytes, or more tar entries, than its budget allows."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "decompress")


class ImageBudget:
    def __init__(self, max_bytes: int, max_entries: int) -> None:
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self.bytes = 0
        self.entries = 0
        self._lock = threading.Lock()

    def charge(self, nbytes: int, entries: int) -> None:
        """Add a layer's output; raise :class:`ImageBudgetExceeded` once over either cap."""
        with self._lock:
            self.bytes += nbytes
            self.entries += entries
            total_bytes, total_entries = self.bytes, self.entries
        if total_bytes > self.max_bytes:
            raise ImageBudgetExceeded(
                f"the image decompresses to more than {self.max_bytes} bytes "
                "(MAX_IMAGE_UNCOMPRESSED_BYTES); not scanned"
            )
        if total_entries > self.max_entries:
            raise ImageBudgetExceeded(
                f"the image has more than {self.max_entries} tar entries "
                "(MAX_IMAGE_TAR_ENTRIES); not scanned"
            )
