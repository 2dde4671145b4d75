"""pybpf.btf.valuedump without a kernel: what the bpftool comparisons in
tests/kernel/test_kernel_btf_dumps.py cannot reach (short or odd input, the plain/JSON split of the
same value, names that repeat), on the BTF of a clang-built object."""

from __future__ import annotations

import struct

from conftest import compile_bpf

from pybpf.btf import BTF, Kind
from pybpf.btf.valuedump import Pairs, Raw, ValueFormatter, type_signature

SOURCE = r"""
#include <linux/types.h>
enum mode { OFF, ON = 7 };
struct rec {
    char name[6];
    enum mode mode;
    unsigned int flag:1, level:4;
    struct { __u8 a; };
    union { __u8 b; };
    void *where;
};
struct rec one;
int __attribute__((noinline)) __attribute__((btf_decl_tag("tagged"))) use(struct rec *r, int) { return r->mode; }
int entry(void) { return use(&one, 1); }
"""


def _btf() -> BTF:
    return BTF.from_file(compile_bpf(SOURCE, name="valuedump"))


def _record() -> bytes:
    # name[6] + padding, mode, the bitfields' byte, then a and b packed after them (bytes 13, 14), where
    return b"hey\0\0\0\0\0" + struct.pack("<iBBBxQ", 7, 1 | (9 << 1), 5, 6, 0xFF00)


def test_json_and_plain_views_of_one_value():
    btf = _btf()
    rec = btf.find("rec", Kind.STRUCT)
    as_json = ValueFormatter(btf).format(rec.id, _record())
    as_plain = ValueFormatter(btf, plain=True).format(rec.id, _record())
    # two anonymous members share the name "": kept in order, both of them
    assert isinstance(as_json, Pairs) and [name for name, _ in as_json] == ["name", "mode", "flag", "level",
                                                                            "", "", "where"]
    values = list(as_json)
    assert values[0][1] == "hey" and values[1][1] == "ON" and values[4][1] == {"a": 5} and values[5][1] == {"b": 6}
    # bitfields: hex strings in JSON, bare hex in plain text; pointers: a number, or printf's %p
    assert values[2][1] == "0x1" and values[3][1] == "0x9" and values[6][1] == 0xFF00
    plain = dict(as_plain)
    assert plain["level"] == Raw("0x9") and isinstance(plain["level"], Raw) and plain["where"] == Raw("0xff00")


def test_short_data_reads_as_zeros_and_bad_ids_do_not_raise():
    btf = _btf()
    rec = btf.find("rec", Kind.STRUCT)
    short = dict(ValueFormatter(btf, plain=True).format(rec.id, b"ab"))
    assert short["name"] == "ab" and short["mode"] == "OFF" and short["where"] == Raw("(nil)")
    assert type_signature(btf, 10**6) == ""  # no such type: bpftool prints no prototype


def test_prototypes():
    btf = _btf()
    # no parameters: "()" as bpftool prints it (tests/kernel/test_kernel_btf_dumps.py checks zero_args)
    assert type_signature(btf, btf.find("entry", Kind.FUNC).id) == "int entry()"
    # an unnamed parameter has no name and no space before ')'
    assert type_signature(btf, btf.find("use", Kind.FUNC).id) == "int use(struct rec * r, int)"
