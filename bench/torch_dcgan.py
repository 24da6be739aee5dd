"""The PyTorch DCGAN tutorial's training loop, timed: the baseline of bench/benchmark.py.

  python bench/torch_dcgan.py [--batch_size 64] [--threads 2] [--steps 20]

The networks, initialisation, loss and optimizer of the tutorial
(pytorch/tutorials, beginner_source/dcgan_faces_tutorial.py: `Generator`,
`Discriminator`, `weights_init`, BCELoss, Adam 2e-4 / 0.5, 64x64, nz 100,
ngf = ndf = 64) and its loop as written: D on a real batch (backward), G's
fakes through D detached (backward), D's step; then G's loss from the updated D
on the same fakes, G's step. float32 on the CPU, with `torch.set_num_threads`
as a user would set it. The real batch is one fixed random tensor, as in our own
benchmark, so the input pipeline is not timed on either side. Prints one JSON line.
Needs torch (`pip install -e ".[bench]"`).
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch import nn

NZ, NGF, NDF, NC = 100, 64, 64, 3


def generator() -> nn.Module:
    def block(cin, cout, stride, padding):
        return [nn.ConvTranspose2d(cin, cout, 4, stride, padding, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)]

    return nn.Sequential(
        *block(NZ, NGF * 8, 1, 0), *block(NGF * 8, NGF * 4, 2, 1), *block(NGF * 4, NGF * 2, 2, 1),
        *block(NGF * 2, NGF, 2, 1), nn.ConvTranspose2d(NGF, NC, 4, 2, 1, bias=False), nn.Tanh(),
    )


def discriminator() -> nn.Module:
    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, inplace=True)]

    return nn.Sequential(
        nn.Conv2d(NC, NDF, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
        *block(NDF, NDF * 2), *block(NDF * 2, NDF * 4), *block(NDF * 4, NDF * 8),
        nn.Conv2d(NDF * 8, 1, 4, 1, 0, bias=False), nn.Sigmoid(),
    )


def weights_init(m: nn.Module) -> None:
    if "Conv" in type(m).__name__:
        nn.init.normal_(m.weight.data, 0.0, 0.02)
    elif "BatchNorm" in type(m).__name__:
        nn.init.normal_(m.weight.data, 1.0, 0.02)
        nn.init.constant_(m.bias.data, 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    net_g, net_d = generator(), discriminator()
    net_g.apply(weights_init)
    net_d.apply(weights_init)
    criterion = nn.BCELoss()
    opt_d = torch.optim.Adam(net_d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(net_g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    real = torch.rand(args.batch_size, NC, 64, 64) * 2 - 1
    ones, zeros = torch.ones(args.batch_size), torch.zeros(args.batch_size)

    def step() -> float:
        net_d.zero_grad()
        err_d_real = criterion(net_d(real).view(-1), ones)
        err_d_real.backward()
        fake = net_g(torch.randn(args.batch_size, NZ, 1, 1))
        err_d_fake = criterion(net_d(fake.detach()).view(-1), zeros)
        err_d_fake.backward()
        opt_d.step()
        net_g.zero_grad()
        err_g = criterion(net_d(fake).view(-1), ones)
        err_g.backward()
        opt_g.step()
        return float(err_g)

    for _ in range(args.warmup):
        step()
    started = time.perf_counter()
    for _ in range(args.steps):
        step()
    seconds = time.perf_counter() - started
    print(json.dumps({"images_per_second": args.steps * args.batch_size / seconds, "torch": torch.__version__,
                      "threads": args.threads, "batch_size": args.batch_size, "steps": args.steps}))


if __name__ == "__main__":
    main()
