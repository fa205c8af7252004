"""The import directions of ARCHITECTURE.md, checked by reading every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "wayline"
PRODUCTS = ("platform", "journeys", "messaging", "console")
# What a product may import of another product, by prefix; nothing else of it.
ALLOWED = {
    "kernel": (),
    "platform": (),
    "messaging": (),
    "console": (),
    "journeys": ("wayline.platform.service", "wayline.platform.contracts", "wayline.messaging.client"),
}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    module = "wayline." + ".".join(path.relative_to(SRC).with_suffix("").parts)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: -node.level]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            out.append((node.lineno, name))
            out += [(node.lineno, f"{name}.{a.name}") for a in node.names]
    return out


def _violations() -> list[str]:
    bad = []
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC).parts
        if len(parts) < 2 or parts[0] not in ALLOWED:
            continue
        owner = parts[0]
        for lineno, name in _imports(path):
            if not name.startswith("wayline."):
                continue
            target = name.split(".")[1]
            if target == owner or target not in PRODUCTS:
                continue
            if any(name == a or name.startswith(a + ".") for a in ALLOWED[owner]):
                continue
            if owner == "kernel" or target in PRODUCTS:
                bad.append(f"{path.relative_to(SRC)}:{lineno} imports {name}")
    return bad


def test_products_import_only_what_the_architecture_allows() -> None:
    assert _violations() == []


def test_the_checker_sees_a_forbidden_import(tmp_path, monkeypatch) -> None:
    fake = tmp_path / "wayline"
    (fake / "messaging").mkdir(parents=True)
    (fake / "messaging" / "x.py").write_text("from wayline.platform import tables\n")
    (fake / "journeys").mkdir()
    (fake / "journeys" / "y.py").write_text("import wayline.platform.service\nfrom ..platform import tables\n")
    import sys

    monkeypatch.setattr(sys.modules[__name__], "SRC", fake)
    found = _violations()
    assert any("messaging/x.py:1 imports wayline.platform" in v for v in found)
    assert any("journeys/y.py:2 imports wayline.platform.tables" in v for v in found)
    assert not any("platform.service" in v for v in found)
