"""The model loader: fields, defaults, overrides, selections (errors are in the bad corpus)."""

from __future__ import annotations

from pathlib import Path

import pytest

from checker.diagnostics import ModelError
from checker.model import CheckOptions, load_model

ROOT = Path(__file__).resolve().parents[2]
EX = ROOT / "spec" / "examples"


def write(tmp_path: Path, body: str) -> Path:
    (tmp_path / "m.toml").write_text(f'spec = "{EX / "lost_wakeup.fk"}"\n' + body)
    return tmp_path / "m.toml"


def test_defaults_check_everything(tmp_path: Path) -> None:
    m = load_model(write(tmp_path, ""))
    assert m.check == CheckOptions()
    assert m.properties == ("deadlock", "witness", "lock_order", "races", "runtime", "served_eventually")
    assert m.name == "m" and m.expect == {} and m.constants == {}
    assert m.explore_options().symmetry is True


def test_overrides_options_and_selection(tmp_path: Path) -> None:
    m = load_model(write(tmp_path, """
name = "lw"
docs = "docs/x.md"
[constants]
FIXED = true
[check]
races = false
liveness = false
symmetry = false
max_states = 1000
time_limit = 2
strategy = "dfs"
proofs = ["served_eventually"]
[expect]
deadlock = "holds"
"""))
    assert m.name == "lw" and m.docs == ("docs/x.md",)
    assert m.system.constant["FIXED"] is True and m.constants == {"FIXED": True}
    assert m.properties == ("deadlock", "witness", "lock_order", "runtime")
    o = m.explore_options()
    assert (o.max_states, o.time_limit, o.symmetry, o.strategy.value) == (1000, 2.0, False, "dfs")
    assert m.check.proofs == ("served_eventually",)


def test_property_listed_in_the_wrong_table(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as e:
        load_model(write(tmp_path, '[check]\ninvariants = ["served_eventually"]\n'))
    assert "is not a state property (leadsto): list it under `properties`" in e.value.message
    assert (e.value.span.line, e.value.span.col) == (3, 15)


def test_properties_may_name_asserts_and_builtins(tmp_path: Path) -> None:
    (tmp_path / "s.fk").write_text("var x: 0..3 = 0\nthread t { assert ok: x == 0 }\n")
    (tmp_path / "m.toml").write_text('spec = "s.fk"\n[check]\ninvariants = []\nproperties = ["ok", "runtime"]\n'
                                     'deadlock = false\n[expect]\nok = "holds"\n')
    m = load_model(tmp_path / "m.toml")
    assert m.properties == ("witness", "lock_order", "races", "runtime", "ok")
    (tmp_path / "m.toml").write_text('spec = "s.fk"\n[check]\nproperties = ["runtime"]\nruntime = false\n')
    with pytest.raises(ModelError, match="switched off"):
        load_model(tmp_path / "m.toml")


def test_unreadable_model() -> None:
    with pytest.raises(ModelError, match="cannot read"):
        load_model(ROOT / "models" / "no_such_model.toml")
