#!/usr/bin/env python3
"""Golden values for `encoders::audio::MelCnn` (BYOL-A's AudioNTT2020 audio
encoder, Niizumi et al. 2021), computed with PyTorch (2.15 here) on CPU in
float64 and written to encoders/tests/data/mel_cnn_golden.safetensors:

- a small network (2 blocks of 4 channels, dim 6, 8 mel bands) in BYOL-A's
  layout and tensor names (`features.{0,1,4,5}`, `fc.{0,3}`; convolutions
  without bias, no dropout), its weights with perturbed BatchNorm affine and
  running statistics (`w.<name>`), a (3, 1, 8, 13) input `x`;
- `train` / `eval`: the pooled representation (BYOL-A's max + mean over time)
  in train mode (batch statistics) and eval mode (running statistics);
- `frames_train`: the per-frame features (batch, time, dim) before pooling;
- `running_mean.<i>` / `running_var.<i>`: block i's statistics after the train
  forward (momentum 0.1, unbiased variance);
- `g.<name>` and `g.x`: gradients of `sum(train * r)` for every weight and the
  input, `r` stored as `r`.

Run from the repository root in an environment with torch and safetensors;
the output is committed and `encoders/tests/audio_mel_cnn.rs` reads it. Not
run in CI.
"""
import copy

import torch
import torch.nn as nn
from safetensors.torch import save_file

torch.set_default_dtype(torch.float64)
torch.manual_seed(7)

N_MELS, CH, DIM, BLOCKS = 8, 4, 6, 2


class AudioNTT(nn.Module):
    def __init__(self):
        super().__init__()
        layers = []
        for i in range(BLOCKS):
            layers += [nn.Conv2d(1 if i == 0 else CH, CH, 3, padding=1, bias=False),
                       nn.BatchNorm2d(CH), nn.ReLU(), nn.MaxPool2d(2, stride=2)]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Sequential(nn.Linear(CH * (N_MELS // 2 ** BLOCKS), DIM), nn.ReLU(),
                                nn.Dropout(0.0), nn.Linear(DIM, DIM), nn.ReLU())

    def frames(self, x):
        x = self.features(x)        # (batch, ch, mel, time)
        x = x.permute(0, 3, 2, 1)   # (batch, time, mel, ch)
        b, t, d, c = x.shape
        return self.fc(x.reshape(b, t, c * d))

    def forward(self, x):
        f = self.frames(x)
        return f.max(dim=1).values + f.mean(dim=1), f


net = AudioNTT()
with torch.no_grad():
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.uniform_(0.5, 1.5)
            m.bias.uniform_(-0.3, 0.3)
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
weights = {k: v.detach().clone() for k, v in net.state_dict().items() if "num_batches" not in k}
x = torch.rand(3, 1, N_MELS, 13, requires_grad=True)

evaluated = copy.deepcopy(net).eval()
with torch.no_grad():
    eval_out, _ = evaluated(x)

net.train()
train_out, frames = net(x)
r = torch.randn_like(train_out)
(train_out * r).sum().backward()

out = {f"w.{k}": v for k, v in weights.items()}
out.update({"x": x.detach(), "train": train_out.detach(), "eval": eval_out,
            "frames_train": frames.detach(), "r": r, "g.x": x.grad})
for name, p in net.named_parameters():
    out[f"g.{name}"] = p.grad
for i in range(BLOCKS):
    bn = net.features[4 * i + 1]
    out[f"running_mean.{i}"] = bn.running_mean.clone()
    out[f"running_var.{i}"] = bn.running_var.clone()
save_file({k: v.contiguous() for k, v in out.items()}, "encoders/tests/data/mel_cnn_golden.safetensors")
print("wrote", len(out), "tensors")
