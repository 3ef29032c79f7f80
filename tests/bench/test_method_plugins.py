"""Port methods are plugins: each implements one protocol (requires / plan / run_cell / port), the
planner, the cell runner and the API hold no name checks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from loraport import api
from loraport.arch import LAYER_MAPS
from loraport.port import METHODS, PortMethod
from loraport.port.methods import NEEDS

SRC = Path(api.__file__).parent


def test_every_method_implements_the_protocol():
    for name in METHODS.names():
        cls = METHODS.get(name)
        assert issubclass(cls, PortMethod) and cls.name == name
        assert set(cls.requires) <= NEEDS, name
        for hook in ("plan", "run_cell", "port"):
            assert callable(getattr(cls, hook)), (name, hook)
    assert "cka" in LAYER_MAPS and "relative" in LAYER_MAPS


@pytest.mark.parametrize("path", ["api.py", "bench/cells.py", "bench/plan.py"])
def test_no_method_name_checks_outside_the_methods(path):
    text = (SRC / path).read_text()
    names = "|".join(METHODS.names())
    hits = re.findall(rf"""[=!]=\s*["']({names})["']""", text)
    assert not hits, f"{path} checks method names {hits}: move the behaviour into the method"


def test_cka_layer_map_needs_both_bases():
    from loraport.arch import layer_map
    from loraport.errors import ArchError

    with pytest.raises(ArchError, match="needs both bases"):
        layer_map(4, 3, "cka")
