"""Forward-pass time of the `pfns` package's transformer (PyTorch CPU), run by the benchmark
venv (/work/benchenv/bin/python): one batch of 100 context + 1000 target points, 1 feature.
Prints one JSON line. Called by bench/pfn_speed.py; not importable from opbayes."""

import json
import sys
import time

import torch
from pfns.model.transformer import TableTransformer

d_model, n_heads, n_layers, d_ff, n_out, threads = (int(a) for a in sys.argv[1:7])
torch.set_num_threads(threads)
torch.manual_seed(0)
model = TableTransformer(ninp=d_model, nhead=n_heads, nhid=d_ff, nlayers=n_layers,
                         decoder_dict={"standard": (None, n_out)}).eval()
x = torch.rand(1, 100, 1)
y = torch.randn(1, 100)
test_x = torch.rand(1, 1000, 1)
n_params = sum(p.numel() for p in model.parameters())
times = []
with torch.inference_mode():
    for i in range(6):
        t = time.perf_counter()
        out = model(x, y, test_x=test_x)
        times.append(time.perf_counter() - t)
out = out["standard"] if isinstance(out, dict) else out
print(json.dumps({"pfns_version": __import__("pfns").__version__ if hasattr(__import__("pfns"), "__version__") else "0.4.2",
                  "torch": torch.__version__, "params": n_params, "out_shape": list(out.shape),
                  "seconds_median": sorted(times[1:])[len(times[1:]) // 2]}))
