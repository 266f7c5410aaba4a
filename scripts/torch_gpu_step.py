#!/usr/bin/env python3
"""One VICReg training step in PyTorch on a GPU, timed like `vicreg-bench resnet50 --device cuda:0`.

The workload mirrors shared/bench/torch_vicreg_bench.py (`resnet18` / `resnet50`):
torchvision backbone (weights=None, fc removed) + expander
feat-H-H-H (Linear+BatchNorm1d+ReLU twice, last Linear without bias; H = 2048 for
resnet18, 8192 for resnet50), two separate forward passes in train mode, the
official VICReg loss (25 / 25 / 1, unbiased variance, eps 1e-4, off-diagonal
covariance / D), backward, SGD(lr 0.1, momentum 0.9). Random (B, 3, S, S) views
made once from seed+1, the model from seed. f32 throughout.

GPU timing: torch.cuda.synchronize() before the clock starts and after the step,
median of --iters steps after --warmup. (--device cpu runs the same step
unsynchronised, to check the script on a machine without a GPU.) Prints `median_ms=<x>` on stdout and one
line of details on stderr.

--tf32 off (default) turns TF32 off for convolutions and matmuls, so the GPU does
the same f32 arithmetic as candle's CUDA kernels; --tf32 default keeps PyTorch's
defaults (TF32 convolutions in cuDNN, f32 matmuls).
"""

import argparse
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

INV_COEFF, VAR_COEFF, COV_COEFF, EPS = 25.0, 25.0, 1.0, 1e-4


def variance_hinge(z):
    std = torch.sqrt(z.var(dim=0, unbiased=True) + EPS)
    return F.relu(1.0 - std).mean()


def offdiag_cov(z):
    b, d = z.shape
    zc = z - z.mean(dim=0, keepdim=True)
    cov = (zc.t() @ zc) / (b - 1)
    return (cov.pow(2).sum() - torch.diagonal(cov).pow(2).sum()) / d


def vicreg_loss(x, y):
    inv = F.mse_loss(x, y)
    var = 0.5 * (variance_hinge(x) + variance_hinge(y))
    cov = offdiag_cov(x) + offdiag_cov(y)
    return INV_COEFF * inv + VAR_COEFF * var + COV_COEFF * cov


def expander(dims):
    layers = []
    for i in range(len(dims) - 2):
        layers += [nn.Linear(dims[i], dims[i + 1]), nn.BatchNorm1d(dims[i + 1]), nn.ReLU(inplace=True)]
    layers.append(nn.Linear(dims[-2], dims[-1], bias=False))
    return nn.Sequential(*layers)


class Siamese(nn.Module):
    def __init__(self, arch):
        super().__init__()
        import torchvision

        feat, hid = {"resnet18": (512, 2048), "resnet50": (2048, 8192)}[arch]
        self.backbone = getattr(torchvision.models, arch)(weights=None)
        self.backbone.fc = nn.Identity()
        self.expander = expander([feat, hid, hid, hid])

    def forward(self, v1, v2):
        return vicreg_loss(self.expander(self.backbone(v1)), self.expander(self.backbone(v2)))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("arch", choices=["resnet18", "resnet50"])
    p.add_argument("--batch", type=int, default=32, help="images per view (default 32)")
    p.add_argument("--size", type=int, default=96, help="image side (default 96)")
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda:0")
    p.add_argument("--tf32", choices=["off", "default"], default="off")
    a = p.parse_args()
    if a.iters < 1 or a.warmup < 0:
        p.error("--iters must be >= 1 and --warmup >= 0")
    dev = torch.device(a.device)
    cuda = dev.type == "cuda"
    if cuda and not torch.cuda.is_available():
        sys.exit(f"error: {a.device} asked for, but torch.cuda.is_available() is False")

    def sync():
        if cuda:
            torch.cuda.synchronize(dev)

    if a.tf32 == "off":
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False

    torch.manual_seed(a.seed)
    model = Siamese(a.arch).to(dev).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    g = torch.Generator().manual_seed(a.seed + 1)
    v1 = torch.randn(a.batch, 3, a.size, a.size, generator=g).to(dev)
    v2 = torch.randn(a.batch, 3, a.size, a.size, generator=g).to(dev)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = model(v1, v2)
        loss.backward()
        opt.step()
        return loss

    for _ in range(a.warmup):
        step()
    samples = []
    loss = None
    for _ in range(a.iters):
        sync()
        t0 = time.perf_counter()
        loss = step()
        sync()
        samples.append((time.perf_counter() - t0) * 1e3)
    med = statistics.median(samples)
    print(f"median_ms={med:.3f}", flush=True)
    nparams = sum(p.numel() for p in model.parameters())
    where = f"{torch.cuda.get_device_name(dev)} tf32={a.tf32}" if cuda else f"cpu threads={torch.get_num_threads()}"
    mem = f" peak_mem_gib={torch.cuda.max_memory_allocated(dev) / 2**30:.2f}" if cuda else ""
    print(
        f"[torch {torch.__version__} {a.arch} B={a.batch} S={a.size} {where}] iters={len(samples)} "
        f"min={min(samples):.2f} max={max(samples):.2f} params={nparams} loss={loss.item():.6f}{mem}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
