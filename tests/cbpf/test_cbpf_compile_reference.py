"""pybpf's filter compiler against the installed libpcap (tcpdump's), expression by expression.

Every expression of filter_expressions.txt is compiled on one link type of
each kind libpcap distinguishes, and a sample of every primitive on all the
other link types libpcap knows, optimized and not, by both; the instruction
lists must be identical, and when libpcap refuses an expression pybpf must
refuse it with the same message.
"""

from __future__ import annotations

import pytest

import filter_cases as cases
import libpcap_reference as ref

pytestmark = pytest.mark.skipif(ref.MISSING is not None, reason=ref.MISSING or "")


def _mismatches(dlt: str, exprs, optimize: bool, snaplen: int = 262144) -> list[str]:
    out = []
    for expr in exprs:
        want = cases.outcome_ref(expr, dlt, snaplen, optimize)
        got = cases.outcome_ours(expr, dlt, snaplen, optimize)
        if not cases.same(want, got):
            out.append(f"{expr!r}:\n  libpcap {want}\n  pybpf   {got}")
    return out


@pytest.mark.parametrize("dlt", cases.FULL_LINKTYPES)
@pytest.mark.parametrize("optimize", [True, False], ids=["optimized", "unoptimized"])
def test_listing_identical_to_libpcap(dlt, optimize):
    bad = _mismatches(dlt, cases.EXPRESSIONS, optimize)
    assert not bad, f"{len(bad)} of {len(cases.EXPRESSIONS)} differ on {dlt}:\n" + "\n".join(bad[:10])


@pytest.mark.parametrize("optimize", [True, False], ids=["optimized", "unoptimized"])
def test_every_other_link_type_like_libpcap(optimize):
    assert len(cases.FULL_LINKTYPES) + len(cases.OTHER_LINKTYPES) == 152
    bad = [f"{dlt} {m}" for dlt in cases.OTHER_LINKTYPES
           for m in _mismatches(dlt, cases.SAMPLE_EXPRESSIONS, optimize)]
    assert not bad, "\n".join(bad[:10])


def test_link_types_outside_libpcaps_range_are_refused_like_libpcap():
    for dlt in (2, 3, 100, 290, 1000):
        want = cases.outcome_ref("ip", dlt)
        assert want.startswith("error: unknown data link type")
        assert cases.outcome_ours("ip", dlt) == want


@pytest.mark.parametrize("snaplen", [1, 68, 96, 65535, 0x7FFFFFFF])
def test_snaplen_is_the_accept_return_value(snaplen):
    for expr in ("", "tcp port 80", "not ip", "less 100"):
        assert cases.outcome_ours(expr, "EN10MB", snaplen) == cases.outcome_ref(expr, "EN10MB", snaplen)


def test_refusals_match_libpcap_messages():
    bad = ["port 99999", "portrange 1-70000", "tcp[100000 - 100001]", "ip proto 300", "ether proto 70000",
           "host 1.2.3.4.5", "net 10.0.0.1/8", "net 10.0.0.0/33", "net 10.0.0.1 mask 255.0.0.0", "ip6 net fd00::1/8",
           "ip6 host fd00::/64", "tcp proto 6", "arp proto 6", "udp port ssh and tcp port domain", "tcp port ntp",
           "ip6 host 1.2.3.4", "ip host fd00::1", "ether host 1.2.3.4", "ether net 10.0.0.0/8", "port 1.2.3.4",
           "vlan 4096", "mpls 1048576", "pppoes 65536", "geneve 16777216", "mpls and vlan", "mpls and arp",
           "ip[0:3] = 1", "len / 0 = 1", "len % 0 = 1", "len << 32 = 1", "len >> 33 = 1", "link[0] / 0 > 1",
           "1 = 1 and 2 = 3 and ip6 and ip", "ip and not ip", "less 100 and greater 200 and 1 = 2",
           "proto \\nosuchproto", "port nosuchservice", "host no.such.host.invalid", "net no-such-net",
           "src proto 6", "gateway 1.2.3.4", "ether host nosuchhost", "decnet host 64.1024", "protochain 300",
           "ip broadcast", "wlan host 1:2:3:4:5:6", "radio[0] = 1", "ip6 protochain \\bogus", "icmp6 proto 1"]
    mismatches = []
    for dlt in ("EN10MB", "RAW", "LINUX_SLL2"):
        for expr in bad:
            for optimize in (True, False):
                want = cases.outcome_ref(expr, dlt, 262144, optimize)
                got = cases.outcome_ours(expr, dlt, 262144, optimize)
                if not cases.same(want, got):
                    mismatches.append(f"{dlt} {expr!r}: libpcap {want} / pybpf {got}")
    assert not mismatches, "\n".join(mismatches)


def _random_expressions(rng, count: int, dlt: str, junk_rate: float) -> list[str]:
    """Nested and/or/not of primitives libpcap accepts on dlt, some with a stray token or bad number."""
    atoms = [e for e in cases.EXPRESSIONS
             if " and " not in e and " or " not in e and not isinstance(cases.outcome_ref(e, dlt), str)]
    junk = ["and", "or", "not", "(", ")", "08", "4294967296", "@", "1:2:3:4:5:6:7", "port", "=", "ip[0:3]", "len /",
            "vpi 1", "type mgt", "on eth0", "sio 3", "lane"]

    def expr(depth: int) -> str:
        if depth == 0 or rng.random() < 0.2:
            atom = rng.choice(atoms)
            return atom if rng.random() < 0.8 else f"not ({atom})"
        return "(" + rng.choice([" and ", " or "]).join(expr(depth - 1) for _ in range(rng.randint(2, 4))) + ")"

    out = []
    for _ in range(count):
        words = expr(rng.randint(1, 4)).split()
        if rng.random() < junk_rate:
            words.insert(rng.randint(0, len(words)), rng.choice(junk))
        out.append(" ".join(words))
    return out


def test_random_and_broken_expressions_like_libpcap():
    """Long programs (long-jump layout) and errors met mid-way: libpcap reports the first it meets,
    a code-generation error before a later syntax or scanner error."""
    import random

    rng = random.Random(20240611)
    bad = []
    accepted = long = 0
    for dlt in ("EN10MB", "IEEE802_11_RADIO", "PFLOG", "SUNATM", "MTP2", "ARCNET", "FDDI", "LINUX_SLL2"):
        for expr in _random_expressions(rng, 30, dlt, 0.4):
            for optimize in (True, False):
                want = cases.outcome_ref(expr, dlt, 262144, optimize)
                got = cases.outcome_ours(expr, dlt, 262144, optimize)
                accepted += not isinstance(want, str)
                long += not isinstance(want, str) and len(want) > 256
                if not cases.same(want, got):
                    bad.append(f"{dlt} {expr!r}: libpcap {str(want)[:80]} / pybpf {str(got)[:80]}")
    assert not bad, "\n".join(bad[:10])
    assert accepted > 120 and long > 8
