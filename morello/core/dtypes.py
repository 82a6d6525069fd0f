"""Element types. Each carries what the cost model and the code generator need to know."""

from __future__ import annotations

import enum


class Dtype(enum.Enum):
    """An element type; the value is the name users type (``--dtypes bf16,bf16,f32``).

    Integer types fit here as further members: the search only reads ``size`` and
    ``c_type``; kernels state which dtypes they accept.
    """

    F32 = "f32"
    BF16 = "bf16"

    __hash__ = object.__hash__  # members are singletons; Enum's own hash is slow Python

    @property
    def size(self) -> int:
        return _SIZES[self]

    @property
    def c_type(self) -> str:
        return _C_TYPES[self]

    @classmethod
    def parse(cls, text: str) -> Dtype:
        try:
            return cls(text.strip().lower())
        except ValueError:
            known = ", ".join(d.value for d in cls)
            raise ValueError(f"unknown dtype {text!r} (known: {known})") from None


_SIZES = {Dtype.F32: 4, Dtype.BF16: 2}
# bf16 is passed as raw bits: the memory layout of ml_dtypes.bfloat16 and hwy::bfloat16_t.
_C_TYPES = {Dtype.F32: "float", Dtype.BF16: "uint16_t"}
