"""The reference PyTorch MgNO (xlliu2017/MgNO, ``models.py``), rewritten here in a few lines of
torch: the V-cycles of ``MgConv`` / ``MgConv_DC`` / ``MgConv_DC_smooth`` (Darcy, Navier-Stokes)
and ``MgConv_helm`` (Helmholtz), and the models ``MgNO_DC``, ``MgNO_NS`` and ``MgNO_helm``,
with the reference's layer types, paddings, biases and initialisation (PyTorch's defaults).

Channel-first ``(batch, channel, *grid)`` as in the reference. :func:`copy_into` copies the
weights of one of these into the opbayes model of the same configuration, so the forward passes
can be compared (tests/operators/test_mgno_torch.py) and timed (bench/mgno_vs_torch.py).
Only imported where torch is installed (the ``reference`` extra).
"""

from __future__ import annotations

import numpy as np
from torch import nn


class Smooth(nn.Module):
    """``MgIte``: ``u <- u + S(f - A u)``, or ``u = S(f)`` on the first step of the finest
    level (where the reference's Helmholtz V-cycle still builds an ``A`` it never uses)."""

    def __init__(self, A, S):
        super().__init__()
        self.A, self.S = A, S

    def forward(self, u, f):
        return self.S(f) if u is None else u + self.S(f - self.A(u))


class VCycle(nn.Module):
    """The reference V-cycle. ``helm=False``: ``MgConv`` (``norm_sizes``: its LayerNorms after
    each prolongation, ``bias``, ``padding_mode``) or ``MgConv_DC[_smooth]`` (``kernels``: the
    ConvTranspose2d kernel of each level, padding 1). ``helm=True``: ``MgConv_helm`` (reflect
    smoothers with biases, unpadded stride-2 restrictions and prolongations, channels
    ``(l + 1) c`` on level ``l``; ``smoothing`` a list of ints)."""

    def __init__(self, c_u, c_f, smoothing, kernels, padding_mode="zeros", bias=False, norm_sizes=None,
                 helm=False):
        super().__init__()
        L = len(smoothing)
        g = [(l + 1) if helm else 1 for l in range(L)]
        p = 0 if helm else 1
        mode = "reflect" if helm else padding_mode
        bias = True if helm else bias

        def conv(ci, co):
            return nn.Conv2d(ci, co, 3, 1, 1, bias=bias, padding_mode=mode)

        self.pre, self.post = nn.ModuleList(), nn.ModuleList()
        self.Pi, self.R, self.RT = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for l, it in enumerate(smoothing):
            pre, post = (it, 0) if helm else tuple(it)
            cu, cf = c_u * g[l], c_f * g[l]
            steps = []
            for i in range(pre):
                first = l == 0 and i == 0
                S = conv(cf, cu)
                A = conv(cu, cf) if (helm or not first) else None
                steps.append(Smooth(A, S))
            self.pre.append(nn.ModuleList(steps))
            post_steps = []
            for _ in range(post):
                S = conv(cf, cu)
                post_steps.append(Smooth(conv(cu, cf), S))
            self.post.append(nn.ModuleList(post_steps))
            if l < L - 1:
                self.Pi.append(nn.Conv2d(cu, c_u * g[l + 1], 3, 2, p, bias=False, padding_mode=mode))
                self.R.append(nn.Conv2d(cf, c_f * g[l + 1], 3, 2, p, bias=False, padding_mode=mode))
        for l in range(L - 1):
            self.RT.append(nn.ConvTranspose2d(c_u * g[l + 1], c_u * g[l], kernels[l], 2, p, bias=False))
        self.norms = (nn.ModuleList([nn.LayerNorm([c_u, n, n]) for n in norm_sizes]) if norm_sizes
                      else None)

    def forward(self, f):
        us, fs, u = [], [], None
        for l in range(len(self.pre)):
            if l > 0:
                u, f = self.Pi[l - 1](u), self.R[l - 1](f)
            for step in self.pre[l]:
                u = step(u, f)
            us.append(u)
            fs.append(f)
        u = us[-1]
        for l in range(len(self.pre) - 2, -1, -1):
            u = us[l] + self.RT[l](u)
            if self.norms is not None:
                u = self.norms[l](u)
            for step in self.post[l]:
                u = step(u, fs[l])
        return u


class MgNO_DC(nn.Module):
    """Darcy: ``u <- GELU(W^Mg u + W u + b)``, bias-free 1x1 head."""

    def __init__(self, n_layers, c_u, c_f, smoothing, kernels):
        super().__init__()
        self.mg = nn.ModuleList([VCycle(c_u, c_f if i == 0 else c_u, smoothing, kernels) for i in range(n_layers)])
        self.linear = nn.ModuleList([nn.Conv2d(c_f if i == 0 else c_u, c_u, 1) for i in range(n_layers)])
        self.head = nn.Conv2d(c_u, 1, 1, bias=False)

    def forward(self, u):
        for mg, lin in zip(self.mg, self.linear):
            u = nn.functional.gelu(mg(u) + lin(u))
        return self.head(u)


class MgNO_NS(nn.Module):
    """Navier-Stokes: ``u <- GELU(W^Mg u)`` (circular smoothers, LayerNorms on 64 // 2^j),
    bias-free 1x1 head, output ``+ u_0``."""

    def __init__(self, n_layers, c_u, c_f, smoothing, bias=True, grid=64):
        super().__init__()
        kw = {"padding_mode": "circular", "bias": bias,
              "norm_sizes": [grid // 2**j for j in range(len(smoothing) - 1)]}
        kernels = [4] * (len(smoothing) - 1)
        self.mg = nn.ModuleList([VCycle(c_u, c_f if i == 0 else c_u, smoothing, kernels, **kw)
                                 for i in range(n_layers)])
        self.head = nn.Conv2d(c_u, 1, 1, bias=False)

    def forward(self, u):
        u0 = u
        for mg in self.mg:
            u = nn.functional.gelu(mg(u))
        return self.head(u) + u0


class MgNO_helm(nn.Module):
    """Helmholtz: ``u <- GELU(LayerNorm_i(W^Mg_i u))``, then a V-cycle ``c_u -> 1`` as the head."""

    def __init__(self, n_layers, c_u, c_f, smoothing, grid=101):
        super().__init__()
        kernels = [3] + [4] * (len(smoothing) - 3) + [3]
        self.mg = nn.ModuleList([VCycle(c_u, c_f if i == 0 else c_u, smoothing, kernels, helm=True)
                                 for i in range(n_layers)])
        self.norms = nn.ModuleList([nn.LayerNorm([c_u, grid, grid]) for _ in range(n_layers)])
        self.head = VCycle(1, c_u, smoothing, kernels, helm=True)

    def forward(self, u):
        for mg, norm in zip(self.mg, self.norms):
            u = nn.functional.gelu(norm(mg(u)))
        return self.head(u)


def count_params(model) -> int:
    """Trainable scalars, as the reference's ``count_params``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ------------------------------------------------------------------------------------------
# weights into the opbayes models (channel-last, kernels (*k, c_in, c_out))

def _np(t):
    return t.detach().cpu().numpy()


def _set(param, value):
    value = np.asarray(value)
    if param[...].shape != value.shape:
        raise ValueError(f"shape mismatch: ours {param[...].shape}, reference {value.shape}")
    param[...] = value.astype(param[...].dtype)


def _conv(ours, ref):
    _set(ours.kernel, _np(ref.weight).transpose(2, 3, 1, 0))
    if ref.bias is not None:
        _set(ours.bias, _np(ref.bias))


def _norm(ours, ref):
    _set(ours.scale, _np(ref.weight).transpose(1, 2, 0))
    _set(ours.bias, _np(ref.bias).transpose(1, 2, 0))


def _vcycle(ours, ref):
    for lo, lr in zip(list(ours.pre) + list(ours.post), list(ref.pre) + list(ref.post)):
        assert len(lo) == len(lr)
        for so, sr in zip(lo, lr):
            _conv(so.S, sr.S)
            if so.A is not None:
                _conv(so.A, sr.A)
    for po, pr in zip(ours.Pi, ref.Pi):
        _conv(po, pr)
    for ro, rr in zip(ours.R, ref.R):
        _conv(ro, rr)
    for po, pr in zip(ours.P, ref.RT):  # ConvTranspose2d weight (c_in, c_out, kh, kw)
        _set(po.kernel, _np(pr.weight).transpose(2, 3, 0, 1))
    if ref.norms is not None:
        for no, nr in zip(ours.norms, ref.norms):
            _norm(no, nr)


def copy_into(ours, ref) -> None:
    """Copy the weights of the reference model ``ref`` into the opbayes model ``ours`` (in place)."""
    for mo, mr in zip(ours.mg, ref.mg):
        _vcycle(mo, mr)
    if isinstance(ref, MgNO_DC):
        for lo, lr in zip(ours.linear, ref.linear):
            _set(lo.kernel, _np(lr.weight)[:, :, 0, 0].T)
            _set(lo.bias, _np(lr.bias))
    if isinstance(ref, MgNO_helm):
        for no, nr in zip(ours.norms, ref.norms):
            _norm(no, nr)
        _vcycle(ours.head, ref.head)
    else:
        _set(ours.head.kernel, _np(ref.head.weight)[:, :, 0, 0].T)
