"""A MemNAS round's grow and trim candidates, in the official generator's sets and order
(nas_impl.methods.memnas.candidates; utils/generate_uni.py at 68b327d)."""

from __future__ import annotations

import itertools

import torch

from nas_impl.methods.memnas.candidates import grow, initial, round_candidates, trim_edges, trim_ops
from nas_impl.models import build_model

OFFICIAL_OPS = ["avg3", "max3", "dil3", "fac7", "sep5", "sep3", "conv3"]  # op vector index 0-6
NET53 = {"family": "memnas-cells", "width": 4, "num_classes": 10,
         "blocks": [["in14:fac7 + in14:sep3 -> add @13"]] * 5}
TWO_CELLS = {**NET53, "blocks": [["in14:fac7 + in14:sep3 -> add @13", "in13:conv3 + in14:none -> add @12"]] * 5}


def test_round_zero_is_the_98_official_one_cell_nets_in_file_order():
    nets = initial(TWO_CELLS)
    expected = [f"in14:{x} + in14:{y} -> {c} @13"  # net n = 14 op1 + 2 op2 + combine + 1 (round0/net*.py)
                for x, y, c in itertools.product(OFFICIAL_OPS, OFFICIAL_OPS, ["add", "cat"])]
    assert [spec["blocks"] for spec in nets] == [[[cell]] * 5 for cell in expected]
    assert nets[52]["blocks"] == NET53["blocks"]  # net53: fac7 + sep3, added (round 0's best)
    assert nets[53]["blocks"][0] == ["in14:fac7 + in14:sep3 -> cat @13"]  # net54 concatenates
    assert all(spec["width"] == 4 for spec in nets)


def test_grow_appends_one_cell_to_every_block_over_ops_and_block_ones_locations():
    grown = grow(NET53)
    assert len(grown) == 7 * 7 * 2 * 2  # ops x ops x (14, 13) x (14, 13)
    expected = [f"in{a}:{x} + in{b}:{y} -> add @12"  # gen_big's loops: op 1, op 2, input 1, input 2
                for x, y, a, b in itertools.product(OFFICIAL_OPS, OFFICIAL_OPS, [14, 13], [14, 13])]
    assert [spec["blocks"][0][-1] for spec in grown] == expected
    for spec in grown:
        assert all(block[:-1] == NET53["blocks"][0] and block[-1] == spec["blocks"][0][-1] for block in spec["blocks"])
    assert len(grow(TWO_CELLS)) == 49 * 9 and grow(TWO_CELLS)[0]["blocks"][3][-1] == "in14:avg3 + in14:avg3 -> add @11"
    assert NET53["blocks"][0] == ["in14:fac7 + in14:sep3 -> add @13"]  # the base is left as it was


def test_trim_ops_trims_each_live_op_once_block_by_block():
    trimmed = trim_ops(TWO_CELLS)
    assert len(trimmed) == 5 * 3  # per block: fac7, sep3 of cell 1 and conv3 of cell 2 (its op 2 is trimmed)
    first, second, third = (spec["blocks"][0] for spec in trimmed[:3])
    assert first == ["in14:none + in14:sep3 -> add @13", TWO_CELLS["blocks"][0][1]]
    assert second == ["in14:fac7 + in14:none -> add @13", TWO_CELLS["blocks"][0][1]]
    assert third == [TWO_CELLS["blocks"][0][0], "in13:none + in14:none -> add @12"]
    assert all(spec["blocks"][1:] == TWO_CELLS["blocks"][1:] for spec in trimmed[:3])


def test_trim_edges_takes_a_read_cell_out_of_the_block_output():
    assert trim_edges(NET53) == []  # no cell reads another
    trimmed = trim_edges(TWO_CELLS)
    assert len(trimmed) == 5
    assert trimmed[2]["blocks"][2] == ["in14:fac7 + in14:sep3 -> add @13 internal", TWO_CELLS["blocks"][2][1]]
    assert trimmed[2]["blocks"][0] == TWO_CELLS["blocks"][0]
    assert len(round_candidates(TWO_CELLS)) == 49 * 9 + 15 + 5


def test_candidates_build_and_run():
    x = torch.zeros(1, 3, 32, 32)
    for spec in [grow(NET53)[-1], *trim_ops(TWO_CELLS)[::4], trim_edges(TWO_CELLS)[1]]:
        assert build_model(spec).eval()(x).shape == (1, 10)
