"""Keep freed full-frame arrays' memory in the process for the next frame (Linux, glibc).

Coloring a frame allocates and frees tens of full-frame arrays (labels, position maps, pair histograms:
4–30 MB each at 1080p). glibc serves blocks that large straight from the kernel (mmap) and gives them
back when freed, so the next frame's arrays are fresh pages the kernel must map and zero again. On a
shared or virtual machine that is slow and very uneven: measured on the development machine (2 shared
cores), the flat engine's `landing_pairs` at 1080p took 15 ms at the median and 230–450 ms now and
then; with the memory kept, 15 ms every time, and `bench/bench_flat.py` went from 143–165 to 125 ms a
frame.

`keep_freed_memory` raises glibc's mmap threshold to its largest value (32 MB: blocks under it come from
the heap, which reuses them) and the trim threshold to TRIM_BYTES (free memory at the heap's top is given
back to the system only beyond that). The cost: the process holds up to about TRIM_BYTES more than it
uses. A user's own `MALLOC_MMAP_THRESHOLD_` / `MALLOC_TRIM_THRESHOLD_` (glibc's environment tunables)
are left as they are; other C libraries and systems are left alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD = -1  # glibc <malloc.h> mallopt parameters
M_MMAP_THRESHOLD = -3
MMAP_BYTES = 32 << 20  # glibc's largest mmap threshold on 64-bit systems (HEAP_MAX_SIZE / 2)
TRIM_BYTES = 256 << 20
_USER_TUNABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")


def keep_freed_memory() -> bool:
    """Tune glibc's allocator for full-frame arrays (see the module docstring); True when it was done.

    Does nothing (False) off Linux, without glibc, or when the environment already sets the allocator's
    tunables."""
    if not sys.platform.startswith("linux") or any(name in os.environ for name in _USER_TUNABLES):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018  glibc only (musl has no mallopt parameters like these)
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_BYTES))
