"""The kernel list for today's gemma.cpp, read from its model configs.

    python kernel_list_from_configs.py path/to/gemma.cpp/gemma/configs.cc [--threads 1,2] \
        > kernels_3ed403e.toml

Reads every model ``ConfigFromModel`` returns (a ``static ModelConfig ConfigX()`` built from a
base config, field assignments, a ``LayerConfigX(model_dim)`` and helpers such as the one
that sets PaliGemma's vocabulary), and lists the one-row MatMul of each decode projection:

    site         K               N                      A      C (gemma's activations)
    q            model_dim       heads * qkv_dim        f32    f32
    kv           model_dim       2 * kv_heads * qkv_dim f32    f32 (the KV cache)
    attn_out     heads * qkv_dim model_dim              f32    bf16
    gating       model_dim       ff_hidden_dim          bf16   bf16 (each half, unfused FFW)
    down         ff_hidden_dim   model_dim              bf16   f32
    vocab        model_dim       vocab_size             bf16   f32

Weights are bf16, N rows of K (B col), from DRAM. Each shape comes dense (gemma maps the
weights file) and with rows padded to an odd number of 64-byte lines (gemma reads them into
memory that way), at each thread count: the adapter picks the kernel with the most threads
that gemma's pool has workers for. C's type is the adapter's business (it rounds a bf16 C).
Only the C++ it needs is understood: assignments of integer expressions and of the
file's ``static constexpr size_t`` constants; anything else is skipped.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import operator
import re
import sys
from dataclasses import dataclass
from pathlib import Path

LINE_BYTES = 64  # gemma pads rows of weights it reads to an odd number of these
BF16_BYTES = 2

_FUNCTION = re.compile(r"static\s+(\w+)\s+(\w+)\s*\(([^)]*)\)\s*\{", re.S)
_OPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv,
    ast.Div: operator.floordiv,
}


@dataclass(frozen=True)
class Model:
    name: str
    model_dim: int
    vocab_size: int
    ff_hidden_dim: int
    heads: int
    kv_heads: int
    qkv_dim: int


def _bodies(text: str) -> dict[str, tuple[str, str]]:
    """Each static function's (return type, body), by name; bodies by brace matching."""
    found = {}
    for match in _FUNCTION.finditer(text):
        depth, start = 1, match.end()
        i = start
        while depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        found[match.group(2)] = (match.group(1), text[start : i - 1])
    return found


def _evaluate(expression: str, constants: dict[str, int], fields: dict[str, object]) -> int:
    def walk(node: ast.AST) -> int:
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.Name) and node.id in constants:
            return constants[node.id]
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            value = fields.get(node.attr)
            if isinstance(value, int):
                return value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](walk(node.left), walk(node.right))
        raise ValueError(expression)

    return walk(ast.parse(expression.strip(), mode="eval").body)


def _statements(body: str) -> list[str]:
    body = re.sub(r"//[^\n]*", "", body)
    return [s.strip() for s in body.split(";") if s.strip()]


class _Configs:
    def __init__(self, text: str) -> None:
        self.functions = _bodies(text)
        self.constants = {
            name: int(value)
            for name, value in re.findall(r"constexpr\s+size_t\s+(\w+)\s*=\s*(\d+)\s*;", text)
        }

    def run(self, name: str, fields: dict[str, object] | None = None) -> dict[str, object]:
        """The fields a config function sets, starting from ``fields`` (the argument a
        helper taking ``ModelConfig& config`` modifies, or a layer config's model_dim)."""
        fields = dict(fields or {})
        for statement in _statements(self.functions[name][1]):
            base = re.fullmatch(r"ModelConfig\s+config\s*=\s*(\w+)\(\)", statement)
            layer = re.fullmatch(
                r"LayerConfig\s+\w+\s*=\s*(\w+)\(\s*config\.model_dim\s*\)", statement
            )
            call = re.fullmatch(r"(\w+)\(\s*config\b[^)]*\)", statement)
            assign = re.fullmatch(r"config\.(\w+)\s*=\s*(.+)", statement, re.S)
            if base and base.group(1) in self.functions:
                fields.update(self.run(base.group(1)))
            elif layer and layer.group(1) in self.functions:
                given = {"model_dim": fields.get("model_dim")}
                sub = self.run(layer.group(1), given)
                fields.update({f"layer_{k}": v for k, v in sub.items()})
            elif call and call.group(1) in self.functions:
                fields = self.run(call.group(1), fields)
            elif assign:
                field, value = assign.groups()
                text = value.strip()
                if text.startswith('"'):
                    fields[field] = text.strip('"')
                elif field == "model_dim" and text == "model_dim":
                    pass  # a layer config's parameter: already given
                else:
                    with contextlib.suppress(ValueError, SyntaxError, KeyError):
                        fields[field] = _evaluate(text, self.constants, fields)  # else unneeded
        return fields

    def models(self) -> list[Model]:
        shipped = re.findall(r"return\s+(Config\w+)\(\)\s*;", self.functions["ConfigFromModel"][1])
        models = []
        for function in dict.fromkeys(shipped):
            f = self.run(function)
            models.append(
                Model(
                    str(f["display_name"]),
                    int(f["model_dim"]),  # type: ignore[arg-type]
                    int(f["vocab_size"]),  # type: ignore[arg-type]
                    int(f["layer_ff_hidden_dim"]),  # type: ignore[arg-type]
                    int(f["layer_heads"]),  # type: ignore[arg-type]
                    int(f["layer_kv_heads"]),  # type: ignore[arg-type]
                    int(f["layer_qkv_dim"]),  # type: ignore[arg-type]
                )
            )
        return models


def models_in(configs_text: str) -> list[Model]:
    """Every model ``ConfigFromModel`` of this configs.cc returns."""
    return _Configs(configs_text).models()


def projections(model: Model) -> list[tuple[str, int, int, str]]:
    """(site, K, N, A dtype) of each decode projection of ``model``."""
    d, q = model.model_dim, model.heads * model.qkv_dim
    return [
        ("q", d, q, "f32"),
        ("kv", d, 2 * model.kv_heads * model.qkv_dim, "f32"),
        ("attn_out", q, d, "f32"),
        ("gating", d, model.ff_hidden_dim, "bf16"),
        ("down", model.ff_hidden_dim, d, "bf16"),
        ("vocab", d, model.vocab_size, "bf16"),
    ]


def padded_stride(k: int) -> int:
    """The elements gemma puts between rows of K bf16 it reads into memory."""
    lines = -(-k * BF16_BYTES // LINE_BYTES)
    return (lines | 1) * LINE_BYTES // BF16_BYTES


def kernel_list(models: list[Model], threads: list[int], padded_only: bool = False) -> str:
    """The list; ``padded_only``: only the padded rows (weights gemma read into memory)."""
    lines = [
        "# Generated by integrations/gemma_cpp/kernel_list_from_configs.py from gemma.cpp's",
        "# gemma/configs.cc: the one-row MatMul of every decode projection of every model it",
        "# ships, bf16 weights as N rows of K, dense and with gemma's padded rows. Regenerate",
        "# it for a new config or another thread count (README.md).",
    ]
    seen: dict[tuple[int, int, str], str] = {}
    for model in models:
        for site, k, n, a in projections(model):
            key = (k, n, a)
            if key in seen:
                lines.append(f"# {model.name} {site}: {k}x{n} as {seen[key]}")
                continue
            base = f"{model.name.lower()}_{site}"
            seen[key] = base
            strides = (padded_stride(k),) if padded_only else (k, padded_stride(k))
            for stride in dict.fromkeys(strides):
                for t in threads:
                    name = base + ("" if stride == k else "_padded") + f"_t{t}"
                    lines += [
                        "",
                        "[[kernel]]",
                        f'name = "{name}"  # {model.name} {site}',
                        f"shape = [1, {k}, {n}]",
                        f'dtypes = "{a},bf16,f32"',
                        'layouts = "row,col,row"',
                        f"threads = {t}",
                        "weights_from_dram = true",
                    ]
                    if stride != k:
                        lines.append(f"b_stride = {stride}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("configs", type=Path, help="gemma.cpp's gemma/configs.cc")
    parser.add_argument("--threads", default="1,2", help="thread counts (default 1,2)")
    parser.add_argument(
        "--models", default="", help="only models whose name contains one of these (comma list)"
    )
    args = parser.parse_args(argv)
    models = models_in(args.configs.read_text())
    wanted = [w for w in args.models.split(",") if w]
    if wanted:
        models = [m for m in models if any(w in m.name for w in wanted)]
    threads = [int(t) for t in args.threads.split(",")]
    sys.stdout.write(kernel_list(models, threads))
    return 0


if __name__ == "__main__":
    sys.exit(main())
