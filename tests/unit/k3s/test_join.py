"""palplat.k3s.join: the join token against the running cluster."""

from __future__ import annotations

import pytest

from palplat import k3s
from tests.unit.k3s.support import load


def test_token_check_falls_back_to_the_servers_own_copy(tmp_path):
    away = "https://127.0.0.1:9"
    cfg = load(tmp_path, server_url=away, token="right-token", cluster_init=False)
    token_file = k3s.paths(cfg).token_file
    token_file.parent.mkdir(parents=True)
    token_file.write_text("K10" + "a" * 64 + "::server:right-token\n")
    assert k3s.check_token(cfg) == "token matches the running cluster"
    wrong = load(tmp_path, server_url=away, token="wrong-token", cluster_init=False)
    with pytest.raises(k3s.TokenMismatch, match="nothing was restarted"):
        k3s.check_token(wrong)
    agent = load(tmp_path / "a", role="agent", server_url=away, token="right-token")
    with pytest.raises(k3s.SourceError, match="cannot reach palplat:k3s:server_url"):
        k3s.check_token(agent)
