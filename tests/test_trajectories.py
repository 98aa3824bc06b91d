"""True/false trajectory dataset: motion limits, GPS noise, attacks, features, ADS-B parsing."""

import gzip
import json
import math

import pytest
import torch

from memristive.data import DataError
from memristive.data.trajectories import (
    ATTACKS,
    PROFILES,
    TrajectoryConfig,
    apply_attacks,
    load_adsb_segments,
    make_trajectory_dataset,
    synthetic_tracks,
    track_features,
)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny recurrent ops: one thread (OpenMP spin-waits collapse on a busy shared CPU)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_synthetic_tracks_respect_motion_limits_and_gps_noise():
    p = PROFILES["aircraft"]
    g = torch.Generator().manual_seed(0)
    s = synthetic_tracks(400, 80, p, generator=g)
    truth, obs = s["truth"], s["pos"]
    step = torch.diff(truth, dim=1).norm(dim=-1)
    assert step.max() <= p.v_max + 1e-9 and step.min() >= p.v_min - 1e-9  # speed limits (Δt = 1 s)
    v = s["true_speed"]
    assert torch.diff(v, dim=1).abs().max() <= p.a_max + 6 * p.jerk  # longitudinal acceleration
    omega = torch.diff(s["true_course"], dim=1).abs()
    assert (omega * v[:, 1:]).max() <= p.a_lat_max * (1 + 1e-9)  # lateral acceleration v·ω
    err = obs - truth  # white σ_gps plus Gauss-Markov bias σ_b: per-axis std sqrt(σ² + σ_b²)
    assert err.std().item() == pytest.approx(math.hypot(p.gps_sigma, p.bias_sigma), rel=0.08)
    assert (s["speed"] - v).std().item() == pytest.approx(p.speed_noise, rel=0.05)


def _straight(n=60, L=40, v=100.0):
    t = torch.arange(L, dtype=torch.float64)
    pos = torch.stack([v * t, torch.zeros(L, dtype=torch.float64)], -1).expand(n, L, 2).clone()
    return pos


@pytest.mark.parametrize("attack", ATTACKS)
def test_each_attack(attack):
    cfg = TrajectoryConfig()
    n, L = 60, 40
    pos = _straight(n, L)
    kinds = torch.full((n,), ATTACKS.index(attack))
    out = apply_attacks(pos, kinds, cfg, torch.Generator().manual_seed(1), truth=pos, gps_sigma=5.0)
    d = out - pos
    moved = d.norm(dim=-1) > 1e-9
    first = moved.float().argmax(1)  # onset t0
    if attack not in ("clean", "replay"):
        assert (first >= L // 4).all() and (first < 3 * L // 4 + 1).all()
    if attack == "jump":
        mag = d[:, -1].norm(dim=-1)
        assert (mag >= 30 - 1e-9).all() and (mag <= 1000 + 1e-9).all()
        assert torch.allclose(d.norm(dim=-1)[moved], mag.unsqueeze(1).expand(n, L)[moved])
    elif attack == "drift":
        t = torch.arange(L, dtype=torch.float64)
        for i in range(5):
            t0 = first[i] - 1  # offset ½·a·(t − t0)² is zero at t0 itself
            a = 2 * d[i, -1].norm() / (L - 1 - t0) ** 2
            assert 0.05 - 1e-9 <= a <= 0.5 + 1e-9
            assert torch.allclose(d[i].norm(dim=-1), 0.5 * a * (t - t0).clamp(min=0) ** 2)
    elif attack == "speed":
        steps = torch.diff(out, dim=1).norm(dim=-1)  # true step 100 m
        ratio = steps.max(1).values / 100.0
        assert (ratio >= 3 - 1e-9).all() and (ratio <= 10 + 1e-9).all()
    elif attack == "freeze":
        for i in range(5):
            t0 = int(first[i])
            tail = out[i, t0:]
            assert (tail - pos[i, t0]).std() < 10 and (tail[:, 0] - tail[0, 0]).abs().max() < 50
    elif attack == "replay":
        # straight tracks all move the same way: replaying another track's motion changes nothing
        assert torch.allclose(out, pos, atol=1e-9)
    elif attack == "clean":
        assert d.std().item() == pytest.approx(cfg.clean_sigma, rel=0.1)
    none = apply_attacks(pos, torch.full((n,), -1), cfg, torch.Generator().manual_seed(1))
    assert torch.equal(none, pos)


def test_track_features_hand_example():
    pos = torch.tensor([[[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]]], dtype=torch.float64)
    speed = torch.tensor([[5.0, 5.0, 7.0]], dtype=torch.float64)
    course = torch.tensor([[0.0, math.atan2(3, 4), math.pi / 2]], dtype=torch.float64)
    f = track_features(pos, speed, course, speed_scale=10.0, residual_scale=2.0)
    assert f.shape == (1, 2, 6)
    assert torch.allclose(f[0, 0], torch.tensor([0.3, 0.4, 0.3, 0.4, 0.0, 0.0]), atol=1e-6)
    assert torch.allclose(f[0, 1], torch.tensor([0.3, 0.4, 0.7, 0.0, -2.0, 2.0]), atol=1e-6)
    assert track_features(pos, speed, course, 10.0, residual_scale=None).shape == (1, 2, 4)


def test_dataset_labels_balanced_and_deterministic():
    cfg = TrajectoryConfig(n_train=240, n_test=120, steps=16, source="synthetic", seed=3)
    a = make_trajectory_dataset(cfg)
    b = make_trajectory_dataset(cfg)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.attack_test, b.attack_test)
    assert a.x_train.shape == (240, 16, 6) and a.x_train.dtype == torch.float32
    assert int(a.y_train.sum()) == 120 and int(a.y_test.sum()) == 60
    counts = torch.bincount(a.attack_train[a.attack_train >= 0], minlength=len(ATTACKS))
    assert counts.max() - counts.min() <= 1
    assert torch.equal(a.y_train, (a.attack_train >= 0).long())
    c = make_trajectory_dataset(TrajectoryConfig(n_train=240, n_test=120, steps=16, source="synthetic", seed=4))
    assert not torch.equal(a.x_train, c.x_train)


def _write_samples(root, n_points=300):
    """Fabricated ADS-B sample files in the traffic wheel's two JSON layouts."""
    samples = root / "traffic-2.13" / "samples"
    (samples / "collections").mkdir(parents=True)
    recs = []
    t0 = 1_633_608_773_000
    for i in range(n_points):  # aircraft A: due north at 200 kt, 1 Hz, one 20 s gap at i = 150
        if 150 <= i < 170:
            continue
        recs.append({"timestamp": t0 + 1000 * i, "icao24": "aaaaaa", "latitude": 48.0 + i * 200 * 0.514444 / 111194.93,
                     "longitude": 2.0, "groundspeed": 200.0, "track": 0.0, "altitude": 10000.0})
    for i in range(100):  # aircraft B: due east, some rows missing data
        recs.append({"timestamp": t0 + 1000 * i, "icao24": "bbbbbb", "latitude": 0.0,
                     "longitude": i * 150 * 0.514444 / 111194.93, "groundspeed": 150.0 if i != 5 else None,
                     "track": 90.0})
    with gzip.open(samples / "collections" / "quickstart.json.gz", "wt") as f:
        json.dump(recs, f)
    cols = {k: {str(j): r.get(k) for j, r in enumerate(recs[:80])} for k in recs[0]}  # pandas "columns" layout
    (samples / "featured").mkdir()
    with gzip.open(samples / "featured" / "columns.json.gz", "wt") as f:
        json.dump(cols, f)
    return samples


def test_adsb_parsing_segments_and_local_frame(tmp_path):
    _write_samples(tmp_path)
    segs = load_adsb_segments(tmp_path, max_gap_s=5.0, min_points=32)
    lens = sorted(len(s) for s in segs)
    assert lens == [80, 100, 130, 150]  # A split at the gap (150 + 130 points), B, and A's first 80 again
    a = next(s for s in segs if len(s) == 150)
    assert a[:, 0] == pytest.approx(0.0, abs=1e-3)  # no east motion
    assert a[1:, 1] - a[:-1, 1] == pytest.approx(200 * 0.514444, rel=1e-3)  # 1° lat ≈ 111.195 km
    assert a[:, 3] == pytest.approx(200 * 0.514444, rel=1e-6) and a[:, 2] == pytest.approx(0.0, abs=1e-6)
    b = next(s for s in segs if len(s) == 100)
    assert b[:, 2] == pytest.approx(150 * 0.514444, rel=1e-6)  # east, row with missing speed interpolated
    assert (tmp_path / "traffic-2.13" / "segments_v2_gap5_dt1.5.npz").is_file()
    assert len(load_adsb_segments(tmp_path, min_points=120)) == 2  # cached, filtered by length
    # non-overlapping 41-point windows: 150 -> 3, 130 -> 3, 100 -> 2, 80 -> 1
    d = make_trajectory_dataset(TrajectoryConfig(n_train=8, n_test=4, steps=40, source="mixed"), root=tmp_path)
    assert d.x_train.shape == (8, 40, 6) and d.info["adsb_windows"] == 9
    assert d.info["real_fraction_train"] == 0.5
    with pytest.raises(DataError, match="only"):
        make_trajectory_dataset(TrajectoryConfig(n_train=50, n_test=20, steps=40, source="adsb"), root=tmp_path)


def test_adsb_unavailable_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMRISTIVE_OFFLINE", "1")
    with pytest.raises(DataError, match="ADS-B"):
        make_trajectory_dataset(TrajectoryConfig(source="mixed"), root=tmp_path)


def test_trajectories_quick_smoke(tmp_path):
    from memristive.experiments import run_experiment

    res, _ = run_experiment("trajectories", out=tmp_path / "t", quick=True)
    assert "energy_per_inference_j" in res["hardware_cost"], res["hardware_cost"]  # the run's cost
    assert res["hardware_cost"]["unread_layers"] == [] and res["resumed_points"] == []  # costing reloads no "step"
    pts = res["metrics"]["points"]
    assert [p["bits"] for p in pts] == [3, 6, 16]
    for p in pts:
        # the ideal crossbar realises the QAT model (float32 rounding of G may flip a rare tie)
        assert abs(p["qat"] - p["crossbar"]) <= 1.0
    assert (tmp_path / "t" / "accuracy_vs_bits.png").is_file()
