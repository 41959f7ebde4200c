"""The argmax shape of a TAS super-network as a `resnet-cifar` spec (TAS's xchannels/xblocks)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nas_impl.methods.tas.search_net import TASResNet


def derive_spec(net: TASResNet) -> dict[str, Any]:
    """Argmax width of every conv (all blocks of the full depth) and argmax depth per stage."""
    with_logits = net.width_logits.detach()
    channels = [conv.choices[int(with_logits[conv.row, : len(conv.choices)].argmax())]
                for conv in net.width_convs()]
    blocks = [net.depth_choices[int(row.argmax())] for row in net.depth_logits.detach()]
    return {
        "family": "resnet-cifar",
        "depth": net.depth,
        "block": net.block,
        "num_classes": net.num_classes,
        "in_channels": net.in_channels,
        "channels": channels,
        "blocks": blocks,
        "shortcut": "tas",
    }
