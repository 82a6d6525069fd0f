"""Layouts of 2-D tensors: where element (i, j) of a buffer lives.

A layout is a formula from an index to an offset, given the buffer's leading dimension
``ld``. Every layout here is translation invariant for the tiles it allows: the offset of
(i0 + i, j0 + j) is offset(i0, j0) + offset(i, j). So a tile of a buffer is fully
described by a base pointer, a layout and a leading dimension. ``tile(step, cols)`` says
whether tiling the columns with the given step keeps that property (rows always do), and
which layout a tile ``cols`` wide has: a packed panel seen alone is plain row-major.
"""

from __future__ import annotations

from dataclasses import dataclass

CACHE_LINE = 64
EVEN_ODD_BLOCK = 16  # bf16 lanes in a 256-bit register: the unit the even/odd split works on


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _atom(x: str) -> str:
    return x if x.isidentifier() or x.isdigit() else f"({x})"


def mul(a: str, b: str) -> str:
    """The C expression a * b, folded where either side is a literal."""
    if "0" in (a, b):
        return "0"
    if a == "1" or b == "1":
        return b if a == "1" else a
    if a.isdigit() and b.isdigit():
        return str(int(a) * int(b))
    return f"{_atom(a)} * {_atom(b)}"


def add(*terms: str) -> str:
    """The C expression of a sum, with literal terms folded and zeros dropped."""
    const = sum(int(t) for t in terms if t.isdigit())
    rest = [t for t in terms if not t.isdigit()]
    if const:
        rest.append(str(const))
    return " + ".join(rest) if rest else "0"


@dataclass(frozen=True, slots=True)
class RowMajor:
    """(i, j) at i*ld + j."""

    def offset(self, i: int, j: int, ld: int) -> int:
        return i * ld + j

    def offset_expr(self, i: str, j: str, ld: str) -> str:
        return add(mul(i, ld), j)

    def tile(self, step: int, cols: int) -> Layout | None:
        return self

    def dense_ld(self, shape: tuple[int, int]) -> int:
        return shape[1]

    def buffer_elems(self, shape: tuple[int, int]) -> int:
        return shape[0] * shape[1]

    def contiguous_tile(self, tile: tuple[int, int], parent: tuple[int, int]) -> bool:
        return tile[0] == 1 or tile[1] == parent[1]

    def one_run(self, tile: tuple[int, int]) -> bool:
        return tile[0] == 1

    def lines(self, shape: tuple[int, int], elem: int, contiguous: bool) -> int:
        if contiguous:
            return _ceil_div(shape[0] * shape[1] * elem, CACHE_LINE)
        return shape[0] * _ceil_div(shape[1] * elem, CACHE_LINE)

    def __str__(self) -> str:
        return "row"


@dataclass(frozen=True, slots=True)
class ColMajor:
    """(i, j) at j*ld + i: B ``col`` is N rows of K values, the way LLM weights are stored."""

    def offset(self, i: int, j: int, ld: int) -> int:
        return j * ld + i

    def offset_expr(self, i: str, j: str, ld: str) -> str:
        return add(mul(j, ld), i)

    def tile(self, step: int, cols: int) -> Layout | None:
        return self

    def dense_ld(self, shape: tuple[int, int]) -> int:
        return shape[0]

    def buffer_elems(self, shape: tuple[int, int]) -> int:
        return shape[0] * shape[1]

    def contiguous_tile(self, tile: tuple[int, int], parent: tuple[int, int]) -> bool:
        return tile[1] == 1 or tile[0] == parent[0]

    def one_run(self, tile: tuple[int, int]) -> bool:
        return tile[1] == 1

    def lines(self, shape: tuple[int, int], elem: int, contiguous: bool) -> int:
        return RowMajor().lines((shape[1], shape[0]), elem, contiguous)

    def __str__(self) -> str:
        return "col"


@dataclass(frozen=True, slots=True)
class EvenOdd:
    """Row-major, but inside each block of 16 columns the even columns come first, then the
    odd ones. A 256-bit load of 16 bf16 from a plain row splits into its even and odd halves
    as f32 with one shift and one mask, without lane-crossing shuffles; a vector stored in
    this layout lines up with those halves. Rows are padded to a multiple of 16."""

    def offset(self, i: int, j: int, ld: int) -> int:
        b = EVEN_ODD_BLOCK
        return i * ld + (j - j % b) + (j % 2) * (b // 2) + (j % b) // 2

    def offset_expr(self, i: str, j: str, ld: str) -> str:
        if j.isdigit():
            return (
                str(self.offset(0, int(j), 0))
                if i == "0"
                else add(mul(i, ld), str(self.offset(0, int(j), 0)))
            )
        j = _atom(j)
        return add(mul(i, ld), f"({j} & ~15) + ({j} & 1) * 8 + (({j} & 15) >> 1)")

    def tile(self, step: int, cols: int) -> Layout | None:
        # Column tiles must start on a block boundary to keep the formula relative.
        return self if step % EVEN_ODD_BLOCK == 0 else None

    def dense_ld(self, shape: tuple[int, int]) -> int:
        return _ceil_div(shape[1], EVEN_ODD_BLOCK) * EVEN_ODD_BLOCK

    def buffer_elems(self, shape: tuple[int, int]) -> int:
        return shape[0] * self.dense_ld(shape)

    def contiguous_tile(self, tile: tuple[int, int], parent: tuple[int, int]) -> bool:
        return tile[0] == 1 or tile[1] == parent[1]

    def one_run(self, tile: tuple[int, int]) -> bool:
        return tile[0] == 1

    def lines(self, shape: tuple[int, int], elem: int, contiguous: bool) -> int:
        return RowMajor().lines((shape[0], self.dense_ld(shape)), elem, contiguous)

    def __str__(self) -> str:
        return "evenodd"


@dataclass(frozen=True, slots=True)
class Packed:
    """Panels of ``width`` columns, each panel stored row-major and the panels one after
    another: (i, j) at (j // width) * ld * width + i * width + j % width, with ld the
    number of rows. A tile no wider than a panel and inside one is plain row-major with
    leading dimension ``width``: a packed B panel for a register-blocked kernel."""

    width: int

    def offset(self, i: int, j: int, ld: int) -> int:
        w = self.width
        return (j // w) * ld * w + i * w + j % w

    def offset_expr(self, i: str, j: str, ld: str) -> str:
        w = str(self.width)
        if j.isdigit():
            panel, col = divmod(int(j), self.width)
            return add(mul(str(panel), mul(ld, w)), mul(i, w), str(col))
        j = _atom(j)
        return add(mul(f"{j} / {w}", mul(ld, w)), mul(i, w), f"{j} % {w}")

    def tile(self, step: int, cols: int) -> Layout | None:
        if step % self.width and self.width % step:
            return None  # some tile would straddle a panel boundary
        return self if cols > self.width else ROW

    def dense_ld(self, shape: tuple[int, int]) -> int:
        return shape[0]

    def buffer_elems(self, shape: tuple[int, int]) -> int:
        return shape[0] * _ceil_div(shape[1], self.width) * self.width

    def contiguous_tile(self, tile: tuple[int, int], parent: tuple[int, int]) -> bool:
        whole_panels = tile[1] % self.width == 0 and tile[0] == parent[0]
        return tile == parent or whole_panels or self.one_run(tile)

    def one_run(self, tile: tuple[int, int]) -> bool:
        return tile[0] == 1 and tile[1] <= self.width

    def lines(self, shape: tuple[int, int], elem: int, contiguous: bool) -> int:
        panels = _ceil_div(shape[1], self.width)
        if contiguous:
            return _ceil_div(shape[0] * panels * self.width * elem, CACHE_LINE)
        return panels * shape[0] * _ceil_div(self.width * elem, CACHE_LINE)

    def __str__(self) -> str:
        return f"packed{self.width}"


Layout = RowMajor | ColMajor | EvenOdd | Packed

ROW = RowMajor()
COL = ColMajor()
EVEN_ODD = EvenOdd()


def parse_layout(text: str) -> Layout:
    """The layouts a user can give an operand of the public contract."""
    match text.strip().lower():
        case "row":
            return ROW
        case "col":
            return COL
    raise ValueError(f"unknown layout {text!r} (known: row, col)")
