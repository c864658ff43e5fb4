"""Interval arithmetic for addresses and ports: the normal form of sets and port lists.

An address is an integer (IPv4 or IPv6, told apart by a version 4 / 6); a set of addresses
or ports is a tuple of merged, sorted, inclusive ``(lo, hi)`` intervals, so two sets are
equal exactly when their normal forms are.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

MAX = {4: 2**32 - 1, 6: 2**128 - 1}
FULL = {4: ((0, MAX[4]),), 6: ((0, MAX[6]),)}

Interval = tuple[int, int]
Intervals = tuple[Interval, ...]


def merge(intervals: Iterable[Interval]) -> Intervals:
    """Sorted, non-overlapping, non-adjacent intervals (the normal form of a set)."""
    out: list[list[int]] = []
    for lo, hi in sorted(intervals):
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return tuple((a, b) for a, b in out)


def covers(big: Intervals, small: Intervals) -> bool:
    """Every interval of ``small`` lies inside one interval of merged ``big``."""
    big = merge(big)
    return all(any(a <= lo and hi <= b for a, b in big) for lo, hi in small)


def ip_int(addr: str) -> tuple[int, int]:
    """``"10.0.0.1"`` -> (4, 167772161); raises :class:`OSError` for a non-address."""
    if ":" in addr:
        return 6, int.from_bytes(socket.inet_pton(socket.AF_INET6, addr), "big")
    return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, addr), "big")


def net_interval(cidr: str) -> tuple[int, Interval]:
    """``10.0.0.0/8`` -> (4, (first, last)); a bare address is a single host."""
    addr, _, plen = cidr.partition("/")
    try:
        ver, ip = ip_int(addr)
    except OSError:
        raise ValueError(f"not an IP address: {addr}") from None
    bits = 32 if ver == 4 else 128
    host = bits - (int(plen) if plen else bits)
    lo = ip >> host << host
    return ver, (lo, lo | ((1 << host) - 1))


def split_cidrs(cidrs: Iterable[str]) -> dict[int, Intervals]:
    out: dict[int, list[Interval]] = {4: [], 6: []}
    for c in cidrs:
        ver, iv = net_interval(c)
        out[ver].append(iv)
    return {v: merge(ivs) for v, ivs in out.items()}


def _ip_str(ver: int, value: int) -> str:
    if ver == 4:
        return socket.inet_ntop(socket.AF_INET, value.to_bytes(4, "big"))
    return socket.inet_ntop(socket.AF_INET6, value.to_bytes(16, "big"))


def addr_elements(ver: int, intervals: Intervals) -> list[str]:
    """Render intervals as the fewest CIDRs (single hosts as bare addresses)."""
    bits = 32 if ver == 4 else 128
    cls = ipaddress.IPv4Address if ver == 4 else ipaddress.IPv6Address
    out: list[str] = []
    for lo, hi in intervals:
        size = hi - lo + 1
        if size & (size - 1) == 0 and lo % size == 0:  # exactly one prefix (fast path)
            plen = bits - (size.bit_length() - 1)
            out.append(_ip_str(ver, lo) if plen == bits else f"{_ip_str(ver, lo)}/{plen}")
            continue
        for net in ipaddress.summarize_address_range(cls(lo), cls(hi)):
            out.append(str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net))
    return out


def port_intervals(ports: Iterable[int | str]) -> Intervals:
    ivs = []
    for p in ports:
        if isinstance(p, int):
            ivs.append((p, p))
        else:
            lo, hi = (int(x) for x in str(p).split("-"))
            ivs.append((lo, hi))
    return merge(ivs)


def ports_text(ports: Intervals) -> str:
    """nft's syntax for a port list: ``22``, ``{ 80, 443, 30000-32767 }``."""
    items = [str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in ports]
    return items[0] if len(items) == 1 else "{ " + ", ".join(items) + " }"
