"""The ``nft`` command line: list (JSON and text), check, load; inside a network namespace
when one is set."""

from __future__ import annotations

import json
from collections.abc import Callable

from palplat import proc
from palplat.errors import CommandError, PalplatError
from palplat.nft.ruleset import FAMILY, Table, parse

NFT_TIMEOUT = 120


class NftRejected(PalplatError):
    """``nft -c`` refused a script: nothing was applied."""


class Nft:
    """Runs ``nft`` (inside ``netns`` when set) through :func:`palplat.proc.run`."""

    def __init__(self, netns: str | None = None, run: Callable[..., proc.Result] = proc.run):
        self.netns = netns
        self.run = run
        self.prefix = (["ip", "netns", "exec", netns] if netns else []) + ["nft"]

    def _list(self, args: list[str]) -> str | None:
        res = self.run(self.prefix + args, check=False, timeout=NFT_TIMEOUT)
        if res.returncode != 0:
            if "No such file or directory" in res.stderr:
                return None
            raise CommandError(res.argv, res.returncode, res.stderr, res.stdout)
        return res.stdout

    def list_json(self, name: str) -> dict | None:
        out = self._list(["-j", "list", "table", FAMILY, name])
        return None if out is None else json.loads(out)

    def list_text(self, name: str) -> str | None:
        return self._list(["list", "table", FAMILY, name])

    def live(self, name: str) -> Table | None:
        data = self.list_json(name)
        return None if data is None else parse(data, name)

    def check(self, script: str) -> None:
        try:
            self.run(self.prefix + ["-c", "-f", "/dev/stdin"], input=script, timeout=NFT_TIMEOUT)
        except CommandError as exc:
            raise NftRejected(
                "nft -c rejected the rendered ruleset, so nothing was changed: "
                f"{exc.stderr.strip()[-1500:]} -- check the names in palplat:firewall "
                "(interfaces, sets) and that nftables is 0.9.3 or newer"
            ) from None

    def load(self, script: str) -> None:
        self.run(self.prefix + ["-f", "/dev/stdin"], input=script, timeout=NFT_TIMEOUT)

    def restore_argv(self, path: str) -> list[str]:
        return self.prefix + ["-f", path]


class NotInstalled(Nft):
    """The plan on a host without ``nft`` yet (the firewall stage installs nftables first):
    no live table, and the rendered table is checked with ``nft -c`` in the real run."""

    def _list(self, args: list[str]) -> str | None:
        return None

    def check(self, script: str) -> None:
        return None


def installed(run_which=None) -> bool:
    """Whether ``nft`` is on PATH."""
    import shutil

    return (run_which or shutil.which)("nft") is not None
