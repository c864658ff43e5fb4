"""Sphinx configuration of palplat's documentation (`make docs`; warnings are errors).

The pages are Markdown (MyST). Two references are generated from the code at build time
(docs/_ext/palplat_docs.py, into docs/_generated/, not committed): the configuration
reference from the pillar model (palplat.schema.entries), and the module reference from
the loader modules' docstrings (execution, state, runner and output modules).
"""

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
sys.path[:0] = [str(REPO / "_utils"), str(DOCS / "_ext")]

project = "palplat"
author = "palplat developers"
copyright = "palplat developers, Apache-2.0"  # noqa: A001 - Sphinx's name
try:
    import palplat

    release = version = palplat.__version__
except ImportError:  # pragma: no cover
    release = version = "0+checkout"

extensions = ["myst_parser", "sphinx.ext.autodoc", "palplat_docs"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_generated/toc-*.md"]
myst_heading_anchors = 3
myst_enable_extensions = ["deflist"]
autodoc_default_options = {"members": True, "undoc-members": False}
autodoc_typehints = "signature"
html_theme = "furo"
html_title = f"palplat {release}"
nitpicky = False
# the generated plan examples are pull-request comments: their headings start at H2
suppress_warnings = ["myst.header"]
