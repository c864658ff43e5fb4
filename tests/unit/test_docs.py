"""The documentation cannot drift from the code: every pillar path, every ``salt`` /
``salt-call`` / ``salt-run`` function, every SLS and every ``make`` target the docs and
the README name must exist; and the Sphinx site builds without a warning (``make docs``,
marked slow: ~15 s).

Pillar paths are checked against the pillar model (:func:`palplat.schema.is_path`: keys
the operator names, such as a release or a chart value, accept anything). Functions are
checked against palplat's loader modules and Salt's own modules and runners (by their
virtual names, read from Salt's source without importing it)."""

from __future__ import annotations

import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from palplat import schema

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
PAGES = sorted(
    [REPO / "README.md", REPO / "CHANGELOG.md", *DOCS.glob("*.md")],
    key=str,
)
# paths the docs show on purpose as wrong (what an error message looks like)
SHOWN_WRONG = {
    "palplat:services:pal-e-docs:prot",  # "unknown key; did you mean 'port'?"
    "palplat:k3s:config:node-lable",  # "is not a k3s server flag; did you mean ..."
    "palplat:k3s:config:flanel-backend",
    "palplat:host:users:Pal!",
}
PATH_RE = re.compile(r"(?<![\w@/$.-])palplat(?::[A-Za-z0-9_.<>{}\-]+)+")
# the short form the docs use in code spans: `host:manage`, `k3s:extra_flags`
SECTIONS = ("host", "firewall", "k3s", "gpu", "platform", "services")
SHORT_RE = re.compile(r"`((?:" + "|".join(SECTIONS) + r")(?::[A-Za-z0-9_.<>{}\-]+)+)")
# options: -l debug, -c /etc/salt, -t 30 (a value after a space), --out=json, --local
OPTS = r"((?:(?:-[lct]\s+\S+|--[\w-]+(?:=\S+)?|-\w+)\s+)*)"
FUN = r"([a-z_][a-z0-9_]*)\.([a-z_][a-z0-9_]*)\b"
SALT_RE = re.compile(
    r"\b(salt-run|salt-call)\s+"
    + OPTS
    + FUN
    + r"|\b(salt)\s+"
    + OPTS
    + r"(?:'[^']*'|\"[^\"]*\"|[\w<>.*-]+)\s+"
    + FUN
)
SLS_RE = re.compile(
    r"\b(?:state\.apply|state\.sls|state\.orchestrate|state\.sls_id\s+\S+)\s+(palplat\.[a-z0-9_]+)"
)
# in code: at the start of a line (a code block) or of a code span
MAKE_RE = re.compile(r"(?:^[ \t]*|`)make\s+([a-z][a-z0-9-]*)\b", re.M)


def text_of(page: Path) -> str:
    return page.read_text() if page.exists() else ""


# ------------------------------------------------------------------ pillar paths


def pillar_paths() -> list[tuple[str, str]]:
    out = []
    for page in PAGES:
        text = text_of(page)
        found = [m.group(0) for m in PATH_RE.finditer(text)]
        found += [f"palplat:{m.group(1)}" for m in SHORT_RE.finditer(text)]
        for raw in found:
            path = raw.rstrip(".:-")
            if "*" in path or path in ("palplat", "palplat:<path>"):
                continue
            out.append((page.relative_to(REPO).as_posix(), path))
    return out


def test_every_pillar_path_in_the_docs_exists():
    found = pillar_paths()
    assert len(found) > 100  # the docs do name pillar paths
    bad = sorted(
        {
            (page, path)
            for page, path in found
            if path not in SHOWN_WRONG and not schema.is_path(path)
        }
    )
    assert bad == [], "pillar paths the model does not have:\n" + "\n".join(
        f"  {page}: {path}" for page, path in bad
    )


def test_the_path_check_catches_a_wrong_path():
    assert schema.is_path("palplat:services:defaults:forge:api_url")
    assert schema.is_path("palplat:platform:releases:<release>:values:anything:below")
    assert not schema.is_path("palplat:services:defaults:forge:apiurl")
    assert not schema.is_path("palplat:gpu:device_plugin:time_slice")


# ----------------------------------------------------------------- salt functions


def _functions_in(path: Path) -> set[str]:
    text = path.read_text(errors="replace")
    names = set(re.findall(r"^def ([a-z][a-z0-9_]*)\(", text, re.M))
    for alias in re.findall(r"__func_alias__\s*=\s*\{([^}]*)\}", text, re.S):
        names |= set(re.findall(r":\s*[\"']([a-z0-9_]+)[\"']", alias))
    return names


def _virtual_name(path: Path) -> str:
    m = re.search(
        r"^__virtualname__\s*=\s*[\"']([a-z0-9_]+)[\"']", path.read_text(errors="replace"), re.M
    )
    return m.group(1) if m else path.stem


@cache
def known_functions() -> dict[str, dict[str, set[str]]]:
    """``{"execution"|"runner"|"state": {module: {functions}}}`` of palplat and Salt."""
    import salt

    salt_dir = Path(salt.__file__).parent
    out: dict[str, dict[str, set[str]]] = {}
    for kind, dirs in (
        ("execution", [REPO / "_modules", salt_dir / "modules"]),
        ("runner", [REPO / "_runners", salt_dir / "runners"]),
        ("state", [REPO / "_states", salt_dir / "states"]),
    ):
        mods: dict[str, set[str]] = {}
        for d in dirs:
            for f in d.glob("*.py"):
                mods.setdefault(_virtual_name(f), set()).update(_functions_in(f))
        out[kind] = mods
    return out


def salt_calls() -> list[tuple[str, str, str, str]]:
    out = []
    for page in PAGES:
        for m in SALT_RE.finditer(text_of(page)):
            g = m.groups()
            prog, mod, fun = (g[0], g[2], g[3]) if g[0] else (g[4], g[6], g[7])
            out.append((page.relative_to(REPO).as_posix(), prog, mod, fun))
    return out


def test_every_salt_function_in_the_docs_exists():
    calls = salt_calls()
    assert len(calls) > 30
    known = known_functions()
    bad = []
    for page, prog, mod, fun in calls:
        kind = "runner" if prog == "salt-run" else "execution"
        if fun not in known[kind].get(mod, set()):
            bad.append(f"{page}: {prog} {mod}.{fun}")
    assert bad == [], "functions that do not exist:\n  " + "\n  ".join(sorted(set(bad)))


def test_state_single_and_sls_names_exist():
    known = known_functions()["state"]
    sls = {p.stem for p in (REPO / "salt" / "palplat").glob("*.sls")}
    bad = []
    for page in PAGES:
        text = text_of(page)
        for m in re.finditer(r"state\.single\s+([a-z_]+)\.([a-z_]+)", text):
            if m.group(2) not in known.get(m.group(1), set()):
                bad.append(f"{page.name}: state.single {m.group(1)}.{m.group(2)}")
        for m in SLS_RE.finditer(text):
            name = m.group(1).split(".", 1)[1]
            if name not in sls:
                bad.append(f"{page.name}: SLS {m.group(1)}")
    assert bad == []


def test_the_function_check_catches_a_wrong_name():
    known = known_functions()
    assert "state_tree" in known["runner"]["palplat"]
    assert "apply" in known["execution"]["state"] and "sync_all" in known["execution"]["saltutil"]
    assert (
        "list_" not in known["execution"]["palplat_kube"]
        or "list" in known["execution"]["palplat_kube"]
    )
    assert "upgrade" not in known["execution"].get("palplat_nftables", set())


# ------------------------------------------------------------------ make targets


def test_every_make_target_in_the_docs_exists():
    targets = set(re.findall(r"^([a-z][a-z0-9-]*):", (REPO / "Makefile").read_text(), re.M))
    found = []
    for page in PAGES:
        for m in MAKE_RE.finditer(text_of(page)):
            found.append((page.name, m.group(1)))
    assert found
    bad = sorted({f"{page}: make {t}" for page, t in found if t not in targets})
    assert bad == [], "make targets that do not exist:\n  " + "\n  ".join(bad)


# ------------------------------------------------------------------------ build


@pytest.mark.slow
def test_sphinx_builds_without_a_warning(tmp_path):
    """What `make docs` runs (warnings are errors), into a scratch directory."""
    res = subprocess.run(
        [sys.executable, "-m", "sphinx", "-q", "-W", "--keep-going", "-b", "html", "-d",
         str(tmp_path / "doctrees"), str(DOCS), str(tmp_path / "html")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-6000:]
    assert (tmp_path / "html" / "_generated" / "configuration-reference.html").exists()
    ref = (tmp_path / "html" / "_generated" / "modules.html").read_text()
    for fn in ("palplat_service.onboarded", "palplat_nftables.confirm", "palplat.state_tree"):
        mod, name = fn.split(".")
        assert name in ref and mod in ref, fn
