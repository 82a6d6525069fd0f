"""Which C++ names a kernel may take.

A kernel's name becomes a function in ``namespace morello`` and the prefix of its
descriptor struct, in a header that the includer mixes with its own includes. A name
breaks the header when it is a keyword, an identifier the templates use (a parameter, a
descriptor member, a runtime helper, an intrinsic: lookup would find the kernel instead),
or a macro of a standard header the includer may have included before ours.
"""

from __future__ import annotations

import re
from functools import cache

from morello.emit import TEMPLATES
from morello.errors import SpecError

_CPP_KEYWORDS = frozenset(
    """alignas alignof and and_eq asm auto bitand bitor bool break case catch char char8_t
    char16_t char32_t class compl concept const consteval constexpr constinit const_cast
    continue co_await co_return co_yield decltype default delete do double dynamic_cast else
    enum explicit export extern false float for friend goto if inline int long mutable
    namespace new noexcept not not_eq nullptr operator or or_eq private protected public
    register reinterpret_cast requires return short signed sizeof static static_assert
    static_cast struct switch template this thread_local throw true try typedef typeid
    typename union unsigned using virtual void volatile wchar_t while xor xor_eq""".split()  # noqa: SIM905
)

# Macros spelled in lower case by the C and POSIX headers (glibc's among them) and by
# <windows.h> without NOMINMAX. Upper-case macros are caught by their shape instead.
_LOWER_CASE_MACROS = frozenset(
    """alloca assert assert_perror errno math_errhandling offsetof setjmp sigsetjmp stdin
    stdout stderr va_arg va_copy va_end va_start strdupa strndupa issubnormal sigmask
    be16toh be32toh be64toh htobe16 htobe32 htobe64 htole16 htole32 htole64 le16toh le32toh
    le64toh pthread_cleanup_pop pthread_cleanup_pop_restore_np pthread_cleanup_push
    pthread_cleanup_push_defer_np sa_handler sa_sigaction sched_priority
    sigev_notify_attributes sigev_notify_function si_addr si_addr_lsb si_arch si_band
    si_call_addr si_fd si_int si_lower si_overrun si_pid si_pkey si_ptr si_status si_stime
    si_syscall si_timerid si_uid si_upper si_utime si_value major minor makedev min max""".split()  # noqa: SIM905
)

# Upper case with digits and underscores (NULL, EOF, INT_MAX), a one-letter prefix and an
# underscore (M_PIf, L_tmpnam), or the <cinttypes> format macros (PRId64, SCNx32).
_MACRO_SHAPE = re.compile(r"[A-Z][A-Z0-9_]*|[A-Z]_\w*|(PRI|SCN)[a-z]\w*")
_IDENTIFIER = re.compile(r"(?<![\w.])[A-Za-z_]\w*")
# Jinja tags and comments, and C++ comments and string literals: names there are not C++.
_NOT_CPP = re.compile(
    r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}|//[^\n]*|/\*.*?\*/|\"(\\.|[^\"\\])*\"", re.S
)


@cache
def template_names() -> frozenset[str]:
    """Every identifier the C++ of the templates spells (read once: the package's own files)."""
    names: set[str] = set()
    for path in sorted(TEMPLATES.glob("*.j2")):
        names |= set(_IDENTIFIER.findall(_NOT_CPP.sub(" ", path.read_text())))
    return frozenset(names)


def check_name(name: str, what: str = "kernel name") -> None:
    """Raises SpecError unless ``name`` can be a kernel in any translation unit."""
    if not name.isidentifier() or not name.isascii():
        raise SpecError(f"{what} {name!r} is not a C++ identifier")
    if name in _CPP_KEYWORDS:
        raise SpecError(f"{what} {name!r} is a C++ keyword")
    if name.startswith("_"):
        # Reserved at global scope, and the compilers' intrinsic headers define such macros.
        raise SpecError(f"{what} {name!r} starts with '_', reserved to the C++ implementation")
    if name in _LOWER_CASE_MACROS or _MACRO_SHAPE.fullmatch(name):
        raise SpecError(
            f"{what} {name!r} is (or looks like) a macro of the standard headers, which "
            "would rewrite the kernel's name wherever it is included after them; pick another"
        )
    if name in template_names():
        raise SpecError(f"{what} {name!r} is a name the header uses itself; pick another")
