"""The dashboard's files as shipped: every module its pages import is served, none builds
markup from strings, and the pages hold no inline script (the CSP would block it)."""

from __future__ import annotations

import posixpath
import re

import pytest

from ferryman.dashboard.assets import load_assets, load_template

ASSETS = load_assets()
SCRIPTS = {name: asset.body.decode() for name, asset in ASSETS.items() if name.endswith(".js")}
IMPORT = re.compile(r"""^import\s[^'"]*['"](\.{1,2}/[^'"]+)['"];""", re.MULTILINE)


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_every_import_is_an_asset(name: str) -> None:
    for target in IMPORT.findall(SCRIPTS[name]):
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
        assert resolved in SCRIPTS, f"{name} imports {target}, which is not shipped"


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_no_markup_from_strings(name: str) -> None:
    """API data reaches the page as text nodes only (dom.js), never parsed as HTML."""
    code = re.sub(r"//.*", "", re.sub(r"/\*.*?\*/", "", SCRIPTS[name], flags=re.DOTALL))
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in code, f"{name} uses {sink}"


@pytest.mark.parametrize("template", ["index.html", "login.html"])
def test_pages_load_only_shipped_files_and_no_inline_script(template: str) -> None:
    page = load_template(template)
    assert re.search(r"<script(?![^>]*\bsrc=)", page) is None
    assert re.search(r"\son[a-z]+=", page) is None  # no inline event handlers
    assert "style=" not in page
    for link in re.findall(r'(?:src|href)="/ui/assets/([^"]+)"', page):
        assert link in ASSETS


def test_every_module_is_reachable_from_the_entry_point() -> None:
    """No dead file ships: main.js reaches every module through its imports."""
    seen, todo = set(), ["js/main.js"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for target in IMPORT.findall(SCRIPTS[name]):
            todo.append(posixpath.normpath(posixpath.join(posixpath.dirname(name), target)))
    assert seen == set(SCRIPTS)
