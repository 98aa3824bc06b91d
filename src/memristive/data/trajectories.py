"""True/false trajectory dataset: physically limited true tracks and spoofed (false) ones.

**True tracks** come from a generator or from real ADS-B flights:

* ``synthetic`` -- Markov-switching kinematics, vectorised over sequences: each step keeps its mode
  with probability 1 − p_switch (default 0.05) or draws a new one of constant velocity, constant
  acceleration ``|a| ≤ a_max`` or coordinated turn ``|ω| ≤ a_lat_max / v``; speed is clipped to
  ``[v_min, v_max]``, with small jerk-level process noise. Observed through GPS: white noise
  ``σ_gps`` plus a Gauss–Markov bias ``b_t = e^{−Δt/τ} b_{t−1} + σ_b·√(1 − e^{−2Δt/τ})·ξ``; the
  reported speed and course carry their own noise. Profiles: ``aircraft`` (60–250 m/s, 2 m/s²,
  5 m/s² lateral, σ_gps 5 m, bias 3 m / 60 s) and ``vehicle`` (0–40 m/s, 3 m/s², 4 m/s², 3 m, 2 m).
* ``adsb`` -- real tracks from the sample files of the ``traffic==2.13`` wheel on PyPI (MIT): all
  1 Hz files except the ``noisy/`` and ``onground/`` folders, split per aircraft at gaps over
  ``max_gap_s``, resampled onto a 1 s grid, converted to a local east/north frame (equirectangular
  about the segment start) and cut into non-overlapping windows whose median speed is ≥ 30 m/s.
  The reported velocity is the broadcast ground speed and track angle. Segments are split between
  train and test *by segment* so windows of one flight never sit on both sides.
* ``mixed`` -- half of each split from each source (ADS-B windows are reused at most once).

**False tracks** are true tracks with one spoofing attack from time ``t0`` ~ U[¼, ¾] of the window
(the reported speed and course stay genuine: the attacker spoofs positions only):

===========  ==========================================================================
jump         positions offset by ``d`` ~ U[30, 1000] m in a random direction from t0 on
drift        carry-off: offset ``½·a·(t − t0)²``, ``a`` ~ U[0.05, 0.5] m/s² (smooth, slow)
speed        impossible kinematics: for 3–15 s the displacement is 3–10× the true one
freeze       the position is frozen at its t0 value (plus receiver noise) while moving
replay       from t0 the displacements of *another* track are replayed from the current point
clean        the whole track is too clean: σ = 0.3 m white noise, no bias (a simulator spoofer);
             for real ADS-B the track is first smoothed (centred 5-point moving average)
===========  ==========================================================================

**Features** per step ``t = 1…L``: the displacement rate and the reported velocity (speed ·
(sin ψ, cos ψ)), divided by ``speed_scale`` (the profile's v_max), and their difference (the
innovation, as a Kalman filter would form it) divided by ``residual_scale`` (10 m/s)::

    [Δx_t/Δt, Δy_t/Δt, v_e,t, v_n,t] / v_max,   [Δx_t/Δt − v_e,t, Δy_t/Δt − v_n,t] / 10 m/s

(``residual_features=False`` keeps only the first four.) Labels: 0 = true, 1 = false; ``attack``
holds the attack index (−1 for true tracks).
"""

from __future__ import annotations

import gzip
import json
import math
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from ..config import check
from .mnist import DataError, _progress, data_dir

__all__ = [
    "ATTACKS",
    "PROFILES",
    "MotionProfile",
    "TrajectoryConfig",
    "TrajectoryData",
    "synthetic_tracks",
    "apply_attacks",
    "track_features",
    "fetch_traffic_samples",
    "load_adsb_segments",
    "adsb_windows",
    "make_trajectory_dataset",
]

ATTACKS = ("jump", "drift", "speed", "freeze", "replay", "clean")
TRAFFIC_VERSION = "2.13"
KNOT = 0.514444
EARTH_R = 6371000.0


@dataclass
class MotionProfile:
    v_min: float
    v_max: float
    a_max: float
    a_lat_max: float
    gps_sigma: float
    bias_sigma: float
    bias_tau: float
    speed_noise: float
    course_noise_deg: float
    p_switch: float = 0.05
    jerk: float = 0.05


PROFILES = {
    "aircraft": MotionProfile(v_min=60.0, v_max=250.0, a_max=2.0, a_lat_max=5.0, gps_sigma=5.0, bias_sigma=3.0,
                              bias_tau=60.0, speed_noise=0.5, course_noise_deg=0.5),
    "vehicle": MotionProfile(v_min=0.0, v_max=40.0, a_max=3.0, a_lat_max=4.0, gps_sigma=3.0, bias_sigma=2.0,
                             bias_tau=60.0, speed_noise=0.2, course_noise_deg=2.0),
}


@dataclass
class TrajectoryConfig:
    """What :func:`make_trajectory_dataset` builds."""

    n_train: int = 8000
    n_test: int = 2000
    steps: int = 64
    source: Literal["synthetic", "adsb", "mixed"] = "mixed"
    profile: Literal["aircraft", "vehicle"] = "aircraft"
    false_fraction: float = 0.5
    attacks: list[str] = field(default_factory=lambda: list(ATTACKS))
    jump_m: tuple[float, float] = (30.0, 1000.0)
    drift_accel: tuple[float, float] = (0.05, 0.5)
    speed_factor: tuple[float, float] = (3.0, 10.0)
    burst_s: tuple[float, float] = (3.0, 15.0)
    clean_sigma: float = 0.3
    min_speed: float = 30.0
    max_gap_s: float = 5.0
    residual_features: bool = True
    residual_scale: float = 10.0
    seed: int = 0

    def __post_init__(self) -> None:
        check(self.n_train >= 2, "trajectories.n_train", self.n_train, "must be >= 2")
        check(self.n_test >= 2, "trajectories.n_test", self.n_test, "must be >= 2")
        check(self.steps >= 8, "trajectories.steps", self.steps, "must be >= 8")
        check(0 < self.false_fraction < 1, "trajectories.false_fraction", self.false_fraction, "must lie in (0, 1)")
        check(self.profile in PROFILES, "trajectories.profile", self.profile, f"must be one of {sorted(PROFILES)}")
        check(self.source in ("synthetic", "adsb", "mixed"), "trajectories.source", self.source,
              "must be synthetic, adsb or mixed")
        check(self.residual_scale > 0, "trajectories.residual_scale", self.residual_scale, "must be > 0 (m/s)")
        check(len(self.attacks) > 0, "trajectories.attacks", self.attacks, "needs at least one attack")
        for a in self.attacks:
            check(a in ATTACKS, "trajectories.attacks", a, f"each attack must be one of {list(ATTACKS)}")
        for key in ("jump_m", "drift_accel", "speed_factor", "burst_s"):
            lo, hi = getattr(self, key)
            check(0 <= lo <= hi, f"trajectories.{key}", (lo, hi), "must be a range (lo, hi) with 0 <= lo <= hi")


@dataclass
class TrajectoryData:
    """Features ``(N, L, 6)`` (or 4) float32, labels ``(N,)`` (1 = false), attack index ``(N,)`` (−1 = true)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    attack_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    attack_test: torch.Tensor
    source: str
    info: dict


# ------------------------------------------------------------------------------------ synthetic
def _u(gen, shape, lo, hi):
    return lo + (hi - lo) * torch.rand(shape, generator=gen, dtype=torch.float64)


def synthetic_tracks(n: int, steps: int, profile: MotionProfile | str = "aircraft", dt: float = 1.0,
                     generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """``n`` true tracks of ``steps`` points. Returns float64 tensors ``truth (n, steps, 2)``,
    ``pos`` (GPS-observed), ``speed`` and ``course`` (reported; course in radians from north) and the
    noise-free ``true_speed``/``true_course`` ``(n, steps)``."""
    p = PROFILES[profile] if isinstance(profile, str) else profile
    g = generator
    v = _u(g, (n,), max(p.v_min, 0.3 * p.v_max), p.v_max * 0.9)
    psi = _u(g, (n,), 0, 2 * math.pi)
    mode = torch.randint(0, 3, (n,), generator=g)
    acc = _u(g, (n,), -p.a_max, p.a_max)
    lat = _u(g, (n,), -p.a_lat_max, p.a_lat_max)
    pos = torch.zeros(n, 2, dtype=torch.float64)
    truth, speed, course = [], [], []
    for _ in range(steps):
        truth.append(pos.clone())
        speed.append(v.clone())
        course.append(psi.clone())
        switch = torch.rand(n, generator=g, dtype=torch.float64) < p.p_switch
        mode = torch.where(switch, torch.randint(0, 3, (n,), generator=g), mode)
        acc = torch.where(switch, _u(g, (n,), -p.a_max, p.a_max), acc)
        lat = torch.where(switch, _u(g, (n,), -p.a_lat_max, p.a_lat_max), lat)
        a_long = torch.where(mode == 1, acc, torch.zeros_like(acc))
        a_long = a_long + p.jerk * torch.randn(n, generator=g, dtype=torch.float64)
        omega = torch.where(mode == 2, lat / v.clamp(min=1.0), torch.zeros_like(v))
        v_new = (v + a_long * dt).clamp(p.v_min, p.v_max)
        psi = psi + omega * dt
        v_mid = 0.5 * (v + v_new)
        pos = pos + v_mid.unsqueeze(1) * torch.stack([torch.sin(psi), torch.cos(psi)], 1) * dt
        v = v_new
    truth = torch.stack(truth, 1)
    speed = torch.stack(speed, 1)
    course = torch.stack(course, 1)
    # GPS: white noise + Gauss-Markov bias
    rho = math.exp(-dt / p.bias_tau)
    b = p.bias_sigma * torch.randn(n, 2, generator=g, dtype=torch.float64)
    biases = []
    for _ in range(steps):
        biases.append(b)
        b = rho * b + p.bias_sigma * math.sqrt(1 - rho**2) * torch.randn(n, 2, generator=g, dtype=torch.float64)
    obs = truth + torch.stack(biases, 1) + p.gps_sigma * torch.randn(n, steps, 2, generator=g, dtype=torch.float64)
    rep_speed = (speed + p.speed_noise * torch.randn(n, steps, generator=g, dtype=torch.float64)).clamp(min=0)
    rep_course = course + math.radians(p.course_noise_deg) * torch.randn(n, steps, generator=g, dtype=torch.float64)
    return {"truth": truth, "pos": obs, "speed": rep_speed, "course": rep_course, "true_speed": speed,
            "true_course": course}


def _moving_average(pos: torch.Tensor, k: int = 5) -> torch.Tensor:
    pad = k // 2
    p = torch.cat([pos[:, :1].expand(-1, pad, -1), pos, pos[:, -1:].expand(-1, pad, -1)], 1)
    return p.unfold(1, k, 1).mean(-1)


def apply_attacks(pos: torch.Tensor, kinds: torch.Tensor, cfg: TrajectoryConfig, generator: torch.Generator,
                  truth: torch.Tensor | None = None, gps_sigma: float = 5.0) -> torch.Tensor:
    """Spoof the observed positions ``pos (n, L, 2)``; ``kinds[i]`` indexes :data:`ATTACKS` (−1: none).

    ``truth`` (noise-free positions) is used by the ``clean`` attack when available, else the
    observed track is smoothed. All attacks are applied with per-sequence random parameters at once.
    """
    g = generator
    n, L, _ = pos.shape
    dtype = pos.dtype
    t = torch.arange(L, dtype=dtype).unsqueeze(0)  # (1, L)
    t0 = torch.randint(L // 4, max(L // 4 + 1, 3 * L // 4), (n, 1), generator=g).to(dtype)
    after = (t >= t0).to(dtype)  # (n, L)
    ang = _u(g, (n,), 0, 2 * math.pi).to(dtype)
    unit = torch.stack([torch.sin(ang), torch.cos(ang)], 1).unsqueeze(1)  # (n, 1, 2)
    out = pos.clone()

    def sel(name):
        return (kinds == ATTACKS.index(name)).view(n, 1, 1)

    # jump
    d = _u(g, (n,), *cfg.jump_m).to(dtype).view(n, 1, 1)
    out = torch.where(sel("jump"), pos + d * unit * after.unsqueeze(-1), out)
    # drift: 1/2 a (t - t0)^2
    a = _u(g, (n,), *cfg.drift_accel).to(dtype).view(n, 1)
    off = 0.5 * a * ((t - t0).clamp(min=0) ** 2)
    out = torch.where(sel("drift"), pos + off.unsqueeze(-1) * unit, out)
    # speed burst: displacement scaled by f during [t0, t0 + D)
    f = _u(g, (n,), *cfg.speed_factor).to(dtype).view(n, 1, 1)
    dur = torch.round(_u(g, (n,), *cfg.burst_s)).to(dtype).view(n, 1)
    t1 = (t0 + dur).clamp(max=L - 1)
    idx0 = t0.long().view(n, 1, 1).expand(n, 1, 2)
    idx1 = t1.long().view(n, 1, 1).expand(n, 1, 2)
    p0 = pos.gather(1, idx0)
    p1 = pos.gather(1, idx1)
    inb = ((t >= t0) & (t < t1)).unsqueeze(-1)
    aft = (t >= t1).unsqueeze(-1)
    burst = torch.where(inb, p0 + f * (pos - p0), pos)
    burst = torch.where(aft, pos + (f - 1) * (p1 - p0), burst)
    out = torch.where(sel("speed"), burst, out)
    # freeze: hold the t0 position (with receiver noise) to the end
    frozen = p0 + gps_sigma * torch.randn(n, L, 2, generator=g, dtype=dtype)
    out = torch.where(sel("freeze") & after.bool().unsqueeze(-1), frozen, out)
    # replay another track's displacements from t0 on
    other = torch.randperm(n, generator=g)
    dpos_other = torch.diff(pos[other], dim=1, prepend=pos[other][:, :1])
    replay = p0 + torch.cumsum(dpos_other * (t > t0).to(dtype).unsqueeze(-1), 1)
    out = torch.where(sel("replay") & after.bool().unsqueeze(-1), replay, out)
    # too clean
    base = truth if truth is not None else _moving_average(pos)
    clean = base + cfg.clean_sigma * torch.randn(n, L, 2, generator=g, dtype=dtype)
    out = torch.where(sel("clean"), clean, out)
    return out


def track_features(pos: torch.Tensor, speed: torch.Tensor, course: torch.Tensor, speed_scale: float,
                   dt: float = 1.0, residual_scale: float | None = 10.0) -> torch.Tensor:
    """``(n, L+1)`` points → ``(n, L, 6)`` features (``(n, L, 4)`` with ``residual_scale=None``).

    ``[Δx/Δt, Δy/Δt, v_e, v_n] / speed_scale`` and the innovation ``[Δx/Δt − v_e, Δy/Δt − v_n] /
    residual_scale`` (how far the position-derived velocity is from the reported one).
    """
    d = torch.diff(pos, dim=1) / dt
    v = torch.stack([speed[:, 1:] * torch.sin(course[:, 1:]), speed[:, 1:] * torch.cos(course[:, 1:])], -1)
    feats = [d / speed_scale, v / speed_scale]
    if residual_scale is not None:
        feats.append((d - v) / residual_scale)
    return torch.cat(feats, -1).float()


# ------------------------------------------------------------------------------------ ADS-B data
def _traffic_dir(root=None) -> Path:
    return data_dir(root) / f"traffic-{TRAFFIC_VERSION}"


def fetch_traffic_samples(root: str | Path | None = None) -> Path:
    """The ``traffic==2.13`` wheel's ``data/samples`` folder, downloaded once from PyPI with pip.

    Cached under ``<data>/traffic-2.13/samples``. Raises :class:`DataError` with instructions if it
    cannot be had (no network and no cached copy).
    """
    dest = _traffic_dir(root)
    samples = dest / "samples"
    if (samples / "collections" / "quickstart.json.gz").is_file():
        return samples
    if os.environ.get("MEMRISTIVE_OFFLINE"):
        raise DataError(f"ADS-B samples are not in {samples} and MEMRISTIVE_OFFLINE is set")
    _progress(f"fetching the traffic=={TRAFFIC_VERSION} wheel from PyPI for its ADS-B sample tracks (28 MB) ...")
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", tmp,
                            f"traffic=={TRAFFIC_VERSION}"], capture_output=True, text=True, timeout=900)
        wheels = list(Path(tmp).glob("traffic-*.whl"))
        if r.returncode != 0 or not wheels:
            raise DataError(
                f"the real ADS-B tracks are not available: 'pip download traffic=={TRAFFIC_VERSION}' failed "
                f"({(r.stderr or r.stdout).strip().splitlines()[-1:] or 'no output'}). With PyPI access run "
                f"'memristive run trajectories' (it fetches the wheel); or unzip traffic/data/samples/ of that wheel into {samples}; "
                "or use source=synthetic."
            )
        part = dest / "samples.part"
        if part.exists():
            import shutil

            shutil.rmtree(part)
        with zipfile.ZipFile(wheels[0]) as z:
            for name in z.namelist():
                if name.startswith("traffic/data/samples/") and name.endswith(".json.gz"):
                    target = part / name[len("traffic/data/samples/"):]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(z.read(name))
        os.replace(part, samples)
    return samples


def _records(path: Path) -> list[dict]:
    data = json.loads(gzip.open(path).read())
    if isinstance(data, list):
        return data
    if isinstance(data, dict):  # pandas "columns" orientation: {column: {row: value}}
        cols = {k: (list(v.values()) if isinstance(v, dict) else list(v)) for k, v in data.items()}
        n = len(next(iter(cols.values())))
        return [{k: cols[k][i] for k in cols} for i in range(n)]
    raise DataError(f"{path}: unexpected JSON layout")


def _segments_from_records(recs: list[dict], max_gap_s: float, min_points: int) -> list[np.ndarray]:
    """Per-aircraft 1 s segments, each ``(n, 4)``: x, y (m), v_e, v_n (m/s)."""
    need = ("timestamp", "latitude", "longitude", "groundspeed", "track")
    by: dict[str, list] = {}
    for r in recs:
        if any(r.get(k) is None for k in need):
            continue
        try:
            row = [float(r["timestamp"]), float(r["latitude"]), float(r["longitude"]), float(r["groundspeed"]),
                   float(r["track"])]
        except (TypeError, ValueError):
            continue
        if not all(math.isfinite(v) for v in row):
            continue
        by.setdefault(str(r.get("icao24")), []).append(row)
    out = []
    for rows in by.values():
        a = np.asarray(rows, dtype=np.float64)
        a = a[np.argsort(a[:, 0], kind="stable")]
        t = a[:, 0] / 1000.0 if a[:, 0].max() > 1e11 else a[:, 0]
        keep = np.concatenate([[True], np.diff(t) > 0])
        a, t = a[keep], t[keep]
        cuts = np.where(np.diff(t) > max_gap_s)[0] + 1
        for seg_idx in np.split(np.arange(len(t)), cuts):
            if len(seg_idx) < 2:
                continue
            ts, s = t[seg_idx], a[seg_idx]
            grid = ts[0] + np.arange(int(np.floor(ts[-1] - ts[0] + 1e-6)) + 1, dtype=np.float64)
            if len(grid) < min_points:
                continue
            lat0, lon0 = s[0, 1], s[0, 2]
            x = EARTH_R * math.cos(math.radians(lat0)) * np.radians(s[:, 2] - lon0)
            y = EARTH_R * np.radians(s[:, 1] - lat0)
            v = s[:, 3] * KNOT
            psi = np.radians(s[:, 4])
            ve, vn = v * np.sin(psi), v * np.cos(psi)
            cols = [np.interp(grid, ts, c) for c in (x, y, ve, vn)]
            out.append(np.stack(cols, 1).astype(np.float32))
    return out


def load_adsb_segments(root: str | Path | None = None, max_gap_s: float = 5.0, min_points: int = 32,
                       max_median_dt: float = 1.5) -> list[np.ndarray]:
    """Real 1 Hz ADS-B segments ``[(n_i, 4) x, y, v_e, v_n]`` of at least ``min_points`` points
    (all segments of >= 16 points are cached as an .npz beside the samples)."""
    samples = fetch_traffic_samples(root)
    cache = _traffic_dir(root) / f"segments_v2_gap{max_gap_s:g}_dt{max_median_dt:g}.npz"
    if cache.is_file():
        try:
            z = np.load(cache)
            flat, starts = z["points"], z["starts"]
            segs = [flat[a:b] for a, b in zip(starts[:-1], starts[1:])]
            return [s for s in segs if len(s) >= min_points]
        except Exception:
            cache.unlink()
    wanted, min_points = min_points, 16
    segs: list[np.ndarray] = []
    files = sorted(p for p in samples.rglob("*.json.gz") if p.parent.name not in ("noisy", "onground"))
    for path in files:
        try:
            recs = _records(path)
        except (OSError, ValueError) as exc:
            raise DataError(f"{path} could not be read ({exc}); delete {samples} and fetch again") from None
        ts = sorted({float(r["timestamp"]) for r in recs if r.get("timestamp") is not None})
        if len(ts) < 3:
            continue
        scale = 1000.0 if ts[-1] > 1e11 else 1.0
        if float(np.median(np.diff(ts))) / scale > max_median_dt:
            continue  # coarser than 1 Hz: interpolation would make it look "too clean"
        segs.extend(_segments_from_records(recs, max_gap_s, min_points))
    if not segs:
        raise DataError(f"no usable 1 Hz ADS-B segments found in {samples}")
    starts = np.cumsum([0] + [len(s) for s in segs])
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, points=np.concatenate(segs), starts=starts)
    os.replace(tmp, cache)
    return [s for s in segs if len(s) >= wanted]


def adsb_windows(segments: list[np.ndarray], points: int, min_speed: float = 30.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-overlapping windows of ``points`` samples: ``(windows (n, points, 4), segment index (n,))``."""
    wins, owner = [], []
    for i, s in enumerate(segments):
        for j in range(0, len(s) - points + 1, points):
            w = s[j : j + points]
            if np.median(np.hypot(w[:, 2], w[:, 3])) >= min_speed:
                w = w.copy()
                w[:, :2] -= w[0, :2]
                wins.append(w)
                owner.append(i)
    if not wins:
        return torch.zeros(0, points, 4, dtype=torch.float64), torch.zeros(0, dtype=torch.long)
    return torch.from_numpy(np.stack(wins)).double(), torch.tensor(owner)


# ------------------------------------------------------------------------------------ the dataset
def _label(n: int, cfg: TrajectoryConfig, g: torch.Generator) -> torch.Tensor:
    """Attack index per sequence (−1 = true): exactly round(n·false_fraction) false, attacks balanced."""
    n_false = int(round(n * cfg.false_fraction))
    kinds = torch.full((n,), -1, dtype=torch.long)
    allowed = torch.tensor([ATTACKS.index(a) for a in cfg.attacks])
    kinds[:n_false] = allowed[torch.arange(n_false) % len(allowed)]
    return kinds[torch.randperm(n, generator=g)]


def _build(n: int, real: torch.Tensor | None, cfg: TrajectoryConfig, g: torch.Generator):
    prof = PROFILES[cfg.profile]
    L = cfg.steps + 1
    n_real = 0 if real is None else min(len(real), n if cfg.source == "adsb" else n // 2)
    n_syn = n - n_real
    pos, speed, course, truth = [], [], [], []
    if n_syn:
        s = synthetic_tracks(n_syn, L, prof, generator=g)
        pos.append(s["pos"]); speed.append(s["speed"]); course.append(s["course"]); truth.append(s["truth"])
    if n_real:
        w = real[torch.randperm(len(real), generator=g)[:n_real]]
        pos.append(w[..., :2]); speed.append(torch.hypot(w[..., 2], w[..., 3])); course.append(torch.atan2(w[..., 2], w[..., 3]))
        truth.append(None)
    pos_t, speed_t, course_t = torch.cat(pos), torch.cat(speed), torch.cat(course)
    kinds = _label(n, cfg, g)
    is_real = torch.zeros(n, dtype=torch.bool)
    is_real[n_syn:] = True
    # "clean" uses the noise-free truth for synthetic tracks and a smoothed track for real ones
    base = _moving_average(pos_t)
    if n_syn:
        base[:n_syn] = truth[0]
    spoofed = apply_attacks(pos_t, kinds, cfg, g, truth=base, gps_sigma=prof.gps_sigma)
    x = track_features(spoofed, speed_t, course_t, prof.v_max,
                       residual_scale=cfg.residual_scale if cfg.residual_features else None)
    perm = torch.randperm(n, generator=g)
    return x[perm], (kinds[perm] >= 0).long(), kinds[perm], is_real[perm]


def make_trajectory_dataset(cfg: TrajectoryConfig | None = None, root: str | Path | None = None) -> TrajectoryData:
    """Build the true/false trajectory dataset (deterministic for a given ``cfg.seed``)."""
    cfg = cfg or TrajectoryConfig()
    g = torch.Generator().manual_seed(cfg.seed)
    real_train = real_test = None
    info: dict = {"profile": cfg.profile, "steps": cfg.steps, "attacks": list(cfg.attacks), "source": cfg.source}
    if cfg.source in ("adsb", "mixed"):
        segs = load_adsb_segments(root, max_gap_s=cfg.max_gap_s, min_points=cfg.steps + 1)
        wins, owner = adsb_windows(segs, cfg.steps + 1, cfg.min_speed)
        seg_perm = torch.randperm(len(segs), generator=g)
        test_segs = set(seg_perm[: max(1, len(segs) // 5)].tolist())
        is_test = torch.tensor([int(o) in test_segs for o in owner], dtype=torch.bool)
        real_train, real_test = wins[~is_test], wins[is_test]
        info.update(adsb_segments=len(segs), adsb_windows=len(wins), adsb_train_windows=len(real_train),
                    adsb_test_windows=len(real_test))
        if cfg.source == "adsb":
            for name, have, want in (("train", len(real_train), cfg.n_train), ("test", len(real_test), cfg.n_test)):
                if have < want:
                    raise DataError(f"source=adsb: only {have} real {name} windows of {cfg.steps + 1} points exist, "
                                    f"n_{name}={want} asked; lower n_{name} or steps, or use source=mixed")
    xtr, ytr, atr, rtr = _build(cfg.n_train, real_train, cfg, g)
    xte, yte, ate, rte = _build(cfg.n_test, real_test, cfg, g)
    info.update(real_fraction_train=float(rtr.float().mean()), real_fraction_test=float(rte.float().mean()))
    src = {"synthetic": f"synthetic ({cfg.profile})", "adsb": f"real ADS-B (traffic {TRAFFIC_VERSION} samples)",
           "mixed": f"mixed: real ADS-B (traffic {TRAFFIC_VERSION}) + synthetic ({cfg.profile})"}[cfg.source]
    return TrajectoryData(xtr, ytr, atr, xte, yte, ate, src, info)
