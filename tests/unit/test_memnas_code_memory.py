"""The MemNAS code's memory proxies `cal_weight` / `cal_in` on memnas-cells specs
(nas_impl.methods.memnas.code_memory; utils/generate_uni.py of MemNAS/MemNAS at 68b327d)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from nas_impl.errors import NasReproError
from nas_impl.methods.memnas.candidates import grow, trim_edges, trim_ops
from nas_impl.methods.memnas.code_memory import code_feature_count, code_weight_count
from nas_impl.models.memnas_cells import OPS

ROOT = Path(__file__).resolve().parents[2]
NET53 = yaml.safe_load((ROOT / "replications/memnas/archs/round0-net53.yaml").read_text())


def _spec(*blocks: list[str]) -> dict:
    """Five blocks; one list given: the same cells in every block."""
    return {"family": "memnas-cells", "width": 32, "blocks": list(blocks) if len(blocks) == 5 else [blocks[0]] * 5}


ROUND1 = ["in14:fac7 + in14:sep3 -> add @13", "in13:fac7 + in14:max3 -> add @12"]
NET179 = _spec(ROUND1)  # round 1's best
NET254 = _spec(ROUND1 + ["in14:sep5 + in13:avg3 -> add @11"])  # round 2's best
# The '#net6.py' literal (the last one of the file's __main__, 7 cells a block): [1, 1] links are
# the suite's `internal` adds, all-zero op vectors its `none`; every cell of it is expressible.
NET6_TAIL = ["in14:sep5 + in13:avg3 -> add @11", "in12:sep3 + in12:sep5 -> add @10", "in11:max3 + in11:avg3 -> add @9"]
NET6 = _spec(
    ["in14:fac7 + in14:sep3 -> add @13 internal", "in13:fac7 + in14:max3 -> add @12 internal",
     "in14:sep5 + in13:avg3 -> add @11 internal", "in12:sep3 + in12:sep5 -> add @10 internal",
     "in11:max3 + in11:avg3 -> add @9", "in10:avg3 + in13:none -> add @8", "in14:avg3 + in9:avg3 -> add @7"],
    ["in14:fac7 + in14:sep3 -> add @13", "in13:none + in14:max3 -> add @12 internal", *NET6_TAIL,
     "in10:avg3 + in13:conv3 -> add @8", "in14:avg3 + in9:avg3 -> add @7"],
    *[["in14:fac7 + in14:sep3 -> add @13", "in13:fac7 + in14:max3 -> add @12 internal", *NET6_TAIL,
       f"in10:avg3 + in13:{op} -> add @8", "in14:avg3 + in9:avg3 -> add @7"] for op in ("none", "conv3", "conv3")])


def _loc6_block(b: int) -> list[str]:
    """Location 6 written first, then read by 7 cells with every op on each side (cal_weight takes
    location 6 for the block input); links vary per block, so the block outputs differ."""
    first = ["in14:conv3 + in14:none -> cat @6", "in14:sep5 + in14:fac7 -> add @6",
             "in14:dil3 + in14:avg3 -> add @6 internal"][b % 3]
    links = ["add", "cat", "add", "add internal", "add", "cat", "add"]
    cells = [first]
    for k in range(7):
        link = links[(k + b) % 7]
        cells.append(f"in6:{OPS[(k + b) % 7]} + in6:{OPS[(k + 2 * b + 1) % 7]} -> {link.split()[0]} @{13 - k}"
                     + (" internal" if link.endswith("internal") and k > 0 else ""))
    return cells


LOC6_MIX = _spec(*[_loc6_block(b) for b in range(5)])
LOC6_SMALL = _spec(["in14:conv3 + in14:conv3 -> add @6", "in6:sep3 + in6:max3 -> add @5"])
INTERNAL_UNREAD = _spec(["in14:fac7 + in14:sep3 -> add @13 internal", "in14:conv3 + in14:conv3 -> add @12"])

CANDIDATES = {
    "net53 grow[0]": grow(NET53)[0],
    "net53 grow[-1]": grow(NET53)[-1],
    "net53 trim_ops[0]": trim_ops(NET53)[0],
    "net53 trim_ops[9]": trim_ops(NET53)[9],
    "net254 grow[37]": grow(NET254)[37],
    "net254 grow[-1]": grow(NET254)[-1],
    "net254 trim_ops[3]": trim_ops(NET254)[3],
    "net254 trim_edges[0]": trim_edges(NET254)[0],
    "net254 trim_edges[-1]": trim_edges(NET254)[-1],
}
SPECS = {"net53": NET53, "net179": NET179, "net254": NET254, "net6": NET6, **CANDIDATES,
         "loc6 mix": LOC6_MIX, "loc6 small": LOC6_SMALL, "internal unread": INTERNAL_UNREAD}

# Computed by running utils/generate_uni.py@68b327d's Network(network, 15).cal_weight() and
# .cal_in() (Python 3, f_to_n_uni stubbed; no division in either, so Python 2 agrees) on the
# official literals of net53, net179, net254 and net6 and on encode_cells(spec) of the other
# specs, split into the six vectors (15/15/15/7/7/2). None: cal_in raises IndexError.
GOLDEN = {  # name: (cal_weight, cal_in), channels 32
    "net53": (78240, 262144),
    "net179": (155040, 425984),
    "net254": (169280, 786432),
    "net6": (223872, 1441792),
    "net53 grow[0]": (88480, 655360),
    "net53 grow[-1]": (170400, 393216),
    "net53 trim_ops[0]": (63904, 262144),
    "net53 trim_ops[9]": (76928, 262144),
    "net254 grow[37]": (220480, 1114112),
    "net254 grow[-1]": (261440, 851968),
    "net254 trim_ops[3]": (168256, 786432),
    "net254 trim_edges[0]": (169280, 786432),
    "net254 trim_edges[-1]": (169280, 786432),
    "loc6 mix": (1494850, 524288),
    "loc6 small": (112049, None),
    "internal unread": (170400, None),
}
# The same code with every blobk*_channel (and so every block*_output) at 16 and 64.
GOLDEN_CHANNELS = {  # (name, channels): (cal_weight, cal_in)
    ("net53", 16): (19920, 131072), ("net53", 64): (310080, 524288),
    ("net254", 16): (43680, 393216), ("net254", 64): (666240, 1572864),
    ("net6", 16): (58688, 720896), ("net6", 64): (873728, 2883584),
    ("loc6 mix", 16): (387618, 262144), ("loc6 mix", 64): (5868930, 1048576),
}


def test_candidates_are_the_ones_the_golden_values_were_computed_on():
    assert CANDIDATES["net53 grow[0]"]["blocks"][4] == [NET53["blocks"][0][0], "in14:avg3 + in14:avg3 -> add @12"]
    assert CANDIDATES["net254 grow[37]"]["blocks"][2][-1] == "in13:avg3 + in13:dil3 -> add @10"
    assert CANDIDATES["net254 grow[-1]"]["blocks"][0][-1] == "in11:conv3 + in11:conv3 -> add @10"
    assert CANDIDATES["net53 trim_ops[9]"]["blocks"][4] == ["in14:fac7 + in14:none -> add @13"]
    assert CANDIDATES["net254 trim_ops[3]"]["blocks"][0][1] == "in13:fac7 + in14:none -> add @12"
    assert CANDIDATES["net254 trim_edges[0]"]["blocks"][0][0].endswith("@13 internal")
    assert CANDIDATES["net254 trim_edges[-1]"]["blocks"][4][0].endswith("@13 internal")
    assert LOC6_MIX["blocks"][0][6] == "in6:sep3 + in6:conv3 -> cat @8"  # block 1's odd sep3 constant


@pytest.mark.parametrize("name", list(GOLDEN))
def test_matches_the_official_code(name):
    weights, features = GOLDEN[name]
    assert code_weight_count(SPECS[name]) == weights
    if features is None:
        with pytest.raises(NasReproError):
            code_feature_count(SPECS[name])
    else:
        assert code_feature_count(SPECS[name]) == features


@pytest.mark.parametrize(("name", "channels"), list(GOLDEN_CHANNELS))
def test_matches_the_official_code_at_other_channels(name, channels):
    assert (code_weight_count(SPECS[name], channels), code_feature_count(SPECS[name], channels)) \
        == GOLDEN_CHANNELS[name, channels]


def test_hand_counts():
    c = 32
    # net53, per block: both ops read location 14, which is not 6, so both get the interior count:
    # fac7 C*7*C + C*7*C, sep3 C*9 + C*C; five blocks alike.
    assert code_weight_count(NET53) == 5 * ((c * 7 * c + c * 7 * c) + (c * 9 + c * c)) == 78240
    # net53's cal_in: nodes 1, 2 (fac7, sep3 on the block input), 3 (their add, a block output).
    # Start: 1 and 2 live, each (block1_output + C) = 32 + 32. Step 1: 3 goes live (4 C), 1 and 2
    # stay live (their input "0" is read as node 3, not yet live): 64 + 64 + 128; then 1 and 2 are
    # done and leave the list, 3 is done but stays. Later steps: 128. Peak x 32 x 32.
    assert code_feature_count(NET53) == (2 * (c + c) + 4 * c) * 32 * 32 == 262144
    # LOC6_SMALL, per block: cell 1 conv3 + conv3 on location 14 (interior): 2 * 9 C^2. Cell 2 reads
    # location 6, the "block input" of cal_weight: block 1 sep3 as op 1 is 3*3*3*3 + 3 C and max3
    # as op 2 is C^2; blocks 2-5 use Cin = the previous block's output = 2 cells * C: sep3
    # 9 Cin + Cin C, max3 Cin C.
    cin = 2 * c
    block1 = 18 * c * c + (81 + 3 * c) + c * c
    later = 18 * c * c + (9 * cin + cin * c) + cin * c
    assert code_weight_count(LOC6_SMALL) == block1 + 4 * later == 112049


def test_channels_scale():
    # cal_in scores channel counts only: linear in channels (the 32 x 32 map stays fixed).
    for spec in (NET53, NET254, NET6, LOC6_MIX):
        assert [code_feature_count(spec, c) for c in (1, 16, 64)] == [code_feature_count(spec, 1) * c
                                                                      for c in (1, 16, 64)]
    # cal_weight: 5 (15 C^2 + 9 C) for net53 (interior counts only); LOC6_SMALL 107 C^2 + 75 C + 81
    # (the constant from block 1's 3*3*3*3).
    for c in (1, 8, 32, 48):
        assert code_weight_count(NET53, channels=c) == 5 * (15 * c * c + 9 * c)
        assert code_weight_count(LOC6_SMALL, channels=c) == 107 * c * c + 75 * c + 81
    with pytest.raises(NasReproError, match="positive integer"):
        code_weight_count(NET53, channels=0)
    with pytest.raises(NasReproError, match="positive integer"):
        code_feature_count(NET53, channels=2.5)


def test_networks_the_official_cal_in_fails_on_raise_a_clear_error():
    with pytest.raises(NasReproError, match="reads location 6.*node 24.*only 2 cells"):
        code_feature_count(LOC6_SMALL)
    with pytest.raises(NasReproError, match="cell 1 is internal.*no cell reads it"):
        code_feature_count(INTERNAL_UNREAD)
    assert code_weight_count(INTERNAL_UNREAD) == GOLDEN["internal unread"][0]  # cal_weight has no such case
