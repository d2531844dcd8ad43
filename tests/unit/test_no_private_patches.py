"""No code outside the Tansu-only module assigns to a private attribute of another object
(the way a Faust or aiokafka internal gets patched): the engine uses its frameworks as
designed (issue 14). Pure: reads the source with ``ast``."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TANSU_ONLY = {"streams/tansu.py"}  # the fallback broker's quirks, inactive on Apache Kafka
# private attributes of the engine's own objects, set from a helper class beside them
OWN = {("streams/projector.py", "self.p._error")}


def private_assignments(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        targets = (node.targets if isinstance(node, ast.Assign) else
                   [node.target] if isinstance(node, ast.AugAssign | ast.AnnAssign) else [])
        for t in targets:
            if isinstance(t, ast.Attribute) and t.attr.startswith("_") \
                    and not t.attr.startswith("__"):
                owner = ast.unparse(t.value)
                if owner not in ("self", "cls"):
                    found.append(f"{owner}.{t.attr}")
    return found


def test_no_private_attribute_of_another_object_is_assigned():
    offences = []
    for pkg in ("streams", "grid", "rules", "geodata", "store", "bench"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel in TANSU_ONLY:
                continue
            offences += [f"{rel}: {a}" for a in private_assignments(path)
                         if (rel, a) not in OWN]
    assert offences == []


def test_the_check_sees_a_patch():
    src = "import faust\nfaust.App._prepare = None\nself._x = 1\nweb.blueprints._enabled = []\n"
    path = ROOT / "build" / "probe_private.py"
    path.parent.mkdir(exist_ok=True)
    path.write_text(src)
    try:
        assert private_assignments(path) == ["faust.App._prepare", "web.blueprints._enabled"]
    finally:
        path.unlink()
