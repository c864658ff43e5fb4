"""palplat.k3s.ready: a k3s that never becomes ready times out naming what is missing."""

from __future__ import annotations

import pytest

from palplat import k3s, units
from palplat.errors import WaitTimeout
from tests.unit.k3s.support import load


def test_never_ready_names_what_is_missing(tmp_path):
    cfg = load(tmp_path, ready_timeout=10)
    sm = units.Processes(tmp_path)
    sm.write_unit("k3s.service", "[Service]\nExecStart=/bin/sleep 60\n")
    sm.start("k3s.service")
    events = []
    try:
        with pytest.raises(WaitTimeout) as exc:
            k3s.wait_ready(cfg, progress=lambda phase, msg, **kw: events.append(phase), timeout=1.5)
    finally:
        sm.stop("k3s.service")
    msg = str(exc.value)
    assert "not ready after 1.5s" in msg and "kubeconfig" in msg and "not written yet" in msg
    assert events[0] == "start" and events[-1] == "timeout"
