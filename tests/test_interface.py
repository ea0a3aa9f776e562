"""The model interface: one way in for every module, no import cycle, no private reach."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "s2s_demo"


def test_importing_the_hub_module_loads_no_translator():
    code = "import sys, s2s_demo.hub; print('s2s_demo.translator' in sys.modules, 's2s_demo.decoding' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=PACKAGE.parent)
    assert done.stdout.split() == ["False", "False"]


def _root(node: ast.AST) -> ast.AST:
    while isinstance(node, (ast.Attribute, ast.Call, ast.Subscript)):
        node = node.value if not isinstance(node, ast.Call) else node.func
    return node


def test_no_module_reads_another_objects_private_attributes():
    """``x._name`` on our own objects is allowed on ``self``/``cls`` only (torch's private
    kernels, reached through the imported ``torch`` module, are torch's business)."""
    offences = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        third_party = {alias.asname or alias.name.split(".")[0] for node in ast.walk(tree)
                       if isinstance(node, ast.Import) for alias in node.names}
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                root = _root(node.value)
                if isinstance(root, ast.Name) and root.id in third_party:
                    continue
                if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                    offences.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} .{node.attr}")
    assert offences == []
