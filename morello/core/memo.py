"""Where the search keeps solved Specs. The search talks to a ``Memo`` only, so the
persistent, compressed table can replace the in-memory one without touching it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from morello.core.cost import DEFAULT_MODEL, CostModel
from morello.core.rewrites import Action
from morello.core.spec import Spec


@dataclass(frozen=True, slots=True)
class Solution:
    """The best action for a Spec and the cost of the program it leads to; ``action`` is
    None for a Spec that no program implements."""

    action: Action | None
    cost: float


class Memo(Protocol):
    model: CostModel  # what its costs were computed with: a table is of one model

    def get(self, spec: Spec, threads: int) -> Solution | None: ...

    def put(self, spec: Spec, threads: int, solution: Solution) -> None: ...

    def __len__(self) -> int: ...

    def flush(self) -> None:
        """Make every solution put so far durable (a no-op for memory)."""

    def close(self) -> None: ...


class InMemoryMemo:
    """A dict. Serial Specs do not depend on the thread count, so they share entries."""

    def __init__(self, model: CostModel = DEFAULT_MODEL) -> None:
        self.model = model
        self._table: dict[tuple[Spec, int], Solution] = {}

    @staticmethod
    def _key(spec: Spec, threads: int) -> tuple[Spec, int]:
        return spec, 1 if spec.serial else threads

    def get(self, spec: Spec, threads: int) -> Solution | None:
        return self._table.get(self._key(spec, threads))

    def put(self, spec: Spec, threads: int, solution: Solution) -> None:
        self._table[self._key(spec, threads)] = solution

    def __len__(self) -> int:
        return len(self._table)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass
