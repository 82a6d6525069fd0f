"""Programs: trees of Specs, each implemented by one action, with predicted costs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from morello.core.rewrites import Action
from morello.core.spec import Spec


@dataclass(frozen=True, slots=True)
class Program:
    spec: Spec
    action: Action
    children: tuple[Program, ...]
    cost: float

    def walk(self) -> Iterator[Program]:
        yield self
        for child in self.children:
            yield from child.walk()

    def render_tree(self, *, color: bool = False) -> str:
        """An indented tree, one node a line: predicted cost, action, Spec."""
        lines: list[str] = []
        width = len(f"{self.cost:,.0f}")
        dim, bold, reset = ("\x1b[2m", "\x1b[1m", "\x1b[0m") if color else ("", "", "")

        def visit(node: Program, prefix: str, tail: str) -> None:
            cost = f"{node.cost:>{width},.0f}"
            lines.append(
                f"{dim}{cost}{reset}  {prefix}{bold}{node.action}{reset}  {dim}{node.spec}{reset}"
            )
            for i, child in enumerate(node.children):
                last = i == len(node.children) - 1
                visit(child, tail + ("└─ " if last else "├─ "), tail + ("   " if last else "│  "))

        visit(self, "", "")
        return "\n".join(lines)
