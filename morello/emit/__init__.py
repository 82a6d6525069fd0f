"""C++ from programs: the renderer (codegen), the names a kernel may take, and the Jinja
templates that spell the C++."""

from pathlib import Path

TEMPLATES = Path(__file__).resolve().parent / "templates"
