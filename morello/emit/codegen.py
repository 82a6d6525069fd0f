"""The AVX2 C++ renderer: a program tree in, a self-contained header out.

Python decides everything (loop bounds, pointers, strides, register names); the Jinja
templates under ``templates/`` only spell the C++. Operands are tracked as views: a
pointer to the tile's first element with its layout and leading dimension, or a block
of named ``__m256`` variables for a tile held in vector registers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache

import jinja2

from morello import __version__
from morello.core.dtypes import Dtype
from morello.core.kernels import DOT_PREFETCH_BYTES, Kernel, KernelKind, is_even_odd_widening
from morello.core.layout import EVEN_ODD, ROW, Layout, Packed, RowMajor, add
from morello.core.program import Program
from morello.core.rewrites import Dim, Move, Promote, Tile, ToAccum
from morello.core.spec import Op, Spec, TensorSpec
from morello.core.target import F32_LANES, Level
from morello.emit import TEMPLATES
from morello.emit.names import check_name

INDENT = "  "
# Bytes of copies a kernel keeps on the stack at once, along any path of nested scopes
# (a task the caller runs itself counts its caller's too): small and free, but a host
# pool's threads may have stacks of 64 KiB or less. Larger copies take heap scratch.
STACK_COPY_BYTES = 4096
SCRATCH_ALIGN = 64  # bytes: a cache line, and what the stack arrays are aligned to


@cache
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


@cache
def _macros():
    return _env().get_template("kernels.hpp.j2").module


@dataclass(frozen=True, slots=True)
class MemView:
    """A tile in memory: ``base[offset + layout(i, j)]``."""

    base: str
    offset: str
    layout: Layout
    ld: int
    dtype: Dtype

    def _index(self, i: object, j: object) -> str:
        return add(self.offset, self.layout.offset_expr(str(i), str(j), str(self.ld)))

    def elem(self, i: object, j: object) -> str:
        return f"{self.base}[{self._index(i, j)}]"

    def value(self, i: object, j: object) -> str:
        """The element as a float expression."""
        e = self.elem(i, j)
        return f"detail::bf16_to_f32({e})" if self.dtype == Dtype.BF16 else e

    def from_column(self, j: str) -> MemView:
        """The same buffer seen from column ``j`` on."""
        return replace(self, offset=self._index(0, j))

    def at(self, i: object, j: object) -> str:
        index = self._index(i, j)
        return self.base if index == "0" else f"({self.base} + {index})"

    def tile(self, i: object, j: object, spec: TensorSpec) -> MemView:
        # A packed panel seen alone is row-major with the panel's width as leading dimension.
        packed = isinstance(self.layout, Packed) and isinstance(spec.layout, RowMajor)
        ld = self.layout.width if packed else self.ld  # type: ignore[union-attr]
        return MemView(self.base, self._index(i, j), spec.layout, ld, self.dtype)


@dataclass(frozen=True, slots=True)
class RegView:
    name: str


View = MemView | RegView


@dataclass(slots=True)
class _Scratch:
    """The heap scratch of one region: the kernel's body outside any parallel loop, or one
    task of it. Its copies are laid out like a stack frame: each one at the offset where
    the copies live around it end, so copies live at once never overlap and siblings
    (a loop's main and boundary tiles) share bytes. ``name`` is given at the first copy."""

    name: str | None = None
    top: int = 0  # bytes held by the copies around the one being emitted
    size: int = 0  # the most held at once: what the region takes


class _Emitter:
    def __init__(self, threads: int, prefetch_bytes: int) -> None:
        self.threads = threads
        self.prefetch_bytes = prefetch_bytes
        self.counter = 0
        self.stack_bytes = 0  # of copies on the stack around the node being emitted
        self.scratch = _Scratch()

    def region(self, emit: Callable[[], list[str]]) -> list[str]:
        """The lines ``emit`` makes, preceded by the request for the heap scratch their
        copies need. Each region asks once, on the thread that runs it: a task for its
        own copies (tasks run at once on different threads), the body for those it
        shares with its tasks. A request made while another is held (a task run by the
        thread that holds its caller's scratch) gets another block: ``detail::Scratch``
        hands out a block to one holder at a time."""
        outer, self.scratch = self.scratch, _Scratch()
        lines = emit()
        inner, self.scratch = self.scratch, outer
        if inner.name is None:
            return lines
        return [f"detail::Scratch {inner.name}({inner.size});", *lines]

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def emit(self, node: Program, views: tuple[View, ...]) -> list[str]:
        match node.action:
            case Kernel():
                return _kernel(node.action, node.spec, views, self.prefetch_bytes).splitlines()
            case Promote():
                return self.emit(node.children[0], views)
            case ToAccum():
                zero, accum = node.children
                return self.emit(zero, views[2:]) + self.emit(accum, views)
            case Tile():
                return self._tile(node, node.action, views)
            case Move():
                return self._move(node, node.action, views)
        raise AssertionError(node.action)

    def _tile(self, node: Program, tile: Tile, views: tuple[View, ...]) -> list[str]:
        loop = tile.loop(node.spec)
        full = loop.covered
        var = self.fresh(tile.dim.value)

        def body(child: Program) -> list[str]:
            return self.emit(child, _tile_views(views, child.spec, tile.dim, var))

        if tile.parallel:

            def task() -> list[str]:
                main = body(node.children[0])
                if len(node.children) == 1:
                    return main
                rest = body(node.children[1])
                return [f"if ({var} < {full}) {{", *_indent(main), "} else {", *_indent(rest), "}"]

            return [
                f"parallel_for(std::size_t{{{loop.tasks}}}, [&](std::size_t task) {{",
                f"{INDENT}const int64_t {var} = static_cast<int64_t>(task) * {tile.size};",
                *_indent(self.region(task)),
                "});",
            ]
        main = body(node.children[0])
        rest = body(node.children[1]) if len(node.children) > 1 else None
        lines = [
            f"for (int64_t {var} = 0; {var} < {full}; {var} += {tile.size}) {{",
            *_indent(main),
            "}",
        ]
        if rest is not None:
            lines += ["{", f"{INDENT}const int64_t {var} = {full};", *_indent(rest), "}"]
        return lines

    def _move(self, node: Program, move: Move, views: tuple[View, ...]) -> list[str]:
        body = next(c for c in node.children if c.spec.op != Op.MOVE)
        new_spec = body.spec.operands[move.operand]
        old = views[move.operand]
        stack, offset = self.stack_bytes, self.scratch.top
        if move.level == Level.VRF:
            name = self.fresh("v")
            rows, cols = new_spec.shape
            regs = [f"{name}_{i}_{v}" for i in range(rows) for v in range(-(-cols // F32_LANES))]
            decl = f"__m256 {', '.join(regs)};"
            new: View = RegView(name)
        else:
            name = self.fresh("buf")
            c_type = new_spec.dtype.c_type
            elems = new_spec.layout.buffer_elems(new_spec.shape)
            size = elems * new_spec.dtype.size
            if stack + size <= STACK_COPY_BYTES:
                decl = f"alignas({SCRATCH_ALIGN}) {c_type} {name}[{elems}];"
                self.stack_bytes += size
            else:
                region = self.scratch
                region.name = region.name or self.fresh("scratch")
                region.top += -(-size // SCRATCH_ALIGN) * SCRATCH_ALIGN
                region.size = max(region.size, region.top)
                at = f"{region.name}.at({offset})"
                decl = f"{c_type}* __restrict const {name} = static_cast<{c_type}*>({at});"
            ld = new_spec.layout.dense_ld(new_spec.shape)
            new = MemView(name, "0", new_spec.layout, ld, new_spec.dtype)
        body_views = tuple(new if i == move.operand else v for i, v in enumerate(views))
        lines = ["{", INDENT + decl]
        # Children run in order: the copy in (if any), the body, the copy back out (if any).
        body_index = next(i for i, c in enumerate(node.children) if c.spec.op != Op.MOVE)
        for index, child in enumerate(node.children):
            if child.spec.op == Op.MOVE:
                loading = index < body_index  # by position: source and copy may be alike
                child_views = (old, new) if loading else (new, old)
            else:
                child_views = body_views
            lines += _indent(self.emit(child, child_views))
        self.stack_bytes, self.scratch.top = stack, offset  # the copy's scope ends here
        return [*lines, "}"]


def _indent(lines: list[str], depth: int = 1) -> list[str]:
    return [INDENT * depth + line if line else line for line in lines]


def _tile_views(views: tuple[View, ...], child: Spec, dim: Dim, var: str) -> tuple[View, ...]:
    a, b, c = views
    sa, sb, sc = child.operands
    assert isinstance(a, MemView) and isinstance(b, MemView)
    match dim:
        case Dim.M:
            return a.tile(var, 0, sa), b, _tile_c(c, var, 0, sc)
        case Dim.N:
            return a, b.tile(0, var, sb), _tile_c(c, 0, var, sc)
        case Dim.K:
            return a.tile(0, var, sa), b.tile(var, 0, sb), c
    raise AssertionError(dim)


def _tile_c(c: View, i: object, j: object, spec: TensorSpec) -> View:
    assert isinstance(c, MemView), "register tiles are not tiled further"
    return c.tile(i, j, spec)


def _kernel(kernel: Kernel, spec: Spec, views: tuple[View, ...], prefetch_bytes: int) -> str:
    mac = _macros()
    match kernel.kind:
        case KernelKind.OUTER_FMA:
            a, b, c = views
            assert isinstance(a, MemView) and isinstance(b, MemView) and isinstance(c, RegView)
            mr, nr = spec.operands[2].shape
            nb = -(-nr // F32_LANES)
            return mac.outer_fma(
                c.name,
                mr,
                nb,
                [b.at(0, F32_LANES * v) for v in range(nb)],
                b.dtype == Dtype.BF16,
                nr - F32_LANES * (nb - 1),
                [a.value(i, 0) for i in range(mr)],
            )
        case KernelKind.DOT | KernelKind.DOT_BLOCK:
            return _dot(kernel, spec, views, prefetch_bytes)
        case KernelKind.ZERO_VRF:
            (c,) = views
            assert isinstance(c, RegView)
            mr, nr = spec.operands[0].shape
            return mac.zero_vrf(c.name, mr, -(-nr // F32_LANES))
        case KernelKind.ZERO_MEM:
            (c,) = views
            assert isinstance(c, MemView)
            rows, cols = spec.operands[0].shape
            return mac.zero_mem(rows, cols, c.elem("i", "j"))
        case KernelKind.LOAD_VRF | KernelKind.STORE_VRF:
            loading = kernel.kind == KernelKind.LOAD_VRF
            mem, reg = views if loading else views[::-1]
            assert isinstance(mem, MemView) and isinstance(reg, RegView)
            mr, nr = spec.operands[0].shape
            nb = -(-nr // F32_LANES)
            macro = mac.load_vrf if loading else mac.store_vrf
            return macro(
                reg.name,
                mr,
                nb,
                nr - F32_LANES * (nb - 1),
                [[mem.at(i, F32_LANES * v) for v in range(nb)] for i in range(mr)],
                isinstance(mem.layout, RowMajor),
                [[mem.elem(i, j) for j in range(nr)] for i in range(mr)],
            )
        case KernelKind.COPY:
            src, dst = views
            assert isinstance(src, MemView) and isinstance(dst, MemView)
            rows, cols = spec.operands[0].shape
            if isinstance(dst.layout, Packed) and cols > dst.layout.width:
                return _panel_copy(src, dst, rows, cols, dst.layout.width)
            fast = None
            if is_even_odd_widening(*spec.operands):
                fast = {"src_row": src.at("i", 0), "dst_row": dst.at("i", 0)}
            return mac.copy(rows, cols, dst.elem("i", "j"), _copied(src, dst), fast)
        case KernelKind.SCALAR_FMA:
            a, b, c = views
            assert isinstance(a, MemView) and isinstance(b, MemView) and isinstance(c, MemView)
            return mac.scalar_fma(c.elem(0, 0), a.value(0, 0), b.value(0, 0))
    raise AssertionError(kernel)


def _copied(src: MemView, dst: MemView) -> str:
    return src.value("i", "j") if dst.dtype == Dtype.F32 else src.elem("i", "j")


def _panel_copy(src: MemView, dst: MemView, rows: int, cols: int, width: int) -> str:
    """Packing, one panel at a time within each row: both sides of the inner loop are
    unit-stride, so the compiler vectorizes it, which the packed layout's ``j / width``
    index in a single loop over all columns prevents."""
    s = src.from_column("jp")
    d = replace(dst.from_column("jp"), layout=ROW, ld=width)
    full, tail = divmod(cols, width)
    return _macros().panel_copy(rows, full * width, width, d.elem("i", "j"), _copied(s, d), tail)


def _b_ahead(k: int, ld: int, size: int, distance: int, columns: int) -> Callable[[str, str], str]:
    """The address ``distance`` bytes of B ahead of element ``kk`` of a column ``br``, in
    the order the kernel and its callers read B: down the column, then on to the column
    read after it, ``columns`` columns (``ld`` elements each) further. A column that is all
    of a row of the caller's B runs straight on into the next; one that a K split cut short
    does not, and prefetching straight ahead would fetch the rest of its own row, which is
    read a whole pass later, while the column read next starts cold."""
    if ld == k and columns == 1:
        return lambda br, kk: f"reinterpret_cast<const char*>({br} + {kk}) + {distance}"
    ahead = distance // size

    def address(br: str, kk: str) -> str:
        later = f"({kk} + {ahead})"
        return (
            f"reinterpret_cast<const char*>({br} + {later} / {k} * {ld * columns} + {later} % {k})"
        )

    return address


def _dot(kernel: Kernel, spec: Spec, views: tuple[View, ...], prefetch_bytes: int) -> str:
    a, b, c = views
    assert isinstance(a, MemView) and isinstance(b, MemView) and isinstance(c, MemView)
    assert kernel.mode is not None
    mr, k, nr = spec.mkn

    def tail_a(row: str) -> str:
        index = "(kk & ~15) + (kk & 1) * 8 + ((kk & 15) >> 1)" if a.layout == EVEN_ODD else "kk"
        elem = f"{row}[{index}]"
        return f"detail::bf16_to_f32({elem})" if a.dtype == Dtype.BF16 else elem

    tail_b = "detail::bf16_to_f32({br}[kk])" if b.dtype == Dtype.BF16 else "{br}[kk]"
    common = {
        "mode": kernel.mode.value,
        "k": k,
        "a_type": a.dtype.c_type,
        "b_type": b.dtype.c_type,
        "overwrite": spec.op == Op.MATMUL,
        "b_size": b.dtype.size,
    }
    if kernel.kind == KernelKind.DOT_BLOCK:
        # With streams, the block steps through its runs of columns side by side: column
        # js of each run at step js. A run's next column is the one it reads next.
        streams = kernel.streams
        steps = nr // streams if streams > 1 else 1
        live = [add("js", str(s * steps)) for s in range(streams)] if streams > 1 else range(nr)
        columns = [
            {
                "b_row": b.at(0, j),
                "c_elems": [c.elem(i, j) for i in range(mr)],
                "a_elems": [tail_a(f"ar{i}") for i in range(mr)],
                "b_elem": tail_b.format(br=f"br{index}"),
            }
            for index, j in enumerate(live)
        ]
        block = _macros().dot_block(
            a_rows=[a.at(i, 0) for i in range(mr)],
            columns=columns,
            b_ahead=_b_ahead(k, b.ld, b.dtype.size, prefetch_bytes, 1 if streams > 1 else nr),
            **common,
        )
        if streams == 1:
            return block
        return f"for (int64_t js = 0; js < {steps}; ++js) {block}"
    outputs = [
        {
            "a_row": a.at(i, 0),
            "b_row": b.at(0, j),
            "c_elem": c.elem(i, j),
            "a_elem": tail_a("ar"),
            "b_elem": tail_b.format(br="br"),
        }
        for i in range(mr)
        for j in range(nr)
    ]
    b_ahead = _b_ahead(k, b.ld, b.dtype.size, prefetch_bytes, 1)
    return _macros().dot(unroll=kernel.unroll, outputs=outputs, b_ahead=b_ahead, **common)


def render_body(
    program: Program,
    threads: int,
    prefetch_bytes: int = DOT_PREFETCH_BYTES,
    b_stride: int | None = None,
) -> str:
    spec = program.spec
    lds = [t.layout.dense_ld(t.shape) for t in spec.operands]
    lds[1] = b_stride or lds[1]
    views = tuple(
        MemView(name, "0", t.layout, ld, t.dtype)
        for name, t, ld in zip("abc", spec.operands, lds, strict=True)
    )
    emitter = _Emitter(threads, prefetch_bytes)
    return "\n".join(_indent(emitter.region(lambda: emitter.emit(program, views))))


def contract(spec: Spec, bias: str | None = None) -> str:
    m, k, n = spec.mkn
    a, b, c = spec.operands
    op = "+=" if spec.op == Op.MATMUL_ACCUM and bias != "store" else "="
    plus = f" + bias[{n}] (f32, the same for every row)" if bias else ""
    return (
        f"C[{m}x{n}] {op} A[{m}x{k}] · B[{k}x{n}]{plus}; A {a.dtype.value} {a.layout}, "
        f"B {b.dtype.value} {b.layout}, C {c.dtype.value} {c.layout}"
    )


def _bias_prologue(spec: Spec, bias: str) -> str:
    """Write (or add) the bias into C; the program then accumulates A·B onto it. One pass
    over C, which a matrix-vector product reads far less of than it reads of B."""
    m, _, n = spec.mkn
    c = spec.operands[2]
    at = c.layout.offset_expr("i", "j", str(c.layout.dense_ld(c.shape)))
    op = "=" if bias == "store" else "+="
    return (
        f"  for (int64_t i = 0; i < {m}; ++i) {{\n"
        f"    for (int64_t j = 0; j < {n}; ++j) c[{at}] {op} bias[j];\n"
        "  }"
    )


_PREFETCHING = (KernelKind.DOT, KernelKind.DOT_BLOCK)  # kernels that prefetch B ahead


def _uses(program: Program, *kinds: KernelKind) -> bool:
    return any(isinstance(n.action, Kernel) and n.action.kind in kinds for n in program.walk())


def render_header(
    program: Program,
    name: str,
    *,
    threads: int = 1,
    bias: str | None = None,
    prefetch_bytes: int = DOT_PREFETCH_BYTES,
    b_stride: int | None = None,
) -> str:
    """``bias``: None, "store" (C = A·B + bias) or "add" (C += A·B + bias); either needs a
    program that accumulates onto C. ``b_stride``: the elements from one row of B's
    storage to the next, when they are padded (default: its dense leading dimension)."""
    check_name(name)
    spec = program.spec
    if bias is not None and (bias not in ("store", "add") or spec.op != Op.MATMUL_ACCUM):
        raise ValueError(f"bias {bias!r} needs an accumulating program and 'store' or 'add'")
    a, b, _ = spec.operands
    dense_b = b.layout.dense_ld(b.shape)
    if b_stride is not None and b_stride < dense_b:
        raise ValueError(f"B's stride {b_stride} is shorter than its rows ({dense_b})")
    return (
        _env()
        .get_template("header.hpp.j2")
        .render(
            version=__version__,
            name=name,
            spec=str(spec),
            cost=f"{program.cost:,.0f}",
            threads=threads,
            tree=program.render_tree().splitlines(),
            contract=contract(spec, bias),
            a_type=a.dtype.c_type,
            b_type=b.dtype.c_type,
            bias=bias is not None,
            m=spec.mkn[0],
            k=spec.mkn[1],
            n=spec.mkn[2],
            a_dtype=a.dtype.value,
            b_dtype=b.dtype.value,
            layouts=[str(t.layout) for t in spec.operands],
            accumulate=spec.op == Op.MATMUL_ACCUM and bias != "store",
            prologue=_bias_prologue(spec, bias) if bias else "",
            b_ld=b_stride or dense_b,
            body=render_body(program, threads, prefetch_bytes, b_stride),
            prefetch_bytes=prefetch_bytes if _uses(program, *_PREFETCHING) else None,
        )
    )
