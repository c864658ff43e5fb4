"""``proc.write_private``: a temp file (O_EXCL | O_NOFOLLOW) renamed over the target, so a
symlink planted at the path is replaced, never followed, and no reader sees a truncated
file."""

import os
import stat

from palplat import proc


def test_a_symlink_at_the_path_is_replaced_not_followed(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("root's file\n")
    link = tmp_path / "secret.key"
    link.symlink_to(victim)
    proc.write_private(str(link), "s3cr3t\n")
    assert victim.read_text() == "root's file\n"
    assert not link.is_symlink() and link.read_text() == "s3cr3t\n"
    assert stat.S_IMODE(os.stat(link).st_mode) == 0o600


def test_the_old_content_stays_whole_until_the_rename_and_no_temp_file_is_left(tmp_path):
    path = tmp_path / "values.json"
    path.write_text("old")
    os.chmod(path, 0o644)
    ino = os.stat(path).st_ino
    proc.write_private(str(path), b"new" * 1000)
    assert path.read_bytes() == b"new" * 1000
    assert os.stat(path).st_ino != ino  # a new file, renamed over the old one
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["values.json"]
