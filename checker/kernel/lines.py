"""The seed lines the kernel's steps cite, read from kern_fork.py's source.

Trace replay needs to know, for a line a model step cites, whether the kernel
has a step there at all (the model may cite lines the kernel folds into a
neighbour, e.g. `doingzomb = 1` at 361). Reading the integer literals passed
to the step constructors keeps this list from drifting when kern_fork.py
changes; tests/kernel/test_lines.py checks it against the lines really yielded.
"""

from __future__ import annotations

import ast
import inspect
from functools import lru_cache

from . import kern_fork

# kern_fork.py passes a line to these callables (positionally) to make a step.
_STEP_MAKERS = {"S", "At", "lock", "unlock", "proc_lock", "proc_unlock", "msleep", "racy_add", "vm_fork",
                "fdfree", "fdrop", "_swap_fd"}
# The syscall wrappers yield `line`, `line + 1`, `line + 2` for fork (117), vfork (134), rfork (151).
_WRAPPER_LINES = frozenset({117, 118, 119, 134, 135, 136, 151, 152, 153})
_SEED_RANGE = range(100, 700)   # kern_fork.c's fork-related lines; smaller ints are flags or counts


@lru_cache(maxsize=1)
def kernel_seed_lines() -> frozenset[int]:
    tree = ast.parse(inspect.getsource(kern_fork))
    out: set[int] = set(_WRAPPER_LINES)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
        if name not in _STEP_MAKERS:
            continue
        for a in list(node.args) + [k.value for k in node.keywords]:
            if isinstance(a, ast.Constant) and isinstance(a.value, int) and not isinstance(a.value, bool) \
                    and a.value in _SEED_RANGE:
                out.add(a.value)
        # `key, line = ("v_kthreads", 573) if ... else ("v_rforks", 576)`
    for node in ast.walk(tree):
        if isinstance(node, ast.Tuple) and len(node.elts) == 2 and isinstance(node.elts[1], ast.Constant) \
                and isinstance(node.elts[1].value, int) and node.elts[1].value in _SEED_RANGE \
                and isinstance(node.elts[0], ast.Constant) and isinstance(node.elts[0].value, str):
            out.add(node.elts[1].value)
    return frozenset(out)
