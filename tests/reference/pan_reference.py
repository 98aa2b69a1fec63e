"""PyTorch reference for PAN (Pixel Attention Network, Zhao et al., ECCVW 2020).

Our own re-implementation following the semantics of the official
codes/models/archs/PAN_arch.py (github.com/zhaohengyuan1/PAN). Module and
parameter names match the official ones, so official checkpoints load with
load_state_dict(strict=True).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


def lrelu(x):
    return F.leaky_relu(x, negative_slope=0.2)


class PA(nn.Module):
    """Pixel attention: x * sigmoid(conv1x1(x))."""

    def __init__(self, nf):
        super().__init__()
        self.conv = nn.Conv2d(nf, nf, 1)

    def forward(self, x):
        return x * torch.sigmoid(self.conv(x))


class PAConv(nn.Module):
    """k4(k3(x) * sigmoid(k2(x)))."""

    def __init__(self, nf, k_size=3):
        super().__init__()
        p = (k_size - 1) // 2
        self.k2 = nn.Conv2d(nf, nf, 1)
        self.k3 = nn.Conv2d(nf, nf, k_size, padding=p, bias=False)
        self.k4 = nn.Conv2d(nf, nf, k_size, padding=p, bias=False)

    def forward(self, x):
        # The official order (k2, then k3): an ONNX export lists the convs as they run.
        y = torch.sigmoid(self.k2(x))
        return self.k4(self.k3(x) * y)


class SCPA(nn.Module):
    """Self-calibrated block with pixel attention."""

    def __init__(self, nf, reduction=2):
        super().__init__()
        gw = nf // reduction
        self.conv1_a = nn.Conv2d(nf, gw, 1, bias=False)
        self.conv1_b = nn.Conv2d(nf, gw, 1, bias=False)
        self.k1 = nn.Sequential(nn.Conv2d(gw, gw, 3, padding=1, bias=False))
        self.PAConv = PAConv(gw)
        self.conv3 = nn.Conv2d(gw * reduction, nf, 1, bias=False)

    def forward(self, x):
        a = lrelu(self.conv1_a(x))
        b = lrelu(self.conv1_b(x))
        a = lrelu(self.k1(a))
        b = lrelu(self.PAConv(b))
        return self.conv3(torch.cat([a, b], dim=1)) + x


class UPA(nn.Module):
    """Standalone U-PA stage (for fixtures): nearest-up(s) -> upconv -> PA -> lrelu -> HRconv -> lrelu.

    Inside PAN the same layers are named upconv{1,2}, att{1,2}, HRconv{1,2}.
    """

    def __init__(self, nf_in, unf, scale=2):
        super().__init__()
        self.scale = scale
        self.upconv = nn.Conv2d(nf_in, unf, 3, 1, 1)
        self.att = PA(unf)
        self.HRconv = nn.Conv2d(unf, unf, 3, 1, 1)

    def forward(self, x):
        x = self.upconv(F.interpolate(x, scale_factor=self.scale, mode="nearest"))
        x = lrelu(self.att(x))
        return lrelu(self.HRconv(x))


class PAN(nn.Module):
    def __init__(self, in_nc=3, out_nc=3, nf=40, unf=24, nb=16, scale=4):
        super().__init__()
        assert scale in (2, 3, 4)
        self.scale = scale
        self.conv_first = nn.Conv2d(in_nc, nf, 3, 1, 1)
        self.SCPA_trunk = nn.Sequential(*[SCPA(nf, 2) for _ in range(nb)])
        self.trunk_conv = nn.Conv2d(nf, nf, 3, 1, 1)
        self.upconv1 = nn.Conv2d(nf, unf, 3, 1, 1)
        self.att1 = PA(unf)
        self.HRconv1 = nn.Conv2d(unf, unf, 3, 1, 1)
        if scale == 4:
            self.upconv2 = nn.Conv2d(unf, unf, 3, 1, 1)
            self.att2 = PA(unf)
            self.HRconv2 = nn.Conv2d(unf, unf, 3, 1, 1)
        self.conv_last = nn.Conv2d(unf, out_nc, 3, 1, 1)

    def forward(self, x):
        fea = self.conv_first(x)
        fea = fea + self.trunk_conv(self.SCPA_trunk(fea))
        s1 = 2 if self.scale == 4 else self.scale
        fea = self.upconv1(F.interpolate(fea, scale_factor=s1, mode="nearest"))
        fea = lrelu(self.att1(fea))
        fea = lrelu(self.HRconv1(fea))
        if self.scale == 4:
            fea = self.upconv2(F.interpolate(fea, scale_factor=2, mode="nearest"))
            fea = lrelu(self.att2(fea))
            fea = lrelu(self.HRconv2(fea))
        out = self.conv_last(fea)
        ilr = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return out + ilr


def num_params(m):
    return sum(p.numel() for p in m.parameters())


if __name__ == "__main__":
    # Verify against the official checkpoints (strict load) and print param counts.
    import sys

    root = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/weights/sr/pan"
    for s in (2, 3, 4):
        m = PAN(scale=s)
        ck = torch.load(f"{root}/PANx{s}_DF2K.pth", map_location="cpu", weights_only=True)
        print(f"x{s}: top-level type {type(ck).__name__}, {len(ck)} entries")
        m.load_state_dict(ck, strict=True)
        print(f"x{s}: params {num_params(m):,}; strict load OK")
