"""The rollback program (``python -m palplat.nft_rollback``): what a timer runs at the
deadline."""

from palplat import nft_rollback


def test_the_rollback_program_ignores_a_confirmed_or_superseded_record(tmp_path):

    rec = tmp_path / "pending.json"
    assert nft_rollback.fire(str(rec)) == 0  # nothing pending: nothing runs
    nft_rollback.write(str(rec), {"token": "a", "restore_argv": ["false"]})
    assert nft_rollback.fire(str(rec), token="b") == 0  # a newer change owns the record
    assert rec.exists()
    assert nft_rollback.fire(str(rec), token="a") == 1  # restore failed: record kept
    assert rec.exists()
    assert nft_rollback.read(nft_rollback.outcome_path(str(rec)))["outcome"] == "rollback failed"
