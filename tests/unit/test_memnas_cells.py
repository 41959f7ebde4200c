"""Family `memnas-cells` (MemNAS's CIFAR-10 cell networks, ../shared/reference/memnas.md §2-§3): cell
strings, the controller's 61-number encoding, the official layers of each op, the block wiring,
round0 net53's parameter count recounted from the official file, round trips and bad specs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn as nn
import yaml

from nas_impl.errors import SpecError
from nas_impl.metrics import count_params
from nas_impl.models import build_model, natural_input, normalize_spec, spec_for
from nas_impl.models.memnas_cells import (CELL_DIMS, OPS, Cell, MemNASBlock, MemNASCell, decode_cells,
                                          encode_cells, format_cell, parse_cell)

ROOT = Path(__file__).resolve().parents[2]
# The replication's specs of this family (its other specs are the baselines the tables compare against).
ARCHS = sorted(p for p in (ROOT / "replications/memnas/archs").glob("*.yaml")
               if yaml.safe_load(p.read_text()).get("family") == "memnas-cells")
NET53 = ROOT / "replications/memnas/archs/round0-net53.yaml"
NET53_CELL = "in14:fac7 + in14:sep3 -> add @13"
VARIANT = "memnas-net53-cifar"
# Internal, concatenating and trimmed cells (a trimmed op on the strided block input in block 2), a cell
# reading a concatenation (block 4), uniform and doubled block widths.
MIXED = {"family": "memnas-cells", "width": 4, "width_mults": [1, 1, 1, 2, 2], "blocks": [
    ["in14:conv3 + in14:none -> add @13 internal", "in13:dil3 + in14:avg3 -> cat @12"],
    ["in14:none + in14:max3 -> add @13", "in13:sep5 + in13:none -> cat @12"],
    ["in14:fac7 + in14:sep3 -> add @13"],
    ["in14:sep3 + in14:sep3 -> cat @13", "in13:conv3 + in14:none -> add @12 internal",
     "in12:sep5 + in13:avg3 -> add @11"],
    ["in14:avg3 + in14:max3 -> add @13"],
]}
SPECS = [VARIANT, MIXED, *ARCHS]
SPEC_IDS = [VARIANT, "mixed", *(p.stem for p in ARCHS)]


def _spec(blocks, **keys):
    return {"family": "memnas-cells", "blocks": blocks, **keys}


def _same_structure(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb) and all(sa[k].shape == sb[k].shape for k in sa)


def _randomise_bn(module: nn.Module) -> None:
    """Running statistics and affine terms away from their defaults, so eval-mode BN is not the identity."""
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.5, 0.5)


# Cell strings --------------------------------------------------------------------------------

def test_parse_and_format_are_inverse():
    assert parse_cell(NET53_CELL) == Cell(14, "fac7", 14, "sep3", "add", 13)
    assert parse_cell(" in13 : none+in14:max3->add@12  internal\n") == Cell(13, "none", 14, "max3", "add", 12, True)
    assert format_cell(Cell(13, "none", 14, "max3", "add", 12, True)) == "in13:none + in14:max3 -> add @12 internal"
    for path in ARCHS:
        for block in yaml.safe_load(path.read_text())["blocks"]:
            for text in block:
                assert format_cell(parse_cell(text)) == text
    for block in MIXED["blocks"]:
        for text in block:
            assert format_cell(parse_cell(text)) == text


def test_a_spec_keeps_the_canonical_spelling():
    blocks = [["in14 :fac7+in14:sep3->add @13"]] + [[NET53_CELL]] * 4
    assert normalize_spec(_spec(blocks))["blocks"] == [[NET53_CELL]] * 5
    assert blocks[0] == ["in14 :fac7+in14:sep3->add @13"]  # the caller's list is not touched


# Round trips ---------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_build_round_trip(spec):
    model = build_model(spec)
    full = model.to_spec()
    assert full == normalize_spec(spec)
    again = build_model(full)
    assert again.to_spec() == full
    _same_structure(model, again)
    assert natural_input(full) == (3, 32, 32)


@pytest.mark.parametrize("path", ARCHS, ids=[p.stem for p in ARCHS])
def test_arch_file_is_canonical(path):
    spec = yaml.safe_load(path.read_text())
    assert spec == normalize_spec(spec)


def test_the_default_variant_is_round0_net53():
    assert spec_for(VARIANT) == yaml.safe_load(NET53.read_text())


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_encode_decode_round_trip(spec):
    full = normalize_spec(spec)
    vectors = encode_cells(spec)
    assert [len(block) for block in vectors] == [len(block) for block in full["blocks"]]
    assert decode_cells(vectors, full["width"], full["num_classes"], in_channels=full["in_channels"],
                        width_mults=full["width_mults"]) == full
    assert encode_cells(build_model(spec)) == vectors


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_each_part_of_a_cell_vector_is_one_hot(spec):
    starts = [sum(CELL_DIMS[:i]) for i in range(len(CELL_DIMS) + 1)]
    cells = [parse_cell(text) for block in normalize_spec(spec)["blocks"] for text in block]
    vectors = [v for block in encode_cells(spec) for v in block]
    for cell, vector in zip(cells, vectors):
        assert len(vector) == 61 and set(vector) <= {0.0, 1.0}
        in1, in2, out, op1, op2, link = (vector[a:b] for a, b in zip(starts, starts[1:]))
        assert (in1.index(1), in2.index(1), out.index(1)) == (cell.in1, cell.in2, cell.out)
        assert sum(in1) == sum(in2) == sum(out) == 1
        for op, part in ((cell.op1, op1), (cell.op2, op2)):
            assert part == ([0.0] * 7 if op == "none" else [float(i == OPS.index(op)) for i in range(7)])
        assert link == {("add", False): [1, 0], ("cat", False): [0, 1], ("add", True): [1, 1]}[
            (cell.combine, cell.internal)]


def _one_hot(index, length):
    return [int(i == index) for i in range(length)]


def test_decode_reads_the_official_six_lists_of_net53():
    # net53.py's "network feature": per block one cell [in 14, in 14, out 13, op 3, op 5, add]; its
    # class builds Fac_conv (1x7-7x1) on input 1 and depthwise_separable_conv(k=3) on input 2.
    cell = [_one_hot(14, 15), _one_hot(14, 15), _one_hot(13, 15), _one_hot(3, 7), _one_hot(5, 7), [1, 0]]
    assert decode_cells([[cell]] * 5, 32) == yaml.safe_load(NET53.read_text())


def test_decode_reads_round2_vectors_with_link01_internal():
    cell = [_one_hot(14, 15), _one_hot(14, 15), _one_hot(13, 15), _one_hot(6, 7), [0] * 7, [0, 1]]
    last = [_one_hot(13, 15), _one_hot(14, 15), _one_hot(12, 15), _one_hot(0, 7), _one_hot(1, 7), [1, 0]]
    blocks = [[cell, last]] * 5
    assert decode_cells(blocks, 8)["blocks"][0] == ["in14:conv3 + in14:none -> cat @13",
                                                    "in13:avg3 + in14:max3 -> add @12"]
    spec = decode_cells(blocks, 8, link01="internal", width_mults=[1] * 5)
    assert spec["blocks"][0] == ["in14:conv3 + in14:none -> add @13 internal", "in13:avg3 + in14:max3 -> add @12"]
    assert spec["width_mults"] == [1, 1, 1, 1, 1]


@pytest.mark.parametrize("vector, message", [
    ([0.0] * 60, "block 1 cell 1: expected 61 numbers, or six lists of lengths 15, 15, 15, 7, 7, 2"),
    ([1.0] * 2 + [0.0] * 59, "the input-1 location [1, 1, 0"),
    ([0.0] * 14 + [1.0] + [0.0] * 14 + [1.0] + [0.0] * 13 + [1.0, 0.0] + [1.0] * 2 + [0.0] * 12 + [1.0, 0.0],
     "op 1 [1, 1, 0, 0, 0, 0, 0] has several 1s"),
    ([0.0] * 14 + [1.0] + [0.0] * 14 + [1.0] + [0.0] * 13 + [1.0, 0.0] + [0.0] * 14 + [0.0, 0.0],
     "combine [0, 0] is not [1, 0] (add), [0, 1] (cat) or [1, 1] (internal add)"),
    ([0.5] * 61, "is not a 0/1 vector of length 15"),
])
def test_a_bad_vector_names_the_cell_and_the_problem(vector, message):
    with pytest.raises(SpecError) as err:
        decode_cells([[vector]] * 5, 32)
    assert message in str(err.value)


# Layers and wiring ---------------------------------------------------------------------------

def _plain_op(op: str, cin: int, cout: int, stride: int) -> nn.Sequential:
    """Each op's layers as the official generated files define them (helpers ConvFactory,
    depthwise_separable_conv, Dilated_conv, Fac_conv, MaxPool, AvgPool; a trimmed op is
    nn.Conv2d(inp, oup, kernel_size=1)), written out here independently of the family."""
    def cbr(i, o, k, s, p, d=1):
        return [nn.Conv2d(i, o, k, s, p, dilation=d), nn.BatchNorm2d(o), nn.ReLU()]

    layers = {
        "avg3": lambda: [nn.Conv2d(cin, cout, 1), nn.BatchNorm2d(cout), nn.AvgPool2d(3, stride, 1)],
        "max3": lambda: [nn.Conv2d(cin, cout, 1), nn.BatchNorm2d(cout), nn.MaxPool2d(3, stride, 1)],
        "dil3": lambda: cbr(cin, cout, 3, stride, 2, 2),
        "fac7": lambda: (cbr(cin, cout, 1, stride, 0) + cbr(cout, cout, (1, 7), 1, (0, 3))
                         + cbr(cout, cout, (7, 1), 1, (3, 0))),
        "sep5": lambda: [nn.Conv2d(cin, cin, 5, stride, 2, groups=cin), nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 1),
                         nn.BatchNorm2d(cout), nn.ReLU()],
        "sep3": lambda: [nn.Conv2d(cin, cin, 3, stride, 1, groups=cin), nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 1),
                         nn.BatchNorm2d(cout), nn.ReLU()],
        "conv3": lambda: cbr(cin, cout, 3, stride, 1),
        "none": lambda: [nn.Conv2d(cin, cout, 1, stride)],
    }
    return nn.Sequential(*layers[op]())


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("op", OPS)
def test_a_cell_with_one_trimmed_op_is_the_plain_layers_plus_a_1x1_conv(op, stride):
    torch.manual_seed(0)
    cin, width = 6, 5
    cell = MemNASCell(parse_cell(f"in14:{op} + in14:none -> add @13"), cin, cin, width, stride, stride)
    _randomise_bn(cell)
    plain, trimmed = _plain_op(op, cin, width, stride), _plain_op("none", cin, width, stride)
    plain.load_state_dict(cell.op1.state_dict())  # strict: same layers, same shapes
    trimmed.load_state_dict(cell.op2.state_dict())
    x = torch.randn(2, cin, 16, 16)
    cell.eval(), plain.eval(), trimmed.eval()
    with torch.no_grad():
        out = cell(x, x)
        assert out.shape == (2, width, 16 // stride, 16 // stride)
        assert torch.allclose(out, plain(x) + trimmed(x), atol=1e-6)
    swapped = MemNASCell(parse_cell(f"in14:none + in14:{op} -> cat @13"), cin, cin, width, stride, stride)
    swapped.op1.load_state_dict(trimmed.state_dict())
    swapped.op2.load_state_dict(plain.state_dict())
    with torch.no_grad():
        assert torch.equal(swapped.eval()(x, x), torch.cat((trimmed(x), plain(x)), 1))


def test_a_block_chains_cells_by_location_and_concatenates_its_outputs():
    torch.manual_seed(0)
    cells = [parse_cell(t) for t in ("in14:sep3 + in14:conv3 -> add @13", "in13:max3 + in14:dil3 -> cat @12",
                                      "in12:avg3 + in13:none -> add @11 internal")]
    block = MemNASBlock(cells, cin=3, width=4, stride=2).eval()
    # op strides: those that read location 14 are strided, those that read a cell output are not
    first_convs = [next(m for m in op.modules() if isinstance(m, nn.Conv2d)) for cell in block.cells
                   for op in (cell.op1, cell.op2)]
    assert [c.stride[0] for c in first_convs] == [2, 2, 1, 2, 1, 1]
    assert [c.in_channels for c in first_convs] == [3, 3, 4, 3, 8, 4]  # the cat cell holds 2C = 8
    assert block.out_channels == 4 + 8  # cell 3 is internal
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        u1 = block.cells[0](x, x)
        u2 = block.cells[1](u1, x)
        assert torch.equal(block(x), torch.cat((u1, u2), 1))


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_forward_shape(spec):
    model = build_model(spec).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_mixed_block_widths_and_classifier():
    model = build_model(MIXED)
    # C = 4, 4, 4, 8, 8: block 1 keeps its cat cell (2C), block 2 an add and a cat cell (C + 2C), block 4
    # a cat and an add cell (2C + C), the internal cells add nothing
    assert [b.out_channels for b in model.blocks] == [8, 12, 4, 24, 8]
    assert model.classifier.in_features == 8 * 4 * 4


def test_round0_net53_parameter_count_is_the_official_files():
    # Recounted from MemNAS/MemNAS models/networks/round0/net53.py (ce414e4) at w = 32. Every conv
    # has a bias; BN has 2 x channels. Fac_conv(inp, oup): 1x1 conv inp*oup + oup, 1x7 and 7x1
    # convs 7*oup*oup + oup each, three BNs 6*oup -> inp*oup + 14*oup^2 + 9*oup.
    # depthwise_separable_conv(inp, oup, 3): 3x3 depthwise 9*inp + inp, BN 2*inp, 1x1 conv
    # inp*oup + oup, BN 2*oup -> 12*inp + inp*oup + 3*oup.
    #   block1 (3 -> 32):   Fac 96 + 14336 + 288 = 14720;    sep 36 + 96 + 96 = 228       -> 14948
    #   block2 (32 -> 32):  Fac 1024 + 14336 + 288 = 15648;  sep 384 + 1024 + 96 = 1504   -> 17152
    #   block3 (32 -> 64):  Fac 2048 + 57344 + 576 = 59968;  sep 384 + 2048 + 192 = 2624  -> 62592
    #   block4 (64 -> 64):  Fac 4096 + 57344 + 576 = 62016;  sep 768 + 4096 + 192 = 5056  -> 67072
    #   block5 (64 -> 128): Fac 8192 + 229376 + 1152 = 238720; sep 768 + 8192 + 384 = 9344 -> 248064
    #   sml = Linear(1*4*32*4*4 = 2048 -> 10): 20480 + 10 = 20490
    # 14948 + 17152 + 62592 + 67072 + 248064 + 20490 = 430318. The class also defines conv1 =
    # Conv2d(3, 32, 3) (864 + 32 = 896, total 431214), which forward never calls; the family omits it.
    golden = 430_318
    assert count_params(build_model(NET53)) == golden
    assert count_params(build_model(VARIANT)) == golden


# Bad specs -----------------------------------------------------------------------------------

def _blocks_with(first_block):
    return [first_block] + [[NET53_CELL]] * 4


@pytest.mark.parametrize("spec, message", [
    (_spec(_blocks_with(["in14:sep7 + in14:sep3 -> add @13"])),
     "key 'blocks' block 1 cell 1 = 'in14:sep7 + in14:sep3 -> add @13' in spec: unknown op 'sep7' (did you mean "),
    (_spec(_blocks_with(["in13:fac7 + in14:sep3 -> add @13"])),
     "key 'blocks' block 1 in spec: cell 1 reads location 13, which does not exist yet: a cell reads 14 (the block "
     "input) or a location an earlier cell writes: 14"),
    (_spec(_blocks_with([NET53_CELL, "in14:fac7 + in11:sep3 -> add @12"])),
     "cell 2 reads location 11, which does not exist yet: a cell reads 14 (the block input) or a location an "
     "earlier cell writes: 14, 13"),
    (_spec([[NET53_CELL]] * 4),
     "key 'blocks' has 4 entries in spec: expected 5: one list of cell strings per block"),
    (_spec(_blocks_with([NET53_CELL, "in13:fac7 + in14:sep3 -> add @13"])),
     "cell 2 writes location 13 again: give every cell its own output location"),
    (_spec(_blocks_with(["in14:fac7 + in14:sep3 -> add @13 internal"])),
     "every cell is internal, so the block has no output: drop 'internal' from at least one cell"),
    (_spec(_blocks_with(["in14:fac7 + in14:sep3 -> cat @13 internal"])),
     "an internal cell must add"),
    (_spec(_blocks_with(["in14:fac7 + in14:sep3 -> mul @13"])), "unknown combine 'mul': expected add or cat"),
    (_spec(_blocks_with(["in15:fac7 + in14:sep3 -> add @13"])), "input location 15 is out of range"),
    (_spec(_blocks_with(["in14:fac7 + in14:sep3 -> add @14"])), "output location 14 is out of range"),
    (_spec(_blocks_with(["fac7 + sep3"])), "expected a cell string 'in<i>:<op> + in<j>:<op> -> <add|cat> @<out>'"),
    (_spec(_blocks_with([])), "key 'blocks' block 1 in spec: a block needs at least one cell"),
    (_spec([[NET53_CELL]] * 5, width_mults=[1, 2, 4]), "key 'width_mults' = [1, 2, 4] in spec: expected 5"),
    (_spec([[NET53_CELL]] * 5, width=0), "key 'width' = 0 in spec: expected a positive integer"),
])
def test_bad_specs(spec, message):
    with pytest.raises(SpecError) as err:
        build_model(spec)
    assert message in str(err.value)


def test_memory_of_a_cell_graph_is_the_hand_count_under_the_liveness_rule():
    """MemNAS's running memory (memnas.md §5.2, §5.4: a feature map lives from the op that writes it
    to its last reader) on cell graphs, by hand. Width 1, all blocks 1 channel, input 1x8x8: one
    block-1 map is 8 x 8 x 4 B = 256 B; later blocks run at 4x4 and 2x2, so block 1 holds the peak.
    conv3 = conv -> BN (folded: no buffer) -> ReLU (out of place: a new map; the conv's dies)."""
    from nas_impl.metrics import activation_memory

    def peak(blocks):
        spec = {"family": "memnas-cells", "in_channels": 1, "width": 1, "width_mults": [1] * 5, "blocks": blocks}
        return activation_memory(build_model(spec), (1, 8, 8))["peak_activation_bytes"]

    m = 8 * 8 * 4
    one = ["in14:conv3 + in14:conv3 -> add @13"]
    # x + conv1; x + conv1 + relu1; x + relu1 + conv2; relu1 + conv2 + relu2 (x is dead); relu1 + relu2 + sum.
    assert peak([one] * 5) == 3 * m
    # cat: relu1 + relu2 + the 2-map concatenation.
    assert peak([["in14:conv3 + in14:conv3 -> cat @13"]] * 5) == 4 * m
    # Two cells, the second reading cell 1's output and the block input: x stays live through cell 2's
    # second conv and cell 1's output to the block's concatenation. Cell 1's relu2 and sum steps hold
    # x + relu1 + (conv2 + relu2 | relu2 + sum) = 4 maps; cell 2 holds 4 at each step (e.g. x + z1 +
    # conv1 + relu1); the block's concatenation z1 + z2 + its 2 maps = 4.
    two = ["in14:conv3 + in14:conv3 -> add @13", "in13:conv3 + in14:conv3 -> add @12"]
    assert peak([two] * 5) == 4 * m
    # Cell 2 reads only cell 1's output: x dies inside cell 1 (3 maps there). Cell 1's output is live
    # to the block's concatenation (z1 + relu1 + conv2 + relu2 = 4 in cell 2), unless it is kept
    # internal: then it dies after cell 2's second conv and every step holds 3 maps.
    chained = ["in14:conv3 + in14:conv3 -> add @13", "in13:conv3 + in13:conv3 -> add @12"]
    assert peak([chained] * 5) == 4 * m
    internal = ["in14:conv3 + in14:conv3 -> add @13 internal", "in13:conv3 + in13:conv3 -> add @12"]
    assert peak([internal] * 5) == 3 * m
