"""The decode MatVecs of open models: every projection of a transformer layer, and the
vocabulary projection, as one token of decode runs them (M = 1; weights N rows of K, as
inference engines store them, read from DRAM on every call).

Dimensions are the models' published configurations (``hidden_size``,
``num_attention_heads`` x ``head_dim``, ``num_key_value_heads`` x ``head_dim``,
``intermediate_size``, ``vocab_size``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Model:
    name: str
    d_model: int  # the residual stream
    q: int  # query heads x head size: the attention output's width too
    kv: int  # key (or value) heads x head size
    ffw: int  # the gated FFW's hidden width
    vocab: int

    def projections(self) -> tuple[tuple[str, int, int], ...]:
        """(projection, K, N) of each MatVec of one decode step: the vector has K elements
        and the weights N rows of K."""
        return (
            ("q", self.d_model, self.q),
            ("k, v", self.d_model, self.kv),
            ("o", self.q, self.d_model),
            ("gate, up", self.d_model, self.ffw),
            ("down", self.ffw, self.d_model),
            ("vocab", self.d_model, self.vocab),
        )


MODELS = (
    Model("Gemma 2B", 2048, 2048, 256, 16384, 256000),
    Model("Gemma 7B", 3072, 4096, 4096, 24576, 256000),
    Model("Gemma 2 2B", 2304, 2048, 1024, 9216, 256000),
    Model("Gemma 2 9B", 3584, 4096, 2048, 14336, 256000),
    Model("Llama 3 8B", 4096, 4096, 1024, 14336, 128256),
    Model("Mistral 7B", 4096, 4096, 1024, 14336, 32000),
    Model("Qwen2.5 7B", 3584, 3584, 512, 18944, 152064),
    Model("Phi-3 mini", 3072, 3072, 3072, 8192, 32064),
)


@dataclass(frozen=True, slots=True)
class DecodeShape:
    k: int
    n: int
    uses: tuple[str, ...]  # "Model projection", every one of this shape

    @property
    def name(self) -> str:
        first = self.uses[0]
        more = f" +{len(self.uses) - 1}" if len(self.uses) > 1 else ""
        return f"{first}{more} {self.k}→{self.n}"


def decode_shapes(models: tuple[Model, ...] = MODELS) -> tuple[DecodeShape, ...]:
    """Every distinct (K, N) of the models' decode steps, in the models' order, each with
    the projections that have it."""
    uses: dict[tuple[int, int], list[str]] = {}
    for model in models:
        for projection, k, n in model.projections():
            uses.setdefault((k, n), []).append(f"{model.name} {projection}")
    return tuple(DecodeShape(k, n, tuple(u)) for (k, n), u in uses.items())
