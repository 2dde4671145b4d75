"""OpenBSD pf's log header in filters: interface, ruleset, rule numbers, reason, action, direction.

The offsets are those of struct pfloghdr as libpcap compiles it on Linux (no
BSD-specific fields); its length is in its first byte, rounded up to 4 to find
the logged packet.  Reason and action names are the ones libpcap knows on Linux.
"""

from __future__ import annotations

from . import insn as I
from .blocks import Block, Stmt, sappend
from .gencode_base import DLT, OR_LINKHDR, CodeGenBase, bpf_error

DLT_PFLOG = DLT["PFLOG"]
# struct pfloghdr field offsets
OFF_AF, OFF_ACTION, OFF_REASON, OFF_IFNAME, OFF_RULESET, OFF_RULENR, OFF_SUBRULENR, OFF_DIR = 1, 2, 3, 4, 20, 36, 40, 60
IFNAME_SIZE = RULESET_SIZE = 16
PF_IN, PF_OUT = 1, 2

REASONS = ("match", "bad-offset", "fragment", "short", "normalize", "memory", "bad-timestamp", "congestion",
           "ip-option", "proto-cksum", "state-mismatch", "state-insert", "state-limit", "src-limit", "synproxy")
ACTIONS = (("pass", 0), ("accept", 0), ("drop", 1), ("block", 1), ("scrub", 2), ("noscrub", 3), ("nat", 4),
           ("nonat", 5), ("binat", 6), ("nobinat", 7), ("rdr", 8), ("nordr", 9), ("synproxy-drop", 10))


class PflogCodeGen(CodeGenBase):
    def _require_pflog(self, what: str) -> None:
        if self.linktype != DLT_PFLOG:
            bpf_error(f"{what} supported only on PF linktype")

    def gen_pf_ifname(self, ifname: str) -> Block:
        self._require_pflog("ifname")
        if len(ifname) >= IFNAME_SIZE:
            bpf_error(f"ifname interface names can only be {IFNAME_SIZE - 1} characters")
        return self.gen_bcmp(OR_LINKHDR, OFF_IFNAME, ifname.encode())

    def gen_pf_ruleset(self, ruleset: str) -> Block:
        self._require_pflog("ruleset")
        if len(ruleset) >= RULESET_SIZE:
            bpf_error(f"ruleset names can only be {RULESET_SIZE - 1} characters")
        return self.gen_bcmp(OR_LINKHDR, OFF_RULESET, ruleset.encode())

    def gen_pf_rnr(self, rnr: int) -> Block:
        self._require_pflog("rnr")
        return self.gen_cmp(OR_LINKHDR, OFF_RULENR, I.W, rnr)

    def gen_pf_srnr(self, srnr: int) -> Block:
        self._require_pflog("srnr")
        return self.gen_cmp(OR_LINKHDR, OFF_SUBRULENR, I.W, srnr)

    def gen_pf_reason(self, tok) -> Block:
        kind, value = tok
        if kind == "name":
            lname = value.lower()
            if lname not in REASONS:
                bpf_error(f'unknown PF reason "{value}"')
            value = REASONS.index(lname)
        self._require_pflog("reason")
        return self.gen_cmp(OR_LINKHDR, OFF_REASON, I.B, value)

    def gen_pf_action(self, name: str) -> Block:
        lname = name.lower()
        found = [v for n, v in ACTIONS if n == lname]
        if not found:
            bpf_error(f'unknown PF action "{name}"')
        self._require_pflog("action")
        return self.gen_cmp(OR_LINKHDR, OFF_ACTION, I.B, found[0])

    def gen_pf_dir(self, outbound: bool) -> Block:
        return self.gen_cmp(OR_LINKHDR, OFF_DIR, I.B, PF_OUT if outbound else PF_IN)

    def gen_load_pflog_llprefixlen(self) -> Stmt | None:
        """The logged packet starts after the header: its length byte rounded up to a multiple of 4."""
        if self.off_linkpl.reg == -1:
            return None
        s1 = Stmt(I.LD | I.B | I.ABS, 0)
        sappend(s1, Stmt(I.ALU | I.ADD | I.K, 3))
        sappend(s1, Stmt(I.ALU | I.AND | I.K, 0xFFFFFFFC))
        sappend(s1, Stmt(I.ST, self.off_linkpl.reg))
        sappend(s1, Stmt(I.MISC | I.TAX))
        return s1
