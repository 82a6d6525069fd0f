"""Kernel lists: the TOML file that names the kernels a C++ build needs.

    [[kernel]]
    name = "gemma_ffw_gating"      # the C++ function (and header) name
    op = "matmul"                  # the only operation so far
    shape = [1, 2048, 16384]       # M, K, N (or "1x2048x16384")
    dtypes = ["bf16", "bf16", "f32"]
    layouts = ["row", "col", "row"]  # optional, default row,row,row
    threads = 2                    # optional, default 1
    accumulate = false             # optional: C += A·B instead of C = A·B
    bias = false                   # optional: + bias[N] (f32), broadcast over the rows
    weights_from_dram = false      # optional: B comes from DRAM on every call (decode)
    b_stride = 2080                # optional: B's rows are padded to this many elements

Every error names the file, the kernel and the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomllib

from morello.core.spec import Spec, matmul_problem
from morello.core.target import AVX2_LIMITS, MemoryLimits
from morello.emit.names import check_name
from morello.errors import FileAccessError, SpecError

UMBRELLA = "morello_kernels.hpp"  # the header that includes every kernel of a list

FIELDS = (
    "name",
    "op",
    "shape",
    "dtypes",
    "layouts",
    "threads",
    "accumulate",
    "bias",
    "weights_from_dram",
    "b_stride",
)
OPS = ("matmul",)


@dataclass(frozen=True, slots=True)
class KernelRequest:
    name: str
    shape: tuple[int, int, int]
    dtypes: tuple[str, str, str]
    layouts: tuple[str, str, str]
    threads: int = 1
    accumulate: bool = False
    bias: bool = False
    weights_from_dram: bool = False
    b_stride: int | None = None

    def spec(self, limits: MemoryLimits = AVX2_LIMITS) -> Spec:
        """With a bias, the program accumulates onto C after the bias is written there."""
        return matmul_problem(
            "x".join(map(str, self.shape)),
            ",".join(self.dtypes),
            ",".join(self.layouts),
            threads=self.threads,
            accumulate=self.accumulate or self.bias,
            limits=limits,
            b_from_dram=self.weights_from_dram,
            b_stride=self.b_stride,
        )

    @property
    def bias_mode(self) -> str | None:
        if not self.bias:
            return None
        return "add" if self.accumulate else "store"


def load(path: Path) -> tuple[KernelRequest, ...]:
    try:
        text = path.read_text()
    except OSError as e:
        raise FileAccessError(f"cannot read kernel list {path}: {e.strerror or e}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{path}: not valid TOML: {e}") from None
    return parse(data, str(path))


def parse(data: dict[str, Any], where: str) -> tuple[KernelRequest, ...]:
    extra = sorted(set(data) - {"kernel"})
    if extra:
        raise SpecError(f"{where}: unknown top-level key {extra[0]!r} (expected [[kernel]])")
    entries = data.get("kernel")
    if not isinstance(entries, list) or not entries:
        raise SpecError(f"{where}: no kernels: add [[kernel]] tables")
    requests: list[KernelRequest] = []
    seen: set[str] = set()  # each kernel defines <name> and <name>_kernel
    for index, entry in enumerate(entries):
        request = _request(entry, f"{where}: kernel #{index + 1}")
        names = {request.name, f"{request.name}_kernel"}
        if names & seen:
            raise SpecError(
                f"{where}: kernel {request.name!r}: field 'name': clashes with another "
                f"kernel's {', '.join(sorted(names & seen))}"
            )
        seen |= names
        requests.append(request)
    return tuple(requests)


def _request(entry: Any, where: str) -> KernelRequest:
    if not isinstance(entry, dict):
        raise SpecError(f"{where}: must be a table")
    name = entry.get("name")
    if not isinstance(name, str):
        raise SpecError(f"{where}: field 'name': missing or not a string")
    where = f"{where.rsplit(':', 1)[0]}: kernel {name!r}"
    try:
        check_name(name, "name")
    except SpecError as e:
        raise SpecError(f"{where}: field 'name': {e}") from None
    unknown = sorted(set(entry) - set(FIELDS))
    if unknown:
        raise SpecError(f"{where}: unknown field {unknown[0]!r} (known: {', '.join(FIELDS)})")
    op = entry.get("op", "matmul")
    if op not in OPS:
        raise SpecError(f"{where}: field 'op': {op!r} is not one of {', '.join(OPS)}")
    if "shape" not in entry:
        raise SpecError(f"{where}: field 'shape': missing (e.g. [1, 2048, 16384])")
    if "dtypes" not in entry:
        raise SpecError(f'{where}: field \'dtypes\': missing (e.g. ["bf16", "bf16", "f32"])')
    request = KernelRequest(
        name,
        _shape(entry["shape"], where),
        _triple(entry["dtypes"], where, "dtypes"),
        _triple(entry.get("layouts", "row,row,row"), where, "layouts"),
        _typed(entry.get("threads", 1), int, where, "threads"),
        _typed(entry.get("accumulate", False), bool, where, "accumulate"),
        _typed(entry.get("bias", False), bool, where, "bias"),
        _typed(entry.get("weights_from_dram", False), bool, where, "weights_from_dram"),
        _typed(entry.get("b_stride"), int, where, "b_stride") if "b_stride" in entry else None,
    )
    try:
        request.spec()
    except SpecError as e:
        field = _field_of(str(e))
        raise SpecError(f"{where}: field {field!r}: {e}") from None
    return request


def _field_of(message: str) -> str:
    """Which field a Spec error is about (the messages name the offending value)."""
    pairs = (
        ("threads", "threads"),
        ("stride", "b_stride"),
        ("dtype", "dtypes"),
        ("layout", "layouts"),
    )
    for word, field in pairs:
        if word in message:
            return field
    return "shape"


def _shape(value: Any, where: str) -> tuple[int, int, int]:
    bad = SpecError(f"{where}: field 'shape': {value!r} is not [M, K, N] or \"MxKxN\"")
    if isinstance(value, str):
        parts = value.lower().replace("*", "x").split("x")
        if not all(p.strip().lstrip("-").isdigit() for p in parts):
            raise bad
    elif isinstance(value, list):
        parts = value
        # TOML integers only: not [2] or 2.0 or true.
        if not all(type(p) is int for p in parts):
            raise bad
    else:
        raise bad
    if len(parts) != 3:
        raise bad
    m, k, n = (int(p) for p in parts)
    return m, k, n


def _triple(value: Any, where: str, field: str) -> tuple[str, str, str]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or len(items) != 3 or not all(isinstance(i, str) for i in items):
        raise SpecError(f"{where}: field {field!r}: {value!r} must name A, B and C")
    a, b, c = (i.strip() for i in items)
    return a, b, c


def _typed(value: Any, kind: type, where: str, field: str) -> Any:
    if type(value) is not kind:
        raise SpecError(f"{where}: field {field!r}: {value!r} is not a {kind.__name__}")
    return value
