"""Give freed heap memory back to the operating system (glibc's malloc_trim), where there is one."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.cache
def _trim() -> object | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return getattr(ctypes.CDLL(name), "malloc_trim", None)
    except OSError:
        return None


def give_back() -> None:
    """Return the free pages of the C heap to the system.

    A month of a large cluster is reduced in many small arrays (an hour row per key) that are freed once
    copied into the hours × keys matrices; glibc keeps such freed pages mapped, and they would count in
    the process's resident memory until it exits. Elsewhere (no glibc) this does nothing.
    """
    trim = _trim()
    if trim is not None:
        trim(0)
