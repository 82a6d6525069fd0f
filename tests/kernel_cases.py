"""The kernels the numerical tests synthesize, compile once and check against numpy."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Case:
    shape: tuple[int, int, int]
    dtypes: tuple[str, str, str]
    b_layout: str = "row"
    accumulate: bool = False
    threads: int = 1

    sample: int | None = None  # a random program of the space instead of the optimum
    a_layout: str = "row"
    c_layout: str = "row"
    bias: bool = False  # + bias[N]: the program accumulates onto C after the bias is set
    forced: str = ""  # a root action the optimum would not take: see conftest.FORCED
    b_pad: int = 0  # elements of padding after each row of B's storage (gemma pads weights)

    @property
    def b_stride(self) -> int | None:
        """B's rows apart in its storage, when padded."""
        if not self.b_pad:
            return None
        _, k, n = self.shape
        return (k if self.b_layout == "col" else n) + self.b_pad

    @property
    def bias_mode(self) -> str | None:
        return None if not self.bias else "add" if self.accumulate else "store"

    @property
    def name(self) -> str:
        m, k, n = self.shape
        a, b, _ = self.dtypes
        acc = ("_acc" if self.accumulate else "") + ("_bias" if self.bias else "")
        rnd = "" if self.sample is None else f"_random{self.sample}"
        rnd += f"_{self.forced}" if self.forced else ""
        rnd += f"_pad{self.b_pad}" if self.b_pad else ""
        ac = (
            ""
            if (self.a_layout, self.c_layout) == ("row", "row")
            else (f"_A{self.a_layout}_C{self.c_layout}")
        )
        return f"mm_{m}x{k}x{n}_{a}_{b}_{self.b_layout}{ac}{acc}_t{self.threads}{rnd}"

    @property
    def layouts(self) -> str:
        return f"{self.a_layout},{self.b_layout},{self.c_layout}"


F32 = ("f32", "f32", "f32")
BF16 = ("bf16", "bf16", "f32")

CASES: tuple[Case, ...] = (
    # Every M the issue names, both dtypes, both B layouts, K and N powers of two.
    *(
        Case((m, 64, 32), dt, lay)
        for m in (1, 2, 3, 4, 7, 16)
        for dt in (F32, BF16)
        for lay in ("row", "col")
    ),
    # Ragged K and N: boundary tiles and scalar tails everywhere.
    Case((1, 1000, 3000), BF16, "col"),
    Case((1, 1000, 3000), F32, "row"),
    Case((3, 100, 70), F32, "row"),
    Case((7, 33, 45), BF16, "row"),
    Case((2, 50, 9), BF16, "col"),
    # Microkernel edges, XNNPACK style: K = 1, K below, at and above a 16-element block,
    # N below, at and above a vector, for both dtypes and both B layouts.
    *(
        Case((m, k, n), dt, lay)
        for (m, k, n) in ((5, 1, 7), (1, 15, 9), (2, 16, 8), (1, 17, 17), (6, 33, 23))
        for dt in (F32, BF16)
        for lay in ("row", "col")
    ),
    # A and C column-major too: every operand may come in either layout.
    Case((3, 40, 24), F32, "row", a_layout="col"),
    Case((5, 32, 20), BF16, "col", accumulate=True, c_layout="col"),
    Case((4, 48, 17), ("f32", "bf16", "f32"), "row", a_layout="col", c_layout="col"),
    Case((1, 300, 50), BF16, "col", threads=2, a_layout="col", c_layout="col"),
    # Accumulate.
    Case((4, 64, 32), F32, "row", accumulate=True),
    Case((1, 256, 64), BF16, "col", accumulate=True),
    Case((16, 40, 24), BF16, "row", accumulate=True),
    # Mixed dtypes: an f32 activation against bf16 weights, and the reverse.
    Case((1, 256, 96), ("f32", "bf16", "f32"), "col"),
    Case((4, 64, 48), ("bf16", "f32", "f32"), "row"),
    # Two threads through the parallel-for hook.
    Case((16, 64, 128), F32, "row", threads=2),
    Case((1, 512, 1000), BF16, "col", threads=2),
    Case((7, 96, 40), BF16, "col", accumulate=True, threads=2),
    # A fused bias, stored or added, as gemma.cpp's MatVecAdd needs.
    Case((1, 2048, 512), BF16, "col", bias=True),
    Case((1, 320, 200), ("f32", "bf16", "f32"), "col", bias=True, threads=2),
    Case((3, 40, 21), F32, "row", accumulate=True, bias=True, c_layout="col"),
    # The seed: Gemma 2B's FFW gating projection, one token of decode.
    Case((1, 2048, 16384), BF16, "col"),
    Case((1, 2048, 16384), BF16, "col", threads=2),
    # Packing B: whole 16-wide panels and a narrower last one, widened from bf16 or not,
    # from either layout.
    *(
        Case(shape, dt, lay, forced="packB")
        for shape in ((6, 64, 40), (3, 48, 32))
        for dt in (F32, BF16)
        for lay in ("row", "col")
    ),
    # Blocks of outputs sharing each load of A and of B: rows, columns and both, in the modes
    # random programs rarely reach, with K-tails.
    Case((3, 40, 1), BF16, "col", forced="dotBlock"),
    Case((1, 40, 5), BF16, "col", forced="dotBlock"),
    Case((4, 33, 1), ("f32", "bf16", "f32"), "col", forced="dotBlock"),
    Case((1, 70, 4), ("f32", "bf16", "f32"), "col", forced="dotBlock"),
    Case((2, 50, 2), ("f32", "bf16", "f32"), "col", accumulate=True, forced="dotBlock"),
    Case((1, 24, 3), F32, "col", accumulate=True, forced="dotBlock"),
    # Runs of columns read side by side, one column of each at a time.
    Case((1, 40, 6), BF16, "col", forced="dotStreams2"),
    Case((1, 70, 9), ("f32", "bf16", "f32"), "col", accumulate=True, forced="dotStreams3"),
    Case((2, 33, 4), ("f32", "bf16", "f32"), "col", forced="dotStreams2"),
    # bf16 A against bf16 B, both split on the fly, through unrolled steps, blocks and tails.
    Case((2, 88, 2), BF16, "col", forced="dot"),
    # B with padded rows, as gemma.cpp pads the weights it reads into memory (each row to an
    # odd number of cache lines): the decode kernels and their prefetches, blocks, copies.
    Case((1, 2304, 512), BF16, "col", threads=2, b_pad=32),
    Case((1, 1000, 300), ("f32", "bf16", "f32"), "col", b_pad=40),
    Case((3, 100, 70), F32, "row", b_pad=5),
    Case((6, 64, 40), BF16, "row", forced="packB", b_pad=8),
    Case((6, 64, 40), F32, "col", forced="packB", b_pad=3),
    Case((1, 40, 5), BF16, "col", forced="dotBlock", b_pad=8),
    Case((1, 70, 9), ("f32", "bf16", "f32"), "col", forced="dotStreams3", b_pad=16),
    *(
        Case(shape, dt, lay, threads=t, sample=i, b_pad=pad)
        for i, (shape, dt, lay, t, pad) in enumerate(
            [((5, 300, 70), F32, "col", 2, 3), ((4, 1024, 48), BF16, "col", 1, 32)] * 3
        )
    ),
    # Random programs of the space: every rewrite must be correct, not only the chosen ones.
    *(
        Case(shape, dt, lay, accumulate=acc, threads=t, sample=i)
        for i, (shape, dt, lay, acc, t) in enumerate(
            [
                ((8, 512, 64), F32, "row", False, 1),
                ((48, 96, 64), F32, "row", False, 1),
                ((5, 300, 70), F32, "col", True, 2),
                ((4, 1024, 48), BF16, "col", False, 1),
                ((6, 256, 96), BF16, "row", True, 1),
                ((1, 2048, 64), ("f32", "bf16", "f32"), "col", False, 2),
                ((3, 512, 40), ("bf16", "f32", "f32"), "row", False, 2),
            ]
            * 6
        )
    ),
)
