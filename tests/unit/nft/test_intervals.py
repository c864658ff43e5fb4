"""Address and port intervals: the normal form of sets and port lists."""

from palplat import nft


def test_intervals():
    assert nft.merge([(5, 9), (1, 3), (4, 4), (20, 30)]) == ((1, 9), (20, 30))
    assert nft.covers(((1, 9),), ((2, 3), (9, 9)))
    assert not nft.covers(((1, 9),), ((9, 10),))
    assert nft.port_intervals([443, "80-90", 91]) == ((80, 91), (443, 443))
