"""The pinned helm install (palplat:platform:helm): the real helm binary, packed as a helm
release archive and served with its .sha256sum from a local HTTP server."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import shutil
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest

from palplat import config
from palplat.fetch import ChecksumError, SourceError, arch
from palplat.helm import install as helm_install
from tests.support.saltenv import CHECKOUT_DIRS

pytestmark = [pytest.mark.helm]


def _version(helm_bin) -> str:
    return subprocess.run(
        [helm_bin, "version", "--template", "{{.Version}}"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip


@pytest.fixture(scope="module")
def release_server(tmp_path_factory, helm_bin):
    """Serves helm-<version>-linux-<arch>.tar.gz (+ .sha256sum) like get.helm.sh."""
    root = tmp_path_factory.mktemp("helm-releases")
    version = _version(helm_bin)
    name = f"helm-{version}-linux-{arch()}.tar.gz"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(Path(helm_bin).resolve(), arcname=f"linux-{arch()}/helm")
        readme = f"helm {version}\n".encode()
        info = tarfile.TarInfo(f"linux-{arch()}/README.md")
        info.size = len(readme)
        tar.addfile(info, io.BytesIO(readme))
    (root / name).write_bytes(buf.getvalue())
    digest = hashlib.sha256(buf.getvalue()).hexdigest()
    (root / f"{name}.sha256sum").write_text(f"{digest}  {name}\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield {
        "url": f"http://127.0.0.1:{srv.server_port}/helm-{{version}}-linux-{{arch}}.tar.gz",
        "version": version,
        "root": root,
        "digest": digest,
    }
    srv.shutdown()


def cfg_of(tmp_path, server, **helm):
    h = {"version": server["version"], "url": server["url"], "path": str(tmp_path / "bin/helm")}
    h.update(helm)
    return config.load({"palplat": {"platform": {"helm": h}}})


def test_install_then_noop(tmp_path, release_server):
    cfg = cfg_of(tmp_path, release_server)
    plan = helm_install.plan(cfg)
    want = {
        "helm": {"old": None, "new": release_server["version"], "path": str(tmp_path / "bin/helm")}
    }
    assert plan.changes == want
    assert helm_install.install(cfg, plan) == want
    assert helm_install.installed_version(tmp_path / "bin/helm") == release_server["version"]
    assert helm_install.binary(cfg) == str(tmp_path / "bin/helm")
    assert helm_install.plan(cfg).changes == {}
    assert not list((tmp_path / "bin").glob(".palplat-helm-*")), "download leftovers"


def test_checksum_mismatch_keeps_the_installed_helm(tmp_path, release_server):
    old = tmp_path / "bin/helm"
    old.parent.mkdir(parents=True)
    old.write_text("#!/bin/sh\necho v3.0.0\n")
    old.chmod(0o755)
    cfg = cfg_of(tmp_path, release_server, sha256="0" * 64)
    with pytest.raises(ChecksumError) as exc:
        helm_install.install(cfg, helm_install.plan(cfg))
    assert "palplat:platform:helm:sha256" in str(exc.value)
    assert old.read_text() == "#!/bin/sh\necho v3.0.0\n"


def test_archive_with_another_version_is_refused(tmp_path, release_server):
    other = "v3.1.0"
    src = release_server["root"] / f"helm-{release_server['version']}-linux-{arch()}.tar.gz"
    shutil.copy(src, release_server["root"] / f"helm-{other}-linux-{arch()}.tar.gz")
    cfg = cfg_of(tmp_path, release_server, version=other, sha256=release_server["digest"])
    with pytest.raises(ChecksumError, match=f"holds helm {release_server['version']}, not {other}"):
        helm_install.install(cfg, helm_install.plan(cfg))
    assert not (tmp_path / "bin/helm").exists()


def test_unreachable_source(tmp_path, release_server):
    cfg = cfg_of(tmp_path, release_server, url="http://127.0.0.1:9/helm-{version}.tar.gz")
    with pytest.raises(SourceError, match="cannot download"):
        helm_install.install(cfg, helm_install.plan(cfg))


def test_bad_pin_is_a_pillar_error():
    with pytest.raises(config.PillarError, match="palplat:platform:helm:version"):
        config.load({"palplat": {"platform": {"helm": {"version": "3.22"}}}})


def test_state_through_salt_loader(tmp_path, release_server):
    import salt.config
    import salt.loader

    pillar = {
        "palplat": {
            "platform": {
                "helm": {
                    "version": release_server["version"],
                    "url": release_server["url"],
                    "path": str(tmp_path / "bin/helm"),
                }
            }
        }
    }
    opts = salt.config.minion_config(None)
    opts["palplat_plaintext_secrets"] = True  # test pillars hold plain text
    opts.update(
        {
            "file_client": "local",
            "cachedir": str(tmp_path / "cache"),
            **CHECKOUT_DIRS,
        }
    )

    def installed(test):
        o = dict(opts, test=test, pillar=pillar)
        utils = salt.loader.utils(o)
        funcs = salt.loader.minion_mods(o, utils=utils, whitelist=["config", "event", "cp"])
        funcs["event.fire"] = lambda data, tag: None
        states = salt.loader.states(o, funcs, utils, {})
        return states["palplat_helm.installed"]("helm")

    plan = installed(True)
    assert plan["result"] is None
    assert not (tmp_path / "bin/helm").exists()
    done = installed(False)
    assert done["result"] is True, done
    assert done["changes"] == plan["changes"]
    again = installed(False)
    assert again["result"] is True and again["changes"] == {}
    assert installed(True)["changes"] == {}
