"""The z3 engine: BMC, k-induction with CTIs, and the parameterised proofs
(pid scan for any number of processes, refcount bookkeeping). All z3 code of
forkcheck lives in this package."""

from .run import ProveOptions, prove_model, prove_system

__all__ = ["ProveOptions", "prove_model", "prove_system"]
