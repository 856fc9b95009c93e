#!/bin/bash
# check_cam_torch.sh - `fedlung explain cam --input` against PyTorch: a torchvision resnet18
# (3 classes) with random weights and BN running statistics, 18 random 80-px inputs (two
# batches of the engine, the second overlapping the first), CAM maps from layer4's output and
# the fc weights, and Grad-CAM maps from autograd's d logit / d layer4 (ReLU, then upsampling),
# both upsampled with F.interpolate(bilinear, align_corners=False) and compared to 1e-4 of the
# largest |reference|; also --class predicted and --class 2 against the matching reference
# maps. layer4 is 3 x 3 at 80 px, so the upsampling's non-integer scale is exercised.
# Usage (ctest, from tests/): bash check_cam_torch.sh /path/to/fedlung
set -euo pipefail

fedlung=${1:?usage: check_cam_torch.sh /path/to/fedlung}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
py=/usr/bin/python3

[ -x "$fedlung" ] && "$py" -c 'import numpy, torch, torchvision' 2>/dev/null || {
    echo "check_cam_torch: needs an executable fedlung (got $fedlung) and $py with numpy," \
        "torch and torchvision (apt-get install python3-torch python3-torchvision)" >&2
    exit 1
}
source "$here/lib.sh"
t_workdir fedlung-cam
tmp=$work

# 1. The reference: weights, inputs, and PyTorch's CAM and Grad-CAM maps (float64).
"$py" - "$tmp" "$here/../tools" <<'EOF'
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

tmp = sys.argv[1]
sys.path.insert(0, sys.argv[2])
from pth2safetensors import encode, write_atomic  # noqa: E402

torch.set_num_threads(2)
gen = torch.Generator().manual_seed(19)
torch.manual_seed(18)
model = torchvision.models.resnet18(num_classes=3)
with torch.no_grad():
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.copy_(torch.rand(m.weight.shape, generator=gen) * 0.5 + 0.5)
            m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
N, T = 18, 80
x = torch.randn(N, 3, T, T, generator=gen)
np.save(f"{tmp}/x.npy", x.numpy())
model.eval()
with torch.no_grad():  # centre the logits so that --class predicted sees every class
    model.fc.bias.sub_(model(x).mean(dim=0))
write_atomic(f"{tmp}/w.safetensors", *encode(model.state_dict()))

m64 = model.double()
feats = {}
m64.layer4.register_forward_hook(lambda mod, i, o: feats.update(a=o))
logits = m64(x.double())
A = feats["a"]  # N x 512 x 3 x 3, part of the graph
W = m64.fc.weight.detach()  # 3 x 512
up = lambda m: F.interpolate(m, size=(T, T), mode="bilinear", align_corners=False)
cam = up(torch.einsum("kc,nchw->nkhw", W, A.detach()))
grad = []
for k in range(3):
    (g,) = torch.autograd.grad(logits[:, k].sum(), A, retain_graph=True)
    alpha = g.mean(dim=(2, 3), keepdim=True)
    grad.append(up(F.relu((alpha * A.detach()).sum(dim=1, keepdim=True))))
gradcam = torch.cat(grad, dim=1)
pred = logits.detach().argmax(dim=1).numpy()
np.save(f"{tmp}/cam_ref.npy", cam.numpy())
np.save(f"{tmp}/gradcam_ref.npy", gradcam.numpy())
np.save(f"{tmp}/pred_ref.npy", pred)
print(f"check_cam_torch: layer4 maps {tuple(A.shape)}, predicted classes {np.bincount(pred, minlength=3)}")
EOF

# 2. The engine.
common=(explain cam --input "$tmp/x.npy" --weights "$tmp/w.safetensors" --arch resnet18
    --tile 80 --classes 3)
"$fedlung" "${common[@]}" --out "$tmp/cam.npy"
"$fedlung" "${common[@]}" --grad-cam --out "$tmp/gradcam.npy"
"$fedlung" "${common[@]}" --class predicted --out "$tmp/cam_pred.npy"
"$fedlung" "${common[@]}" --grad-cam --class 2 --out "$tmp/gradcam_2.npy"

# 3. The comparison.
"$py" - "$tmp" <<'EOF'
import sys

import numpy as np

tmp = sys.argv[1]
cam = np.load(f"{tmp}/cam_ref.npy")
gradcam = np.load(f"{tmp}/gradcam_ref.npy")
pred = np.load(f"{tmp}/pred_ref.npy")
refs = {
    "cam": cam,
    "gradcam": gradcam,
    "cam_pred": cam[np.arange(len(pred)), pred][:, None],
    "gradcam_2": gradcam[:, 2:3],
}


def verdict(name, ref):
    """One line per array: the largest |engine - torch| over the largest |torch|, and where."""
    got = np.load(f"{tmp}/{name}.npy").astype(np.float64)
    if got.shape != ref.shape:
        print(f"check_cam_torch: {name}: engine shape {got.shape} != torch {ref.shape} FAIL")
        return False
    diff = np.abs(got - ref)
    worst = np.unravel_index(diff.argmax(), diff.shape)
    rel = diff[worst] / max(np.abs(ref).max(), 1e-30)
    where = ", ".join(str(int(i)) for i in worst)
    print(f"check_cam_torch: {name}: max diff / max |torch| {rel:.2e} at [{where}] "
          f"(engine {got[worst]:.7g}, torch {ref[worst]:.7g}) {'ok' if rel <= 1e-4 else 'FAIL'}")
    return rel <= 1e-4


ok = all([verdict(name, ref) for name, ref in refs.items()])
sys.exit(0 if ok else 1)
EOF
