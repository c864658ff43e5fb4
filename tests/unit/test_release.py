"""palplat.release: the one download-verify-install path for pinned release artifacts
(helm, tailscale, k3s), against local files served by file:// and salt:// URLs."""

from __future__ import annotations

import hashlib
import io
import os
import re
import stat
import tarfile
from pathlib import Path

import pytest

from palplat import release
from palplat.errors import PalplatError
from palplat.fetch import ChecksumError, SourceError

V = "1.2.3"
PILLAR = "palplat:tool"


def binary(version: str) -> bytes:
    return f"#!/bin/sh\necho {version}\n".encode()


def version_of(path: Path) -> str | None:
    """What the tool's ``--version`` would say (read, not run)."""
    return path.read_text().split()[-1] if path.exists() else None


def tarball(path: Path, members: dict[str, bytes]) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("tool_1.2.3_amd64")
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
        for name, data in members.items():
            info = tarfile.TarInfo(f"tool_1.2.3_amd64/{name}")
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(buf.getvalue())
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def served(tmp_path):
    """A release directory with tool_1.2.3_amd64.tgz (tool, toold, README) and its sums."""
    d = tmp_path / "releases"
    d.mkdir()
    a = tarball(
        d / "tool_1.2.3_amd64.tgz",
        {"tool": binary(V), "toold": binary(V), "README": b"not installed\n"},
    )
    (d / "SHA256SUMS").write_text(f"{'1' * 64}  other.tgz\n{sha(a)}  {a.name}\n")
    return a


@pytest.fixture
def root(tmp_path):
    return tmp_path / "root"


def targets(root: Path) -> dict[str, Path]:
    return {"tool": root / "usr/bin/tool", "toold": root / "usr/sbin/toold"}


def install(art, root, **kw):
    kw.setdefault("what", "tool")
    kw.setdefault("version", V)
    kw.setdefault("version_of", version_of)
    release.install(art, targets(root), **kw)


def old_install(root: Path) -> None:
    for t in targets(root).values():
        t.parent.mkdir(parents=True, exist_ok=True)
        t.write_bytes(binary("1.0.0"))


def assert_left_in_place(root: Path) -> None:
    for t in targets(root).values():
        assert t.read_bytes() == binary("1.0.0")
    for d in {t.parent for t in targets(root).values()}:
        assert sorted(os.listdir(d)) == [t.name for t in targets(root).values() if t.parent == d]


def test_install_from_a_file_url_with_a_sums_file(served, root):
    progress = []
    art = release.Artifact(
        f"file://{served}", PILLAR, sums_url=f"file://{served.parent}/SHA256SUMS"
    )
    install(art, root, progress=lambda *a: progress.append(a))
    for t in targets(root).values():
        assert t.read_bytes() == binary(V)
        assert stat.S_IMODE(t.stat().st_mode) == 0o755
    assert sorted(os.listdir(root / "usr/bin")) == ["tool"]  # no work directory left
    assert progress == [("download", f"downloading tool {V} from file://{served}")]


def test_a_pinned_sha256_wins_over_the_sums_file(served, root):
    art = release.Artifact(str(served), PILLAR, sha256=sha(served).upper(), sums_url="/nowhere")
    install(art, root)
    assert version_of(root / "usr/sbin/toold") == V


def test_checksum_mismatch_says_where_the_expected_value_came_from(served, root):
    old_install(root)
    url = f"file://{served}"
    pinned = release.Artifact(url, PILLAR, sha256="0" * 64)
    with pytest.raises(ChecksumError) as exc:
        install(pinned, root, current="1.0.0")
    msg = str(exc.value)
    assert f"checksum mismatch for {url}: sha256 {sha(served)}, expected {'0' * 64}" in msg
    assert f"(from {PILLAR}:sha256)" in msg
    assert "the installed tool (1.0.0) was left in place" in msg
    assert f"Check {PILLAR} (url, sha256)" in msg
    assert_left_in_place(root)

    sums = served.parent / "tool.sha256"
    sums.write_text("f" * 64 + "\n")
    art = release.Artifact(url, PILLAR, sums_url=f"file://{sums}")
    with pytest.raises(ChecksumError, match=re.escape(f"expected {'f' * 64} (from file://{sums})")):
        install(art, root)
    assert_left_in_place(root)


def test_a_missing_member_is_refused(tmp_path, root):
    a = tarball(tmp_path / "tool.tgz", {"tool": binary(V)})
    old_install(root)
    with pytest.raises(ChecksumError) as exc:
        install(release.Artifact(str(a), PILLAR, sha256=sha(a)), root, current="1.0.0")
    msg = str(exc.value)
    assert f"{a} is not a tool release archive: it has no toold" in msg
    assert "left in place" in msg and f"Check {PILLAR}:url" in msg
    assert_left_in_place(root)


def test_not_a_tarball_is_refused(tmp_path, root):
    a = tmp_path / "tool.tgz"
    a.write_bytes(b"<html>a mirror's error page</html>")
    with pytest.raises(ChecksumError, match="is not a tool release archive: it has no tool, toold"):
        install(release.Artifact(str(a), PILLAR, sha256=sha(a)), root)
    assert not (root / "usr/bin/tool").exists()


def test_an_archive_of_another_version_is_refused(tmp_path, root):
    a = tarball(tmp_path / "tool.tgz", {"tool": binary(V), "toold": binary("1.1.0")})
    old_install(root)
    with pytest.raises(ChecksumError) as exc:
        install(release.Artifact(str(a), PILLAR, sha256=sha(a)), root, current="1.0.0")
    msg = str(exc.value)
    assert f"{a} holds toold 1.1.0, not {V}" in msg and "(1.0.0) was left in place" in msg
    assert_left_in_place(root)  # tool was right, but nothing is replaced before all are checked


def test_the_installed_version_is_read_back(served, root):
    art = release.Artifact(str(served), PILLAR, sha256=sha(served))

    def flaky(path):  # right before the install, wrong after it
        return V if path.parent.name == "unpacked" else "unknown"

    with pytest.raises(PalplatError, match=f"verify: {root}/usr/bin/tool reports unknown"):
        install(art, root, version_of=flaky)


def test_a_bare_binary_with_a_multi_line_sums_file_and_salt_url(tmp_path, root):
    d = tmp_path / "v1.2.3"
    d.mkdir()
    (d / "tool").write_bytes(binary(V))
    (d / "images.tar.zst").write_bytes(b"images")
    sums = f"{sha(d / 'images.tar.zst')}  images.tar.zst\n{sha(d / 'tool')}  tool\n"
    (d / "sha256sum-amd64.txt").write_text(sums)
    fetched = []

    def fetch_salt(url):
        fetched.append(url)
        return str(d / url.rsplit("/", 1)[1])

    art = release.Artifact(
        "salt://r/v1.2.3/tool", PILLAR, sums_url="salt://r/v1.2.3/sha256sum-amd64.txt"
    )
    target = root / "usr/local/bin/tool"
    release.install(
        art, {"tool": target}, what="tool", version=V, version_of=version_of,
        unpack=False, fetch_salt=fetch_salt,
    )  # fmt: skip
    assert target.read_bytes() == binary(V) and stat.S_IMODE(target.stat().st_mode) == 0o755
    assert fetched == ["salt://r/v1.2.3/tool", "salt://r/v1.2.3/sha256sum-amd64.txt"]
    assert sorted(os.listdir(target.parent)) == ["tool"]

    # a data file: no version to check, its own mode, no pin for it in the pillar
    images = root / "images/images.tar.zst"
    art = release.Artifact(
        f"file://{d}/images.tar.zst", PILLAR, sums_url=f"{d}/sha256sum-amd64.txt"
    )
    release.install(
        art, {"images.tar.zst": images}, what="images", version=V, unpack=False, mode=0o644
    )
    assert images.read_bytes() == b"images" and stat.S_IMODE(images.stat().st_mode) == 0o644

    (d / "sha256sum-amd64.txt").write_text(sums.replace("images.tar.zst", "k3s-images.tar"))
    sums_url = str(d / "sha256sum-amd64.txt")
    art = release.Artifact(str(d / "images.tar.zst"), PILLAR, sums_url=sums_url, pinnable=False)
    with pytest.raises(SourceError) as exc:
        release.install(art, {"images.tar.zst": images}, what="images", version=V, unpack=False)
    assert str(exc.value) == (
        f"{d}/sha256sum-amd64.txt lists no sha256 for images.tar.zst; check {PILLAR}:url"
    )


def test_no_checksum_source_and_an_unreachable_one(served, root):
    msg = f"no sha256 to check {served} against; pin {PILLAR}:sha256"
    with pytest.raises(SourceError, match=re.escape(msg)):
        install(release.Artifact(str(served), PILLAR), root)
    with pytest.raises(SourceError, match="cannot download file:///nowhere.sha256"):
        install(release.Artifact(str(served), PILLAR, sums_url="file:///nowhere.sha256"), root)
    assert not (root / "usr/bin/tool").exists()
    assert os.listdir(root / "usr/bin") == []


A, B = "a" * 64, "B" * 64


@pytest.mark.parametrize(
    ("text", "want"),
    [
        (f"{A}\n", A),  # <url>.sha256: a bare sha256
        (f"{A}", A),
        (f"{A}  tool.tgz\n", A),  # sha256sum's format
        (f"{A}  other-name.tgz\n", A),  # one line: whatever name (the sha still must match)
        (f"{A} *tool.tgz\n", A),  # binary mode
        (f"{B}  other.tgz\n{A}  tool.tgz\n", A),  # a multi-line sums file: the line for the name
        (f"{B}  ./dist/other.tgz\n{A}  ./dist/tool.tgz\n", A),
        (f"# sums\n\n{B}  tool.tgz\n", B.lower()),
        (f"{A}  other.tgz\n{B}  more.tgz\n", None),
        ("", None),
        ("404 page not found\n", None),
        (f"{A[:-1]}  tool.tgz\n", None),
    ],
)
def test_sums_file_formats(text, want):
    assert release.sha256_from_sums(text, "tool.tgz") == want


def test_the_file_name_defaults_to_the_urls():
    art = release.Artifact("https://x/download/v1.33.5%2Bk3s1/k3s?raw=1", PILLAR)
    assert art.file_name == "k3s"
    assert release.Artifact("salt://x/tool.tgz", PILLAR, name="t.tgz").file_name == "t.tgz"


def test_replace_across_filesystems(tmp_path):
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no second filesystem")
    new = shm / f"palplat-test-release-{os.getpid()}"
    new.write_bytes(b"new")
    target = tmp_path / "bin/tool"
    target.parent.mkdir()
    target.write_bytes(b"old")
    try:
        release._replace(new, target, 0o755)
    finally:
        new.unlink(missing_ok=True)
    assert target.read_bytes() == b"new" and stat.S_IMODE(target.stat().st_mode) == 0o755
    assert os.listdir(tmp_path / "bin") == ["tool"]
