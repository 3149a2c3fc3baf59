"""The original networks in PyTorch, rebuilt for the tests from the authors' code.

Each mirrors its original's module structure, so `state_dict()` has the released checkpoints' key
names and layouts, and takes a `width` multiplier (channel counts scaled like the Flax ports') so
thin variants exercise the same conversion path. Inputs and outputs are in each original's own
range and NCHW layout:
- `DVD`: shuochsu/DeepVideoDeblurring `models/model2_symskip_nngraph2_deeper.lua` (Torch7); its
  parameters are declared in the graph's order, so `parameters()` flattened is the Torch7 vector.
- `ResnetGenerator`: KupynOrest/DeblurGAN `models/networks.py`, resnet_9blocks, instance norm,
  dropout layers present (the released model has them, which fixes the state-dict indices).
- `FlowNetS`: ClementPinard/FlowNetPytorch `models/FlowNetS.py` with `batchNorm=False`.
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F


def scaled(channels: int, width: float) -> int:
  return max(1, round(channels * width))


class DVD(nn.Module):
  """Input `[B, 3 * frames, H, W]` in `[0, 1]` (H, W multiples of 8) -> `[B, 3, H, W]`."""

  def __init__(self, frames: int = 5, width: float = 1.0):
    super().__init__()
    c = lambda channels: scaled(channels, width)
    # name: (in, out, kernel, stride, transposed), in the graph's order.
    spec = {
        "F0": (3 * frames, c(64), 5, 1, False), "D1": (c(64), c(64), 3, 2, False),
        "F1": (c(64), c(128), 3, 1, False), "F2": (c(128), c(128), 3, 1, False),
        "D2": (c(128), c(256), 3, 2, False), "F3": (c(256), c(256), 3, 1, False),
        "F4": (c(256), c(256), 3, 1, False), "F5": (c(256), c(256), 3, 1, False),
        "D3": (c(256), c(512), 3, 2, False), "F6": (c(512), c(512), 3, 1, False),
        "F7": (c(512), c(512), 3, 1, False), "F8": (c(512), c(512), 3, 1, False),
        "U1": (c(512), c(256), 4, 2, True), "F9": (c(256), c(256), 3, 1, False),
        "F10": (c(256), c(256), 3, 1, False), "F11": (c(256), c(256), 3, 1, False),
        "U2": (c(256), c(128), 4, 2, True), "F12": (c(128), c(128), 3, 1, False),
        "F13": (c(128), c(64), 3, 1, False), "U3": (c(64), c(64), 4, 2, True),
        "F14": (c(64), 3 * frames, 3, 1, False), "F15": (3 * frames, 3, 3, 1, False),
    }
    self.frames = frames
    for name, (cin, cout, k, s, transposed) in spec.items():
      conv = (nn.ConvTranspose2d(cin, cout, k, s, 1) if transposed
              else nn.Conv2d(cin, cout, k, s, (k - 1) // 2))
      self.add_module(name, nn.Sequential(conv, nn.BatchNorm2d(cout, eps=1e-3)))

  def forward(self, x):
    r = lambda name, y: F.relu(getattr(self, name)(y))
    f0 = r("F0", x)
    y = r("F1", r("D1", f0))
    f2 = r("F2", y)
    f5 = r("F5", r("F4", r("F3", r("D2", f2))))
    y = r("F8", r("F7", r("F6", r("D3", f5))))
    y = F.relu(self.U1(y) + f5)
    y = r("F11", r("F10", r("F9", y)))
    y = F.relu(self.U2(y) + f2)
    y = r("F13", r("F12", y))
    y = F.relu(self.U3(y) + f0)
    residual = self.F15(r("F14", y))
    centre = x[:, 3 * (self.frames // 2):3 * (self.frames // 2) + 3]
    return torch.sigmoid(centre + residual)


class ResnetBlock(nn.Module):

  def __init__(self, dim: int):
    super().__init__()
    self.conv_block = nn.Sequential(
        nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), nn.InstanceNorm2d(dim), nn.ReLU(True),
        nn.Dropout(0.5),
        nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), nn.InstanceNorm2d(dim))

  def forward(self, x):
    return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
  """Input `[B, 3, H, W]` in `[-1, 1]` (H, W multiples of 4) -> `[B, 3, H, W]` in `[-1, 1]`.

  Call `.eval()` to switch dropout off; instance norm uses per-image statistics either way.
  """

  def __init__(self, width: float = 1.0):
    super().__init__()
    ngf = scaled(64, width)
    norm = nn.InstanceNorm2d
    model = [nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7), norm(ngf), nn.ReLU(True)]
    for mult in (1, 2):
      model += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, 2, 1), norm(ngf * mult * 2),
                nn.ReLU(True)]
    model += [ResnetBlock(4 * ngf) for _ in range(9)]
    for mult in (4, 2):
      model += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, 2, 1, output_padding=1),
                norm(ngf * mult // 2), nn.ReLU(True)]
    model += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh()]
    self.model = nn.Sequential(*model)

  def forward(self, x):
    return torch.clamp(x + self.model(x), -1, 1)


def _conv(cin, cout, kernel=3, stride=1):
  return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2),
                       nn.LeakyReLU(0.1, inplace=True))


def _deconv(cin, cout):
  return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False),
                       nn.LeakyReLU(0.1, inplace=True))


def _crop_like(x, target):
  return x[:, :, :target.shape[2], :target.shape[3]]


class FlowNetS(nn.Module):
  """Input `[B, 6, H, W]` (both images, `[0, 1]` minus the mean) -> flow2 (eval) or flow2..6."""

  def __init__(self, width: float = 1.0):
    super().__init__()
    c = lambda channels: scaled(channels, width)
    self.conv1 = _conv(6, c(64), 7, 2)
    self.conv2 = _conv(c(64), c(128), 5, 2)
    self.conv3 = _conv(c(128), c(256), 5, 2)
    self.conv3_1 = _conv(c(256), c(256))
    self.conv4 = _conv(c(256), c(512), stride=2)
    self.conv4_1 = _conv(c(512), c(512))
    self.conv5 = _conv(c(512), c(512), stride=2)
    self.conv5_1 = _conv(c(512), c(512))
    self.conv6 = _conv(c(512), c(1024), stride=2)
    self.conv6_1 = _conv(c(1024), c(1024))
    concat5 = c(512) + c(512) + 2
    concat4 = c(512) + c(256) + 2
    concat3 = c(256) + c(128) + 2
    concat2 = c(128) + c(64) + 2
    self.deconv5 = _deconv(c(1024), c(512))
    self.deconv4 = _deconv(concat5, c(256))
    self.deconv3 = _deconv(concat4, c(128))
    self.deconv2 = _deconv(concat3, c(64))
    for level, cin in zip((6, 5, 4, 3, 2), (c(1024), concat5, concat4, concat3, concat2)):
      self.add_module(f"predict_flow{level}", nn.Conv2d(cin, 2, 3, 1, 1, bias=False))
    for level in (6, 5, 4, 3):
      self.add_module(f"upsampled_flow{level}_to_{level - 1}",
                      nn.ConvTranspose2d(2, 2, 4, 2, 1, bias=False))
    for m in self.modules():
      if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.kaiming_normal_(m.weight, 0.1)

  def forward(self, x):
    skips = {2: self.conv2(self.conv1(x))}
    skips[3] = self.conv3_1(self.conv3(skips[2]))
    skips[4] = self.conv4_1(self.conv4(skips[3]))
    skips[5] = self.conv5_1(self.conv5(skips[4]))
    features = self.conv6_1(self.conv6(skips[5]))
    flows = [self.predict_flow6(features)]
    for level in (5, 4, 3, 2):
      skip = skips[level]
      up_flow = _crop_like(getattr(self, f"upsampled_flow{level + 1}_to_{level}")(flows[-1]), skip)
      up = _crop_like(getattr(self, f"deconv{level}")(features), skip)
      features = torch.cat((skip, up, up_flow), 1)
      flows.append(getattr(self, f"predict_flow{level}")(features))
    return tuple(reversed(flows)) if self.training else flows[-1]
