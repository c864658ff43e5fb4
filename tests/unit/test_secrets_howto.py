"""The secrets how-to works on the file it describes: each CHANGE-ME line of
pillar/palplat/secrets.sls, replaced by what `make encrypt` prints with the KEY, INDENT
and ANCHOR its comment gives, yields a pillar that renders (#!yaml|palplat) and validates
with no plain text left."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import yaml

from palplat import config, gpgtool
from tests.support import example as example_pillar
from tests.support.saltenv import REPO, make_gpg_home

LINE = re.compile(r"^(\s*)(\S+): (?:&(\S+) )?(CHANGE-ME-\S+)\s+# (.*)$")


def test_each_placeholder_line_takes_the_printed_block(tmp_path):
    home, fpr = make_gpg_home(tmp_path / "gpg")
    values = {}
    out = []
    text = (REPO / "pillar/palplat/secrets.sls").read_text()
    for line in text.splitlines():
        m = LINE.match(line)
        if not m:
            assert "CHANGE-ME" not in line.split("#")[0], f"a placeholder without a how-to: {line}"
            out.append(line)
            continue
        indent, key, anchor, placeholder, how = m.groups()
        args = dict(a.split("=", 1) for a in how.split())
        assert args["KEY"] == key and int(args["INDENT"]) == len(indent), line
        assert args.get("ANCHOR") == anchor, line
        values[placeholder] = example_pillar.test_value(placeholder)
        block = gpgtool.yaml_block(
            gpgtool.encrypt(values[placeholder], fpr, home), key, len(indent), anchor=anchor
        )
        out.append(block.rstrip("\n"))
    body = "\n".join(out)
    assert body.startswith("#!yaml|palplat\n")
    data = gpgtool.decrypt_tree(yaml.safe_load(body), home)
    merged = example_pillar.merge(
        yaml.safe_load((REPO / "pillar/palplat/init.sls").read_text()), data
    )
    cfg = config.load(merged, plaintext_secrets=False)
    assert cfg.k3s.token.origin == "decrypted"
    assert (
        cfg.services.defaults.object_store.secret_key.reveal()
        == values["CHANGE-ME-minio-backup-key"]
    )


def test_palplat_encrypt_prints_the_key_indent_and_anchor(tmp_path):
    home, fpr = make_gpg_home(tmp_path / "gpg")
    env = dict(os.environ, GNUPGHOME=home)
    out = subprocess.run(
        [sys.executable, str(REPO / "tools/palplat-encrypt"), "--recipient", fpr,
         "--key", "rootUser", "--indent", "10", "--anchor", "minio_user"],
        input="a-value", capture_output=True, text=True, env=env, check=True, timeout=60,
    ).stdout  # fmt: skip
    assert out.startswith(
        "          rootUser: &minio_user |\n            -----BEGIN PGP MESSAGE-----"
    )
