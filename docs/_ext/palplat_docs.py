"""Sphinx extension: the references generated from the code, so they cannot drift.

At ``builder-inited`` it writes into docs/_generated/ (not committed):

- ``configuration-reference.md``: every key of the ``palplat`` pillar from the pydantic
  model (:func:`palplat.schema.entries`): path, type, default, whether it is a secret
  (GPG-encrypted pillar), description;
- ``modules.rst``: every execution, state, runner and output module, its functions and
  their arguments from the docstrings (autodoc). The loader modules are imported under
  ``palplat_loader.<kind>.<module>`` (an execution and a state module share names);
- ``toc-capabilities.md``: a toctree of every other page in docs/ (a page someone adds is
  listed without editing the index).
"""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1]
REPO = DOCS.parent
OUT = DOCS / "_generated"
KINDS = (
    ("execution", "_modules", "Execution modules", "salt '*' <module>.<function>"),
    ("state", "_states", "State modules", "<id>: {<module>.<function>: [<arguments>]}"),
    ("runner", "_runners", "Runners", "salt-run <module>.<function>"),
    ("output", "_output", "Outputter", "--out=<name>"),
    ("renderer", "_renderers", "Renderer", "#!yaml|palplat (first line of a pillar file)"),
)
# the guide, in reading order (index.md lists them); everything else is a capability page
GUIDE = (
    "index",
    "installation",
    "quickstart",
    "first-run",
    "troubleshooting",
    "upgrading",
    "multi-node",
    "backup",
    "decommissioning",
    "DEVELOPING",
)
PLACEHOLDER_NOTE = (
    "Keys in angle brackets are names you choose: `<release>` a key of "
    "`palplat:platform:releases`, `<service>` a service, `<n>` a list index."
)


def _write(path: Path, text: str) -> None:
    """Write only when the text changed (Sphinx rebuilds what changed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def configuration_reference() -> str:
    from palplat import schema

    lines = [
        "# Configuration reference",
        "",
        "Generated from the pillar model (`palplat.schema`; the same model validates every "
        "pillar, and `schema/palplat.schema.json` is its JSON Schema for editors). "
        "**Secret** keys belong in the GPG-encrypted pillar (`#!yaml|palplat`; see "
        "[Installation](../installation.md#secrets)); palplat masks their values as "
        "`<hidden>` everywhere. " + PLACEHOLDER_NOTE,
        "",
    ]
    sections: dict[str, list[dict]] = {}
    for e in schema.entries():
        parts = e["path"].split(":")
        top = ":".join(parts[:2]) if len(parts) > 1 else "palplat"
        sections.setdefault(top, []).append(e)
    for top, items in sections.items():
        if top == "palplat":
            continue
        lines += [f"## `{top}`", ""]
        head = items[0]
        if head["description"]:
            lines += [head["description"], ""]
        lines += ["| key | type | default | secret | description |", "|---|---|---|---|---|"]
        for e in items[1:]:
            default = ""
            if e["has_default"] and e["default"] not in (None, {}, []):
                default = f"`{json.dumps(e['default'])}`"
            elif e["required"]:
                default = "required"
            lines.append(
                "| `{}` | {} | {} | {} | {} |".format(
                    e["path"],
                    _md_cell(e["type"]),
                    _md_cell(default),
                    "**secret**" if e["secret"] else "",
                    _md_cell(e["description"]),
                )
            )
        lines.append("")
    return "\n".join(lines)


def register_loader_modules() -> dict[str, list[tuple[str, str]]]:
    """Import every loader module as ``palplat_loader.<kind>.<stem>``; by kind, the
    ``(import name, Salt name)`` pairs."""
    root = types.ModuleType("palplat_loader")
    root.__path__ = []  # a package
    sys.modules.setdefault("palplat_loader", root)
    found: dict[str, list[tuple[str, str]]] = {}
    for kind, folder, _, _ in KINDS:
        pkg_name = f"palplat_loader.{kind}"
        pkg = types.ModuleType(pkg_name)
        pkg.__path__ = []
        sys.modules.setdefault(pkg_name, pkg)
        for path in sorted((REPO / folder).glob("*.py")):
            name = f"{pkg_name}.{path.stem}"
            if name not in sys.modules:
                spec = importlib.util.spec_from_file_location(name, path)
                mod = importlib.util.module_from_spec(spec)
                sys.modules[name] = mod
                spec.loader.exec_module(mod)
            mod = sys.modules[name]
            salt_name = getattr(mod, "__virtualname__", path.stem)
            found.setdefault(kind, []).append((name, salt_name))
    return found


def modules_reference() -> str:
    found = register_loader_modules()
    lines = [
        "Module reference",
        "================",
        "",
        "Generated from the docstrings of palplat's Salt modules. Execution modules run on "
        "a minion (``salt '*' palplat_kube.get ...``, ``salt-call ...``); state modules "
        "are used in SLS files and by palplat's own state tree (``salt/palplat/*.sls``); "
        "runners run on the master (``salt-run palplat.plan``); the outputter prints a "
        "report (``--out=palplat``); the renderer decrypts the pillar's secrets and marks "
        "them (``#!yaml|palplat``).",
        "",
    ]
    for kind, _, title, usage in KINDS:
        lines += [title, "-" * len(title), "", f"Usage: ``{usage}``", ""]
        for name, salt_name in found.get(kind, []):
            head = f"{salt_name} ({kind})"
            lines += [
                head,
                "~" * len(head),
                "",
                f".. automodule:: {name}",
                "   :members:",
                "",
            ]
    return "\n".join(lines)


def capabilities_toc() -> str:
    pages = sorted(
        p.stem for p in DOCS.glob("*.md") if p.stem not in GUIDE and not p.stem.startswith("_")
    )
    examples = sorted(f"examples/{p.stem}" for p in (DOCS / "examples").glob("*.md"))
    return "\n".join(
        [
            "```{toctree}",
            ":caption: What each stage does",
            ":maxdepth: 1",
            "",
            *pages,
            "```",
            "",
            "```{toctree}",
            ":caption: Generated examples",
            ":maxdepth: 1",
            "",
            *examples,
            "```",
            "",
        ]
    )


EXAMPLE_TITLES = {
    "examples/plan-one-change": "Example: the plan of a pull request with one change",
    "examples/plan-no-change": "Example: the plan of an unchanged pillar",
    "examples/status": "Example: salt-run palplat.status",
}


def _headings(lines: list[str]):
    """``(index, level)`` of every Markdown heading outside code fences."""
    fence = None
    for i, line in enumerate(lines):
        stripped = line.lstrip()
        mark = stripped[:3]
        if mark in ("```", "~~~"):
            run = len(stripped) - len(stripped.lstrip(mark[0]))
            if fence is None:
                fence = mark[0] * run
            elif stripped.startswith(fence) and not stripped[len(fence) :].strip():
                fence = None
            continue
        if fence is None and line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            if line[level : level + 1] == " ":
                yield i, level


def example_title(app, docname: str, source: list[str]) -> None:
    """The generated examples are pull-request comments (their headings start at H2 or
    H3): in the docs only, each page gets a title and its headings follow it."""
    if not docname.startswith("examples/"):
        return
    lines = source[0].split("\n")
    found = list(_headings(lines))
    top = min((level for _, level in found), default=2)
    for i, level in found:
        lines[i] = "#" * (level - top + 2) + lines[i][level:]
    title = EXAMPLE_TITLES.get(docname, f"Example: {docname.split('/', 1)[1]}")
    source[0] = f"# {title}\n\n" + "\n".join(lines)


def generate(app) -> None:
    _write(OUT / "configuration-reference.md", configuration_reference())
    _write(OUT / "modules.rst", modules_reference())
    _write(OUT / "toc-capabilities.md", capabilities_toc())


def setup(app):
    from pygments.lexers.special import TextLexer

    # the plans' needs graph is a Mermaid block (GitHub and Forgejo draw it); shown as text
    app.add_lexer("mermaid", TextLexer)
    app.connect("builder-inited", generate)
    app.connect("source-read", example_title)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
