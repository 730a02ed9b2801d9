"""Small specs for the prover tests, each exercising part of the encoding."""

LEMMA = """
var x: 0..10 = 0
var y: 0..10 = 0
thread a { loop { x := x < 3 ? x + 1 : x } }
thread b { loop { y := x } }
invariant y_small: y <= 3
lemma x_small: x <= 3
"""

# x <= 1 holds but is not 1-inductive (x = 1 at the increment is a CTI); 2-inductive.
TWO_STEP = """
var x: 0..10 = 0
thread t {
  loop {
    x := x + 1
    x := x - 1
  }
}
invariant bounded: x <= 1
"""

# The increment is racy (a load and a store): a lost update.
RACY = """
var n: 0..3 = 0
var done: 0..2 = 0
thread cpu[i in 0..1] {
  racy n := n + 1
  done := done + 1
}
invariant counted: done == 2 => n == 2
"""

REFS = """
const N = 2
struct cred [2] refcount refs {
  refs: 0..3 = 0
}
struct proc [3] {
  p_cred: ref cred = null
}
var allproc: list proc
lock proc_lock: mutex
var c0: ref cred = null
init {
  c0 := alloc cred
  c0.refs := 1
  var p: ref proc = null
  p := alloc proc
  p.p_cred := c0
  insert_head(allproc, p)
}
thread cpu[i in 0..N-1] {
  var q: ref proc = null
  var parent: ref proc = null
  parent := first(allproc)
  q := alloc proc
  lock(proc_lock)
  q.p_cred := parent.p_cred
  racy q.p_cred.refs := q.p_cred.refs + 1
  insert_head(allproc, q)
  unlock(proc_lock)
}
invariant refs_ok: forall c in cred: c.refs == count p in proc: p.p_cred == c
"""

SLEEP = """
var flag: bool = false
lock m: mutex
chan ch
thread waiter {
  lock(m)
  if !flag { msleep(ch, m) }
  unlock(m)
}
thread waker {
  flag := true
  wakeup(ch)
}
"""

RUNTIME = """
struct obj [2] {
  v: 0..3 = 0
}
var a: ref obj = null
var b: ref obj = null
thread t1 {
  a := alloc obj
  a.v := a.v + 1
  free a
}
thread t2 {
  b := a
  b.v := 3
}
"""

WITNESS = """
lock s: spin
lock m: mutex
lock x: sx
thread t1 {
  lock(s)
  lock(m)
  unlock(m)
  unlock(s)
}
thread t2 {
  slock(x)
  slock(x)
}
"""

LISTS = """
struct proc [3] {
  pid: 0..5 = 0
}
var L: list proc
var n: 0..5 = 0
thread t {
  var p: ref proc = null
  var q: ref proc = null
  p := alloc proc
  p.pid := 1
  insert_tail(L, p)
  q := alloc proc
  q.pid := 2
  insert_after(L, p, q)
  foreach r in L { n := n + r.pid }
  remove(L, p)
  assert sum_ok: n == 3
  assert head_ok: first(L) == q
}
"""

# Nonlinear integer arithmetic the solver cannot settle in 50 ms.
HARD = """
var x: 0..1000000 = 1
var y: 0..1000000 = 2
thread t {
  loop {
    x := (x * x * 7 + 3) % 1000003
    y := (y * y * y + 1) % 999983
  }
}
invariant no_cube: x * x * x != 7 * y * y * y + 3
"""
