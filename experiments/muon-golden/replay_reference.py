"""Replays tests/golden/data/muon.json with the reference Muon update (KellerJordan/Muon,
SingleDeviceMuon: momentum and parameters in float64, Newton-Schulz in bfloat16) on whatever
torch and hardware this runs on, and prints the golden test's error metric (max over elements of
|a - b| / max(|b|, 0.1 * max|b|)) and the norm-wise one (||a - b|| / ||b|| per tensor).

Question it answers: does the official code itself, on another machine or torch version, land
within 1e-2 of the golden file? Usage: python3 replay_reference.py tests/golden/data/muon.json
[--write OUT.json]: also writes the CPU bf16 trajectory as a golden file of the same inputs (the
official code on this torch), which tests/golden checks terse against.
"""
import json
import sys

import torch


def newton_schulz(G, steps, coeffs, dtype):
    a, b, c = coeffs
    X = G.to(dtype)
    if G.size(-2) > G.size(-1):
        X = X.mT
    X = X / (X.norm(dim=(-2, -1), keepdim=True) + 1e-7)
    for _ in range(steps):
        A = X @ X.mT
        B = b * A + c * A @ A
        X = a * X + B @ X
    if G.size(-2) > G.size(-1):
        X = X.mT
    return X


def replay(case, device, ns_dtype):
    h = case["hyperparameters"]
    params = [torch.tensor(v, dtype=torch.float64, device=device).reshape(s)
              for v, s in zip(case["init"], case["shapes"])]
    moms = [torch.zeros_like(p) for p in params]
    out = {}
    for t in range(1, case["steps"] + 1):
        for i, p in enumerate(params):
            g = torch.tensor(case["grads"][t - 1][i], dtype=torch.float64, device=device).reshape(p.shape)
            moms[i].lerp_(g, 1 - h["momentum"])
            u = g.lerp_(moms[i], h["momentum"]) if h["nesterov"] else moms[i]
            if u.ndim == 4:
                u = u.view(len(u), -1)
            u = newton_schulz(u, h["ns_steps"], h["ns_coefficients"], ns_dtype)
            u *= max(1, g.size(-2) / g.size(-1)) ** 0.5
            p.mul_(1 - h["lr"] * h["weight_decay"])
            p.add_(u.reshape(p.shape), alpha=-h["lr"])
        if str(t) in case["params_after_step"]:
            out[t] = [p.detach().cpu().double().flatten().tolist() for p in params]
    return out


def errors(got, case):
    worst_el, worst_norm = 0.0, 0.0
    for t, tensors in got.items():
        for a, b in zip(tensors, case["params_after_step"][str(t)]):
            scale = max(abs(x) for x in b)
            floor = [max(abs(x), 0.1 * scale) for x in b]
            worst_el = max(worst_el, max(abs(x - y) / f for x, y, f in zip(a, b, floor)))
            num = sum((x - y) ** 2 for x, y in zip(a, b)) ** 0.5
            den = sum(y * y for y in b) ** 0.5
            worst_norm = max(worst_norm, num / den)
    return worst_el, worst_norm


def write_golden(case, path):
    got = replay(case, "cpu", torch.bfloat16)
    out = dict(case)
    out["name"] = "muon_torch" + torch.__version__.split("+")[0].replace(".", "_")
    out["reference"] = (case["reference"] + "; re-run with torch " + torch.__version__ +
                        " on the CPU by experiments/muon-golden/replay_reference.py")
    out["params_after_step"] = {str(t): v for t, v in got.items()}
    with open(path, "w") as f:
        json.dump(out, f)
    print("wrote", path)


def main():
    case = json.load(open(sys.argv[1]))
    if len(sys.argv) == 4 and sys.argv[2] == "--write":
        write_golden(case, sys.argv[3])
    print("torch", torch.__version__, "mkldnn bf16:",
          getattr(torch.backends.mkldnn, "is_available", lambda: None)(),
          torch.ops.mkldnn._is_mkldnn_bf16_supported() if hasattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported") else "?")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        for dt in (torch.bfloat16, torch.float32, torch.float64):
            el, nw = errors(replay(case, device, dt), case)
            print(f"{device:5s} NS in {str(dt):15s}: element-wise {el:.4g}  norm-wise {nw:.4g}")
    # The CPU's bf16 matmul with oneDNN off (torch's own gemm) as a second CPU path.
    if hasattr(torch.backends, "mkldnn"):
        with torch.backends.mkldnn.flags(enabled=False):
            el, nw = errors(replay(case, "cpu", torch.bfloat16), case)
            print(f"cpu   NS in bf16, mkldnn off: element-wise {el:.4g}  norm-wise {nw:.4g}")


if __name__ == "__main__":
    main()
