"""A task's writes ride with the checkpoint that follows them: one commit per super-step.

LangGraph saves a task's writes (``put_writes``) as the task ends, and the next checkpoint
(``put``) moments later, once the super-step's tasks are done; each call runs on a worker
thread (or asyncio task) of its own. PostgresSaver commits each alone: two round trips and
two commits per super-step. Here ``put_writes`` *offers* its statements and waits briefly
(:data:`WAIT_S`) for the ``put`` whose parent is the writes' checkpoint; that ``put`` sends
them ahead of its own rows in its one pipeline, and ``put_writes`` returns once that
transaction has committed. So when ``put_writes`` returns its rows are as durable as
before, and the checkpoint is never visible without the writes that led to it.

Errors and interrupts are never offered (see :func:`.writes.writes_write`). When no such
``put`` comes in time (a node that raised an interrupt, a sibling task still running, a
``DeltaChannel`` checkpoint that waits for its writes first) or the joint write fails, the
writes go alone, exactly as before. A thread whose checkpoints come only after their
writes gave up, :data:`MISSES` times in a row, is not waited for again (by this saver, for
the next :data:`_REMEMBER` such threads). Offers only meet a ``put`` of the same scope
(tenant and owner), so one tenant's writes never share a transaction with another's.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # writes imports base, which makes each saver a Coalescer
    from .writes import Key, Write

__all__ = ["WAIT_S", "Coalescer", "Offer"]

#: Seconds ``put_writes`` waits for the ``put`` to carry its rows. LangGraph starts that
#: ``put`` well under a millisecond after the last task's writes (measured on a 2-core
#: machine); a ``put`` arriving later only misses the ride.
WAIT_S = 0.003
#: Checkpoints in a row that came after their writes gave up, before a thread's writes stop
#: waiting (a ``DeltaChannel`` checkpoint always waits for its writes).
MISSES = 3
_REMEMBER = 4096


class Signal(Protocol):
    """``threading.Event`` or ``asyncio.Event``: set once the offer is settled."""

    def set(self) -> None: ...


@dataclass(eq=False)
class Offer:
    """A task's writes waiting for a ``put``; :attr:`error` is the joint write's failure."""

    write: Write
    done: Signal
    taken: bool = False
    error: BaseException | None = None


def _remember(lru: OrderedDict[Hashable, int], key: Hashable, value: int = 0) -> None:
    lru[key] = value
    lru.move_to_end(key)
    while len(lru) > _REMEMBER:
        lru.popitem(last=False)


class Coalescer:
    """The offers of one saver (thread-safe: sync savers call it from worker threads)."""

    def __init__(self, wait: float = WAIT_S) -> None:
        #: Seconds an offer waits for its ``put``.
        self.wait = wait
        self._lock = threading.Lock()
        self._offers: dict[Key, list[Offer]] = {}
        self._gave_up: OrderedDict[Hashable, int] = OrderedDict()
        #: (thread, namespace) -> checkpoints in a row that came after their writes gave up
        self._misses: OrderedDict[Hashable, int] = OrderedDict()

    def offer(self, write: Write, done: Signal) -> Offer | None:
        """Offer a task's ``write`` to the ``put`` that follows its checkpoint; None (write
        it alone, now) when that thread's checkpoints come too late to wait for."""
        key = write.key
        if key is None:
            return None
        with self._lock:
            if self._misses.get(key[:2], 0) >= MISSES:
                return None
            offer = Offer(write, done)
            self._offers.setdefault(key, []).append(offer)
        return offer

    def withdraw(self, offer: Offer) -> bool:
        """After waiting in vain: True when the offer was still waiting (now withdrawn: its
        owner writes alone), False when a ``put`` took it meanwhile (its outcome follows)."""
        key = offer.write.key
        assert key is not None
        with self._lock:
            if offer.taken:
                return False
            waiting = self._offers[key]
            waiting.remove(offer)
            if not waiting:
                del self._offers[key]
            _remember(self._gave_up, key)
        return True

    def take(self, write: Write) -> list[Offer]:
        """The offers waiting for checkpoint ``write`` (its key: its parent), their
        statements put ahead of its own."""
        key = write.key
        if key is None:
            return []
        with self._lock:
            offers = self._offers.pop(key, [])
            for offer in offers:
                offer.taken = True
            if offers:
                self._misses.pop(key[:2], None)
            elif self._gave_up.pop(key, None) is not None:  # its writes gave up before it came
                _remember(self._misses, key[:2], self._misses.get(key[:2], 0) + 1)
        if offers:
            write.queries[:0] = [q for offer in offers for q in offer.write.queries]
        return offers

    @contextmanager
    def carrying(self, write: Write) -> Iterator[None]:
        """Around the write of checkpoint ``write``: it carries the offers waiting for it
        (:meth:`take`), whose owners learn how it ended (:meth:`settle`)."""
        offers = self.take(write)
        try:
            yield
        except BaseException as exc:
            self.settle(offers, exc)
            raise
        self.settle(offers)

    @staticmethod
    def settle(offers: Sequence[Offer], error: BaseException | None = None) -> None:
        """Tell the owners of ``offers`` how the joint write ended."""
        for offer in offers:
            offer.error = error
            offer.done.set()
