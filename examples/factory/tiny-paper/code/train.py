"""Train a gated ResNet-20 on CIFAR-10 and report the mean test accuracy over seeds (Tables 1 and 2)."""

import argparse
import math

import torch
import torchvision
import torchvision.transforms as T
import yaml
from gated_block import GatedResidualBlock, gate_penalty
from torch import nn


def resnet20(num_classes: int = 10, init_bias: float = -2.0) -> nn.Module:
    """ResNet-20: a stem, three stages of three gated residual blocks (16, 32, 64 channels), pooling, classifier."""
    layers, channels = [], 16
    for stage, width in enumerate((16, 32, 64)):
        for i in range(3):
            layers.append(GatedResidualBlock(channels, width, 2 if stage and i == 0 else 1, init_bias))
            channels = width
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, 1, 1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        *layers,
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, num_classes),
    )


def loaders(batch_size: int):
    """CIFAR-10 training set with random crops after padding by 4 pixels and random horizontal flips; test set."""
    train_tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor()])
    train = torchvision.datasets.CIFAR10("data", train=True, download=True, transform=train_tf)
    test = torchvision.datasets.CIFAR10("data", train=False, download=True, transform=T.ToTensor())
    return (torch.utils.data.DataLoader(train, batch_size, shuffle=True), torch.utils.data.DataLoader(test, 256))


def train_one_seed(cfg: dict, seed: int) -> tuple[float, bool]:
    """Stochastic gradient descent with momentum, cosine learning-rate schedule without restarts, cross-entropy
    loss plus the gate penalty; returns the test accuracy and whether the run diverged (NaN training loss)."""
    torch.manual_seed(seed)
    model = resnet20(init_bias=cfg["gate_init_bias"])
    opt = torch.optim.SGD(
        model.parameters(), lr=cfg["learning_rate"], momentum=cfg["momentum"], weight_decay=cfg["weight_decay"]
    )
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg["epochs"])
    train, test = loaders(cfg["batch_size"])
    for epoch in range(cfg["epochs"]):
        for x, y in train:
            loss = nn.functional.cross_entropy(model(x), y) + cfg["gate_penalty"] * gate_penalty(model)
            if math.isnan(loss.item()):
                return 0.0, True
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        print(f"seed {seed} epoch {epoch} loss {loss.item():.4f}")
    correct = total = 0
    with torch.no_grad():
        for x, y in test:
            correct += (model(x).argmax(1) == y).sum().item()
            total += len(y)
    return 100.0 * correct / total, False


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="configs/cifar10.yaml")
    parser.add_argument("--gate-bias", type=float, default=None, help="initial gate bias (Table 2 ablation)")
    args = parser.parse_args()
    with open(args.config) as f:
        cfg = yaml.safe_load(f)
    if args.gate_bias is not None:
        cfg["gate_init_bias"] = args.gate_bias
    results = [train_one_seed(cfg, seed) for seed in range(cfg["seeds"])]
    accs = [a for a, diverged in results if not diverged]
    print(
        f"mean test accuracy {sum(accs) / max(1, len(accs)):.1f} diverged runs {sum(d for _, d in results)} / {len(results)}"
    )


if __name__ == "__main__":
    main()
