"""Refcount bookkeeping: proved with atomic increments, lost updates in 2001."""

from __future__ import annotations

from checker.prove.pidscan import Status
from checker.prove.refcount import KINDS, FLAGS, Obj, find_lost_update, prove_refcounts, refcount_report


def test_fixed_configuration_is_proved_for_every_kind_and_flag_combination():
    rep = refcount_report(racy_2001=False)
    assert rep.proved
    assert not any(o.vacuous for o in rep.obligations)
    groups = {o.group for o in rep.obligations}
    assert groups == {f"{k.name}.{k.counter}" for k in KINDS}
    # every flag combination except the EINVAL one (RFFDG|RFCFDG) is an event of ucred (always shared)
    forks = [o for o in rep.obligations if o.group == "ucred.cr_ref" and o.name.startswith("fork1(")]
    assert len(forks) == 2 ** (len(FLAGS) - 1) - 2 ** (len(FLAGS) - 3)


def test_a_fork_that_shares_without_counting_is_caught():
    forgetful = lambda o: Obj(o.refcnt, o.holders + 1, o.zombies, o.freed)
    obs = prove_refcounts(hold=forgetful)
    bad = [o for o in obs if o.status is Status.FAILED]
    assert bad and all(o.name.startswith("fork1(") for o in bad)
    before, after = bad[0].model["before"], bad[0].model["after"]
    assert int(after["holders"]) == int(before["holders"]) + 1 and after["refcnt"] == before["refcnt"]


def test_2001_racy_increments_lose_updates_both_ways():
    rep = refcount_report(racy_2001=True)
    assert not rep.proved
    kinds = {u.kind for u in rep.lost_updates}
    assert {"ucred", "plimit", "filedesc"} <= kinds and "vnode" not in kinds
    ucred = next(k for k in KINDS if k.name == "ucred")
    leak, uaf = find_lost_update(ucred, 1), find_lost_update(ucred, 0)
    assert leak is not None and leak.final["refcnt"] > leak.final["holders"] and "leak" in leak.consequence
    assert uaf is not None and uaf.final["refcnt"] < uaf.final["holders"] and "use after free" in uaf.consequence
    assert "kern_fork.c:412" in uaf.describe()
