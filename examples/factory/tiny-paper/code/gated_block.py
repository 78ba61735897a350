"""Gated residual block of GateNorm: y = x + g * F(x), with a per-channel gate g computed from the block input."""

import torch
from torch import nn


class ChannelGate(nn.Module):
    """Global average pooling of the block input, a linear layer to one logit per output channel, then a sigmoid.

    The linear weights are initialised to zero and the bias to `init_bias` (-2: every gate starts at sigmoid(-2),
    about 0.12), so the network starts close to an identity map.
    """

    def __init__(self, in_channels: int, out_channels: int, init_bias: float = -2.0):
        super().__init__()
        self.linear = nn.Linear(in_channels, out_channels)
        nn.init.zeros_(self.linear.weight)
        nn.init.constant_(self.linear.bias, init_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = x.mean(dim=(2, 3))  # global average pooling: the channel means
        return torch.sigmoid(self.linear(pooled))[:, :, None, None]


class GatedResidualBlock(nn.Module):
    """A basic residual block whose residual branch output (after its last batch normalisation) is multiplied by
    the channel gate; a shortcut that changes the number of channels is a 1x1 convolution and is not gated."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, init_bias: float = -2.0):
        super().__init__()
        self.branch = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.gate = ChannelGate(in_channels, out_channels, init_bias)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )
        self.last_gate = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.gate(x)
        self.last_gate = g
        return torch.relu(self.shortcut(x) + g * self.branch(x))


def gate_penalty(model: nn.Module) -> torch.Tensor:
    """Regularisation: the mean gate value, averaged over all gates of all blocks (keeps unused channels closed)."""
    gates = [
        m.last_gate.mean() for m in model.modules() if isinstance(m, GatedResidualBlock) and m.last_gate is not None
    ]
    return torch.stack(gates).mean() if gates else torch.zeros(())
