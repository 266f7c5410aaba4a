#!/usr/bin/env python3
"""Writes encoders/tests/data/torch_format.pth: a `.pth` laid out exactly as
`torch.save` lays out a state dict (zip archive, protocol-2 pickle from
Python's own Pickler with memo/BINGET, BININT1 offsets, persistent storage ids,
two tensors sharing one storage at different offsets, a 0-dim LongStorage
tensor as BatchNorm's num_batches_tracked), without needing torch installed.
The test encoders/tests/checkpoint_bad.rs::torch_format_pth_loads reads it.
Run from the repository root; the output is committed."""
import collections, io, pickle, struct, sys, types, zipfile

torch = types.ModuleType("torch")
utils = types.ModuleType("torch._utils")
sys.modules["torch"] = torch
sys.modules["torch._utils"] = utils


def _rebuild_tensor_v2(*a):
    raise RuntimeError("only pickled here")


_rebuild_tensor_v2.__module__ = "torch._utils"
utils._rebuild_tensor_v2 = _rebuild_tensor_v2


class FloatStorage:
    pass


class LongStorage:
    pass


for c in (FloatStorage, LongStorage):
    c.__module__ = "torch"
    setattr(torch, c.__name__, c)


class Storage:
    def __init__(self, key, cls, values, fmt):
        self.key, self.cls, self.values, self.fmt = key, cls, values, fmt


class T:
    """A tensor view: storage, offset (elements), size, stride."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def __reduce__(self):
        return (
            _rebuild_tensor_v2,
            (self.storage, self.offset, self.size, self.stride, False, collections.OrderedDict()),
        )


class P(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", obj.cls, obj.key, "cpu", len(obj.values))
        return None


shared = Storage("0", FloatStorage, [float(i) for i in range(10)], "<f")
nbt = Storage("1", LongStorage, [7], "<q")
sd = collections.OrderedDict()
sd["conv1.weight"] = T(shared, 0, (2, 3), (3, 1))  # 0..6
sd["bn1.weight"] = T(shared, 6, (4,), (1,))  # 6..10
sd["bn1.num_batches_tracked"] = T(nbt, 0, (), ())

buf = io.BytesIO()
P(buf, protocol=2).dump(sd)
with zipfile.ZipFile("encoders/tests/data/torch_format.pth", "w", zipfile.ZIP_STORED) as z:
    z.writestr("archive/data.pkl", buf.getvalue())
    z.writestr("archive/byteorder", "little")
    for s in (shared, nbt):
        z.writestr(f"archive/data/{s.key}", b"".join(struct.pack(s.fmt, v) for v in s.values))
    z.writestr("archive/version", "3\n")
