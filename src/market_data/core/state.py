"""Book states shared by every output (Redis, shared memory, HTTP).

The numeric values are part of the shared-memory wire layout: never renumber.
"""

import enum


class BookState(enum.IntEnum):
    """Where a book stands in the synchronisation procedure.

    Consumers must be able to tell a live book from a stale one, so every
    published book carries one of these.
    """

    WAITING = 0  # no depth event buffered yet (startup, or after a reconnect)
    SYNCING = 1  # events buffered, waiting for / applying a REST snapshot
    LIVE = 2  # snapshot + continuous diffs: the book is correct
    PARTIAL = 3  # fed by a partial-depth stream (top N only, no snapshot needed)
    HALTED = 4  # the exchange lists the contract as not trading (delisted, settling)

    @property
    def trusted(self) -> bool:
        """Whether the levels of a book in this state may be published as current."""
        return self is BookState.LIVE or self is BookState.PARTIAL

    @property
    def label(self) -> str:
        """Lower-case name used in JSON payloads and logs."""
        return self.name.lower()
