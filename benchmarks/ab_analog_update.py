"""Before/after in one process: the analog-SGD epoch of ``bench_analog.py`` (pair=pos, 10k MNIST samples) with
other versions of ``methods/analog.py`` beside the current one, in interleaved rounds; medians of CPU and wall time.

    git show REV:src/memristive/methods/analog.py > /tmp/analog_before.py
    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/ab_analog_update.py 9 before=/tmp/analog_before.py

Each version's update schemes and pulse writer replace the optimizer's (``analog_optim.PairWriter``,
``update_scheme``); everything else (forward/backward, the optimizer) is the current code.
"""
import os, sys, time, statistics, importlib.util, torch
sys.path.insert(0, "benchmarks")
import bench_analog as B
import memristive.methods.analog as cur
import memristive.methods.analog_optim as AO
mods = {}
for i, path in enumerate(sys.argv[2:]):
    name, file = path.split("=")
    spec = importlib.util.spec_from_file_location(f"memristive.methods.analog_v{i}", file)
    m = importlib.util.module_from_spec(spec); sys.modules[spec.name] = m; spec.loader.exec_module(m)
    mods[name] = m
mods["current"] = cur
from memristive.data import load_mnist
torch.set_num_threads(1)
d = load_mnist(); x, y = d.x_train[:10000], d.y_train[:10000]
def use(mod):
    AO.PairWriter, AO.update_scheme = mod.PairWriter, mod.update_scheme
reps = int(sys.argv[1])
t = {k: [] for k in mods}
names = list(mods)
for r in range(reps):
    order = names if r % 2 == 0 else names[::-1]
    for k in order:
        use(mods[k])
        (w, c), tot = B.analog_epoch(x, y, r, pair=os.environ.get("PAIR", "pos"))
        t[k].append((w, c, tot["pulses"]))
for k, v in t.items():
    print(f"{k:10s} median wall {statistics.median(a for a, _, _ in v):.3f} s, cpu {statistics.median(b for _, b, _ in v):.3f} s; "
          f"cpu all {[round(b, 3) for _, b, _ in v]}; pulses (median) {statistics.median(p for _, _, p in v):.4g}")
