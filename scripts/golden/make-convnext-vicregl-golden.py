#!/usr/bin/env python3
"""Golden values for the ConvNeXt encoder and the VICRegL loss, computed with
PyTorch (2.15 here) on CPU in float64, written as safetensors:

- encoders/tests/data/convnext_golden.safetensors: a small ConvNeXt in the
  layout of the official ConvNeXt / VICRegL `convnext.py` (depths 1-1-2-1,
  dims 8-16-24-32, layer scale, no drop path), its weights under the official
  names (`w.<name>`), an input batch, the LayerNorm-ed final feature-map
  vectors (`maps`), their mean (`pooled`), and the gradient of
  `sum(maps * r_maps) + sum(pooled * r_pooled)` for every weight (`g.<name>`).
- encoders/tests/data/convnext_torchvision.safetensors (only when torchvision
  is installed): torchvision's own `ConvNeXt` class at the same size, its
  state dict under torchvision's names, an input and the maps / pooled the
  official-layout model gives with those weights copied over.
- vicreg-core/tests/data/vicregl_golden.safetensors: the VICRegL criterion
  (official `main_vicregl.py`: global_loss, local_loss, _local_loss,
  _vicreg_loss, neirest_neighbores*) on 2 global + 2 local views, with its
  terms and the gradients for every input, for l2_all_matches 1 and 0.

Run from the repository root in an environment with torch and safetensors
(e.g. `python -m venv v && v/bin/pip install torch safetensors torchvision`);
the outputs are committed and the Rust tests read them. Not run in CI.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

torch.set_default_dtype(torch.float64)


# ---------------------------------------------------------------- ConvNeXt
class LayerNorm(nn.Module):
    def __init__(self, n, eps=1e-6, channels_first=False):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.bias = nn.Parameter(torch.zeros(n))
        self.eps, self.cf, self.n = eps, channels_first, n

    def forward(self, x):
        if not self.cf:
            return F.layer_norm(x, (self.n,), self.weight, self.bias, self.eps)
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class Block(nn.Module):
    def __init__(self, dim, ls):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = LayerNorm(dim)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(ls * torch.ones(dim)) if ls > 0 else None

    def forward(self, x):
        h = self.dwconv(x).permute(0, 2, 3, 1)
        h = self.pwconv2(self.act(self.pwconv1(self.norm(h))))
        if self.gamma is not None:
            h = self.gamma * h
        return x + h.permute(0, 3, 1, 2)


class ConvNeXt(nn.Module):
    def __init__(self, depths, dims, ls):
        super().__init__()
        self.downsample_layers = nn.ModuleList(
            [nn.Sequential(nn.Conv2d(3, dims[0], 4, 4), LayerNorm(dims[0], channels_first=True))]
        )
        for i in range(3):
            self.downsample_layers.append(
                nn.Sequential(LayerNorm(dims[i], channels_first=True), nn.Conv2d(dims[i], dims[i + 1], 2, 2))
            )
        self.stages = nn.ModuleList(
            [nn.Sequential(*[Block(dims[i], ls) for _ in range(depths[i])]) for i in range(4)]
        )
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)

    def forward(self, x):
        for i in range(4):
            x = self.stages[i](self.downsample_layers[i](x))
        x = self.norm(x.flatten(2, 3).permute(0, 2, 1))
        return x, x.mean(dim=1)


def convnext_golden():
    torch.manual_seed(0)
    model = ConvNeXt([1, 1, 2, 1], [8, 16, 24, 32], ls=0.5)
    with torch.no_grad():  # non-trivial values everywhere (norm weights, biases, gamma)
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
        for m in model.modules():
            if isinstance(m, (LayerNorm, nn.LayerNorm)):
                m.weight.copy_(1.0 + 0.2 * torch.randn_like(m.weight))
    x = torch.randn(2, 3, 64, 64)
    maps, pooled = model(x)
    r_maps, r_pooled = torch.randn_like(maps), torch.randn_like(pooled)
    ((maps * r_maps).sum() + (pooled * r_pooled).sum()).backward()
    out = {"input": x, "maps": maps.detach(), "pooled": pooled.detach(), "r_maps": r_maps, "r_pooled": r_pooled}
    for name, p in model.named_parameters():
        out["w." + name] = p.detach()
        out["g." + name] = p.grad
    save_file({k: v.contiguous() for k, v in out.items()}, "encoders/tests/data/convnext_golden.safetensors")
    print("convnext: maps", tuple(maps.shape), "params", sum(p.numel() for p in model.parameters()))
    return model


def torchvision_golden():
    try:
        from functools import partial
        from torchvision.models.convnext import CNBlockConfig
        from torchvision.models.convnext import ConvNeXt as TvConvNeXt
    except ImportError:
        print("torchvision not installed: skipping convnext_torchvision.safetensors")
        return
    torch.manual_seed(1)
    setting = [CNBlockConfig(8, 16, 1), CNBlockConfig(16, 24, 1), CNBlockConfig(24, 32, 2), CNBlockConfig(32, None, 1)]
    tv = TvConvNeXt(setting, stochastic_depth_prob=0.0, layer_scale=0.5, num_classes=5)
    with torch.no_grad():
        for p in tv.parameters():
            p.add_(0.1 * torch.randn_like(p))
    sd = tv.state_dict()
    # the same weights in the official layout (independent of the Rust mapping)
    official = ConvNeXt([1, 1, 2, 1], [8, 16, 24, 32], ls=0.5)
    osd = {}
    for k, v in sd.items():
        if k.startswith("classifier.2."):
            continue
        if k.startswith("classifier.0."):
            osd["norm." + k.split(".")[-1]] = v
            continue
        parts = k.split(".")
        f = int(parts[1])
        if f % 2 == 0:
            osd[f"downsample_layers.{f // 2}.{'.'.join(parts[2:])}"] = v
            continue
        stage, j = (f - 1) // 2, parts[2]
        if parts[3] == "layer_scale":
            osd[f"stages.{stage}.{j}.gamma"] = v.flatten()
            continue
        part = {"0": "dwconv", "2": "norm", "3": "pwconv1", "5": "pwconv2"}[parts[4]]
        osd[f"stages.{stage}.{j}.{part}.{parts[5]}"] = v
    official.load_state_dict(osd)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        maps, pooled = official(x)
        # sanity: the pre-norm maps equal torchvision's feature extractor
        feats = tv.features(x)
        pre = official.stages[3](official.downsample_layers[3](official.stages[2](official.downsample_layers[2](
            official.stages[1](official.downsample_layers[1](official.stages[0](official.downsample_layers[0](x))))))))
        assert torch.allclose(feats, pre)
    out = {"tv." + k: v.contiguous() for k, v in sd.items()}
    out.update({"input": x, "maps": maps, "pooled": pooled})
    save_file(out, "encoders/tests/data/convnext_torchvision.safetensors")
    print("torchvision: tensors", len(sd))


# ---------------------------------------------------------------- VICRegL
INV, VAR, COV = 25.0, 25.0, 1.0


def vicreg_matched(x, y):  # official _vicreg_loss (single process)
    repr_loss = INV * F.mse_loss(x, y)
    x = x - x.mean(dim=0)
    y = y - y.mean(dim=0)
    std_x = torch.sqrt(x.var(dim=0) + 0.0001)
    std_y = torch.sqrt(y.var(dim=0) + 0.0001)
    std_loss = VAR * (torch.mean(F.relu(1.0 - std_x)) / 2 + torch.mean(F.relu(1.0 - std_y)) / 2)
    x = x.permute((1, 0, 2))
    y = y.permute((1, 0, 2))
    *_, n, c = x.shape
    mask = ~torch.eye(c, dtype=torch.bool)
    x = x - x.mean(dim=-2, keepdim=True)
    y = y - y.mean(dim=-2, keepdim=True)
    cov_x = torch.einsum("...nc,...nd->...cd", x, x) / (n - 1)
    cov_y = torch.einsum("...nc,...nd->...cd", y, y) / (n - 1)
    cov = (cov_x[..., mask].pow(2).sum(-1) / c) / 2 + (cov_y[..., mask].pow(2).sum(-1) / c) / 2
    return repr_loss, std_loss, COV * cov.mean()


def batched_index_select(inp, dim, index):
    for ii in range(1, len(inp.shape)):
        if ii != dim:
            index = index.unsqueeze(ii)
    expanse = list(inp.shape)
    expanse[0] = -1
    expanse[dim] = -1
    return torch.gather(inp, dim, index.expand(expanse))


def nearest(input_maps, candidate_maps, distances, num_matches):  # official neirest_neighbores
    b = input_maps.size(0)
    if num_matches is None or num_matches == -1:
        num_matches = input_maps.size(1)
    topk_values, topk_indices = distances.topk(k=1, largest=False)
    topk_values, topk_indices = topk_values.squeeze(-1), topk_indices.squeeze(-1)
    _, sorted_values_indices = torch.sort(topk_values, dim=1)
    _, sorted_indices_indices = torch.sort(sorted_values_indices, dim=1)
    mask = torch.stack([sorted_indices_indices[i] < num_matches for i in range(b)])
    topk_sel = topk_indices.masked_select(mask).reshape(b, num_matches)
    idx = torch.arange(0, topk_values.size(1)).unsqueeze(0).repeat(b, 1)
    idx_sel = idx.masked_select(mask).reshape(b, num_matches)
    return batched_index_select(input_maps, 1, idx_sel), batched_index_select(candidate_maps, 1, topk_sel)


def local_pair(m1, m2, l1, l2, num_matches, l2_all):
    inv = var = cov = 0.0
    l2m = [None, None] if l2_all else num_matches
    for (a, b, k) in [(m1, m2, l2m[0]), (m2, m1, l2m[1])]:
        f, nn_ = nearest(a, b, torch.cdist(a, b), k)
        i, v, c = vicreg_matched(f, nn_)
        inv, var, cov = inv + i / 2, var + v / 2, cov + c / 2
    for (a, b, la, lb, k) in [(m1, m2, l1, l2, num_matches[0]), (m2, m1, l2, l1, num_matches[1])]:
        f, nn_ = nearest(a, b, torch.cdist(la, lb), k)
        i, v, c = vicreg_matched(f, nn_)
        inv, var, cov = inv + i / 2, var + v / 2, cov + c / 2
    return inv, var, cov


def local_loss(maps, locs, num_matches, l2_all):
    inv = var = cov = 0.0
    it = 0
    for i in range(2):
        for j in [j for j in range(len(maps)) if j != i]:
            a, b, c = local_pair(maps[i], maps[j], locs[i], locs[j], num_matches, l2_all)
            inv, var, cov, it = inv + a, var + b, cov + c, it + 1
    return inv / it, var / it, cov / it


def global_loss(emb):
    inv, it = 0.0, 0
    for i in range(2):
        for j in [j for j in range(len(emb)) if j != i]:
            inv, it = inv + F.mse_loss(emb[i], emb[j]), it + 1
    inv = INV * inv / it
    var = cov = 0.0
    for x in emb:
        x = x - x.mean(dim=0)
        std = torch.sqrt(x.var(dim=0) + 0.0001)
        var = var + torch.mean(torch.relu(1.0 - std))
        c = (x.T @ x) / (x.size(0) - 1)
        d = c.shape[0]
        cov = cov + c.flatten()[:-1].view(d - 1, d + 1)[:, 1:].flatten().pow(2).sum() / x.size(1)
    return inv, VAR * var / len(emb), COV * cov / len(emb)


def vicregl_golden():
    torch.manual_seed(2)
    b, dim, mdim = 6, 16, 8
    cells = [16, 16, 4, 4]  # 2 global 4x4 grids, 2 local 2x2 grids
    out = {}
    emb = [torch.randn(b, dim, requires_grad=True) for _ in cells]
    maps = [torch.randn(b, n, mdim, requires_grad=True) for n in cells]
    # continuous random locations: no distance ties, so the matching is unique
    locs = [torch.rand(b, n, 2) * 100 for n in cells]
    for v in range(4):
        out[f"emb{v}"], out[f"maps{v}"], out[f"loc{v}"] = emb[v].detach(), maps[v].detach(), locs[v]
    alpha, num_matches = 0.75, [5, 2]
    for l2_all in [1, 0]:
        for t in emb + maps:
            t.grad = None
        g = global_loss(emb)
        l = local_loss(maps, locs, num_matches, l2_all)
        total = alpha * sum(g) + (1 - alpha) * sum(l)
        total.backward()
        p = f"l2all{l2_all}."
        for name, t in zip(["global_inv", "global_var", "global_cov", "local_inv", "local_var", "local_cov", "total"],
                           list(g) + list(l) + [total]):
            out[p + name] = t.detach().reshape(1)
        for v in range(4):
            out[p + f"grad_emb{v}"] = emb[v].grad.clone()
            out[p + f"grad_maps{v}"] = maps[v].grad.clone()
        print("vicregl l2_all", l2_all, "total", total.item())
    save_file({k: v.contiguous() for k, v in out.items()}, "vicreg-core/tests/data/vicregl_golden.safetensors")


if __name__ == "__main__":
    convnext_golden()
    torchvision_golden()
    vicregl_golden()
