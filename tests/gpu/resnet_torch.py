"""resnet_torch.py - torchvision's ResNet-18/34/50/101/152 in plain torch (the GPU machines may
have no torchvision), with the engine's options: a width multiplier (stage widths
round(64*width) * 1, 2, 4, 8) and the small stem (conv1 3x3/1, no maxpool) of nn/resnet.c.
Parameter and buffer names equal torchvision's state_dict keys, so fedlung's safetensors load
as they are. Bottleneck v1.5 (the stride on the 3x3 convolution), as torchvision and fedlung.
Not a training script (see tests/gpu/torch_parity.py, bench/gpu-torch-bench).
"""

import math

import torch
import torch.nn as nn

LAYERS = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3],
          152: [3, 8, 36, 3]}


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False),
                                            nn.BatchNorm2d(planes))

    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or inplanes != planes * 4:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes * 4, 1, stride, bias=False), nn.BatchNorm2d(planes * 4))

    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNet(nn.Module):
    def __init__(self, depth=152, classes=3, width=1.0, stem="imagenet"):
        super().__init__()
        block = Bottleneck if depth >= 50 else BasicBlock
        base = max(1, int(math.floor(64 * width + 0.5)))  # lroundf, as nn/resnet.c
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(3, base, 7, 2, 3, bias=False)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
        elif stem == "small":
            self.conv1 = nn.Conv2d(3, base, 3, 1, 1, bias=False)
            self.maxpool = nn.Identity()
        else:
            raise ValueError(f"unknown stem {stem}")
        self.bn1 = nn.BatchNorm2d(base)
        self.relu = nn.ReLU(inplace=True)
        inplanes = base
        for i, n in enumerate(LAYERS[depth]):
            planes = base << i
            blocks = []
            for b in range(n):
                blocks.append(block(inplanes, planes, 2 if (i > 0 and b == 0) else 1))
                inplanes = planes * block.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(inplanes, classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def residual_last_bns(model):
    """The last BatchNorm of every residual branch (bn2 of a BasicBlock, bn3 of a Bottleneck)."""
    out = []
    for m in model.modules():
        if isinstance(m, Bottleneck):
            out.append(m.bn3)
        elif isinstance(m, BasicBlock):
            out.append(m.bn2)
    return out


def load_fedlung_weights(model, tensors):
    """Loads fedlung's safetensors dict (every parameter and BN running statistic, no
    num_batches_tracked) into model; raises if anything else is missing or left over."""
    sd = model.state_dict()
    missing = [k for k in sd if k not in tensors and not k.endswith("num_batches_tracked")]
    extra = [k for k in tensors if k not in sd]
    if missing or extra:
        raise ValueError(f"weights do not fit the model: missing {missing[:5]}, extra {extra[:5]}")
    with torch.no_grad():
        for k, v in tensors.items():
            if tuple(sd[k].shape) != tuple(v.shape):
                raise ValueError(f"{k}: shape {tuple(v.shape)}, model has {tuple(sd[k].shape)}")
            sd[k].copy_(v)
