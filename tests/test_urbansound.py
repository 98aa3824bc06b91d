"""UrbanSound8K loader on a tiny generated tree in the published layout, and the offline substitute."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from memristive.data import DataError
from memristive.data import urbansound as U
from memristive.data.audio import FeatureConfig

sf = pytest.importorskip("soundfile")
SR = 22050


def _tone(freq, seconds, sr, channels=1):
    t = np.arange(int(seconds * sr)) / sr
    y = 0.4 * np.sin(2 * np.pi * freq * t)
    return np.stack([y] * channels, 1) if channels > 1 else y


@pytest.fixture
def us8k(tmp_path):
    """UrbanSound8K/metadata/UrbanSound8K.csv + audio/foldK/*.wav with mixed rates, channels, lengths."""
    root = tmp_path / "UrbanSound8K"
    clips = [  # name, fold, class id, tone Hz, seconds, sample rate, channels
        ("100-0-0-0.wav", 1, 0, 500, 4.0, 44100, 2),
        ("101-1-0-0.wav", 1, 1, 700, 1.0, 16000, 1),
        ("102-3-0-1.wav", 2, 3, 900, 2.5, 48000, 2),
        ("103-9-0-0.wav", 2, 9, 1100, 4.0, 22050, 1),
        ("104-6-0-0.wav", 3, 6, 1300, 0.5, 44100, 1),
    ]
    (root / "metadata").mkdir(parents=True)
    with open(root / "metadata" / "UrbanSound8K.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(U.METADATA_COLUMNS)
        for name, fold, cid, hz, sec, sr, ch in clips:
            (root / "audio" / f"fold{fold}").mkdir(parents=True, exist_ok=True)
            sf.write(root / "audio" / f"fold{fold}" / name, _tone(hz, sec, sr, ch), sr, subtype="PCM_16")
            w.writerow([name, name.split("-")[0], 0.0, sec, 1, fold, cid, U.CLASSES[cid]])
    return root, clips


def test_metadata_and_loader(us8k):
    root, clips = us8k
    rows = U.read_metadata(root)
    assert [r["classID"] for r in rows] == [c[2] for c in clips] and rows[2]["fold"] == 2
    assert U.find_urbansound8k(root.parent) == root and U.find_urbansound8k(root) == root
    ds = U.load_urbansound8k(root)
    assert not ds.substitute and len(ds) == 5
    assert ds.labels.tolist() == [0, 1, 3, 9, 6] and ds.folds.tolist() == [1, 1, 2, 2, 3]
    audio = ds.audio()
    assert audio.shape == (5, 4 * SR)
    for k, (_, _, _, hz, sec, _, _) in enumerate(clips):
        n = int(sec * SR)
        seg = audio[k, : min(n, SR)].numpy()
        peak = np.argmax(np.abs(np.fft.rfft(seg))) * SR / len(seg)
        assert peak == pytest.approx(hz, abs=2 * SR / len(seg))  # resampled without changing pitch
        assert torch.all(audio[k, n + 50 :] == 0)  # zero-padded to 4 s
        assert float(audio[k, : n - 50].abs().max()) == pytest.approx(0.4, abs=0.02)  # stereo mixed to mono


def test_ten_fold_split(us8k):
    ds = U.load_urbansound8k(us8k[0])
    train, test = ds.split(2)
    assert test.tolist() == [2, 3] and train.tolist() == [0, 1, 4]
    with pytest.raises(DataError, match="test_fold=7"):
        ds.split(7)


def test_loader_errors(us8k, tmp_path):
    root, _ = us8k
    with pytest.raises(DataError, match="not found"):
        U.load_urbansound8k(tmp_path / "nowhere")
    (root / "audio" / "fold3" / "104-6-0-0.wav").unlink()
    with pytest.raises(DataError, match="missing"):
        U.load_urbansound8k(root)
    bad = tmp_path / "bad"
    (bad / "metadata").mkdir(parents=True)
    (bad / "metadata" / "UrbanSound8K.csv").write_text("slice_file_name,fold\nx.wav,1\n")
    with pytest.raises(DataError, match="missing column"):
        U.read_metadata(bad)
    (bad / "metadata" / "UrbanSound8K.csv").write_text(",".join(U.METADATA_COLUMNS) + "\nx.wav,1,0,1,1,11,0,air_conditioner\n")
    with pytest.raises(DataError, match="fold=11"):
        U.read_metadata(bad)


def test_auto_picks_real_data_and_features_are_cached(us8k, tmp_path):
    root, _ = us8k
    ds = U.load_sound_dataset("auto", root)
    assert ds.name == "urbansound8k"
    calls = []
    inner = ds._audio_fn
    ds._audio_fn = lambda idx, progress: (calls.append(len(idx)), inner(idx, progress))[1]
    cfg = FeatureConfig(n_mfcc=13, pool=4)
    f1 = U.sound_features(ds, cfg, cache_dir=tmp_path / "cache", progress=False)
    f2 = U.sound_features(ds, cfg, cache_dir=tmp_path / "cache", progress=False)
    assert f1.shape == (5, cfg.n_frames, 13) and torch.equal(f1, f2)
    assert sum(calls) == 5  # the second call read the cache
    U.sound_features(ds, FeatureConfig(n_mfcc=20, pool=4), cache_dir=tmp_path / "cache", progress=False)
    assert sum(calls) == 10  # another feature config is another cache entry
    with pytest.raises(DataError):
        U.load_sound_dataset("urbansound8k", tmp_path / "nowhere")


# ----------------------------------------------------------------------------------- substitute
CTX = {"child": [], "adult": [], "sfx": {}, "seeds": {}, "interferers": []}


def _dominant_hz(y, sr=SR):
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return np.argmax(spec) * sr / len(y)


def test_generators_are_physically_plausible():
    n = 2 * SR
    rng = np.random.default_rng(0)
    for name, gen in U.GENERATORS.items():
        y = np.asarray(gen(np.random.default_rng(1), n, SR, CTX))
        assert y.shape == (n,) and np.isfinite(y).all() and np.sqrt(np.mean(y**2)) > 1e-3, name
    # siren fundamental sweeps within 500–1600 Hz (±5 % Doppler); horn fundamental 300–520 Hz (×1.33 second tone)
    for s in range(5):
        y = U._siren(np.random.default_rng(s), n, SR, CTX)
        assert 450 <= _dominant_hz(y) <= 1700
        y = U._car_horn(np.random.default_rng(s), n, SR, CTX)
        assert np.sqrt(np.mean(y**2)) > 0
    # a gun shot is impulsive: high crest factor; an air conditioner is stationary: low
    crest = lambda y: np.abs(y).max() / np.sqrt(np.mean(y**2))
    assert crest(U._gun_shot(rng, n, SR, CTX)) > 8
    assert crest(U._air_conditioner(rng, n, SR, CTX)) < 6
    # engine idling puts most energy below 1.5 kHz
    y = U._engine_idling(rng, n, SR, CTX)
    p = np.abs(np.fft.rfft(y)) ** 2
    f = np.fft.rfftfreq(n, 1 / SR)
    assert p[f < 1500].sum() / p.sum() > 0.8


def test_substitute_clips_are_reproducible_and_labelled():
    cfg = U.SubstituteConfig(clips_per_class=2, speech_pool=2, duration=1.0)
    ctx = dict(CTX, child=[], adult=[])
    a, la = U.generate_clip(13, cfg, ctx)
    b, lb = U.generate_clip(13, cfg, ctx)
    c, _ = U.generate_clip(13, U.SubstituteConfig(clips_per_class=2, seed=1, duration=1.0), ctx)
    assert la == lb == 3 and np.array_equal(a, b) and not np.allclose(a, c)
    assert a.shape == (SR,) and a.dtype == np.float32 and np.abs(a).max() == pytest.approx(0.9, rel=1e-5)
    ds = U.load_substitute(cfg)
    assert ds.substitute and len(ds) == 20 and "SUBSTITUTE" in ds.source
    assert ds.labels.tolist() == [i % 10 for i in range(20)] and ds.folds.tolist() == [1] * 10 + [2] * 10
    train, test = ds.split(2)
    assert len(test) == 10 and set(ds.labels[test].tolist()) == set(range(10))


def test_substitute_config_errors():
    from memristive.config import ConfigError

    with pytest.raises(ConfigError, match="clips_per_class"):
        U.SubstituteConfig(clips_per_class=0)
    with pytest.raises(ConfigError, match="snr_range_db"):
        U.SubstituteConfig(snr_range_db=(10.0, 0.0))
    with pytest.raises(DataError, match="dataset"):
        U.load_sound_dataset("esc50")


def test_opensfx_reader():
    sfx = U.read_opensfx()
    if not sfx:
        pytest.skip("openttd-opensfx is not installed (apt-get install openttd-opensfx)")
    assert "Modern car horn" in sfx and "Jackhammer" in sfx
    horn = sfx["Modern car horn"]
    assert horn.dtype == np.float32 and 0.5 * SR < len(horn) < 1.0 * SR  # 0.67 s at 22.05 kHz
    assert np.abs(horn).max() == pytest.approx(1.0)
    for titles in U.SEED_CLIPS.values():
        assert all(t in sfx for t in titles)


def test_mfcc_stats_baseline_separable_vs_random():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(200) % 4
    feats = torch.randn(200, 10, 6, generator=g) + labels[:, None, None].float() * 2.0
    tr, te = torch.arange(150), torch.arange(150, 200)
    assert U.mfcc_stats_baseline(feats, labels, tr, te, epochs=100) == 1.0
    noise = torch.randn(200, 10, 6, generator=g)
    assert U.mfcc_stats_baseline(noise, labels, tr, te, epochs=100) < 0.5


# ----------------------------------------------------------------------------------- experiments
def test_urbansound_experiments_smoke(tmp_path, monkeypatch):
    """Both sound experiments run end to end on a tiny substitute (and resume from their checkpoints)."""
    import json

    from memristive.experiments import run_experiment

    monkeypatch.setenv("MEMRISTIVE_DATA", str(tmp_path / "data"))
    small = ["duration=1.0", "substitute.clips_per_class=10", "substitute.speech_pool=4", "substitute.workers=1",
             "fp.epochs=2", "trials=2"]
    res, run = run_experiment("urbansound-bits", out=tmp_path / "bits", quick=True, overrides=small + ["bits=[3,16]"])
    assert "energy_per_inference_j" in res["hardware_cost"], res["hardware_cost"]  # the run's cost
    m = res["metrics"]
    assert m["substitute"] and "SUBSTITUTE" in m["data_source"]
    assert [r["bits"] for r in m["table"]] == [3, 16] and m["table"][1]["paper"] == 93.82
    assert all(0 <= r["software"] <= 100 and 0 <= r["crossbar_mean"] <= 100 for r in m["table"])
    assert (run.path / "accuracy_vs_bits.png").is_file() and (run.path / "results.csv").is_file()
    assert sum(sum(row) for row in m["folds"][0]["confusion_fp"]) == 10  # one test fold of 10 clips
    again, _ = run_experiment("urbansound-bits", out=tmp_path / "bits", quick=True, overrides=small + ["bits=[3,16]"])
    assert "fp_model" in again["resumed_points"] and again["metrics"]["table"] == m["table"]
    res, run = run_experiment("urbansound-snr", out=tmp_path / "snr", quick=True, overrides=small + ["snr_db=[0]"])
    assert "energy_per_inference_j" in res["hardware_cost"], res["hardware_cost"]  # the run's cost
    table = res["metrics"]["table"]
    assert [r["snr_db"] for r in table] == ["clean", 0.0] and table[1]["paper_fp"] == 79.52
    assert json.loads((run.path / "results.json").read_text())["metrics"]["bits"] == 6


def test_sound_config_rejects_conflicting_rates():
    from memristive.config import ConfigError
    from memristive.experiments.audio_soc import UrbanSoundBitsConfig

    cfg = UrbanSoundBitsConfig(duration=2.0)
    assert cfg.features.duration == 2.0 and cfg.substitute.duration == 2.0
    with pytest.raises(ConfigError, match="features.sample_rate"):
        UrbanSoundBitsConfig(features=FeatureConfig(sample_rate=16000))
    with pytest.raises(ConfigError, match="bits"):
        UrbanSoundBitsConfig(bits=[1])


def test_parallel_generation_matches_serial():
    cfg = U.SubstituteConfig(clips_per_class=2, speech_pool=2, duration=0.6, workers=2)
    par = U.load_substitute(cfg)
    ser = U.load_substitute(U.SubstituteConfig(clips_per_class=2, speech_pool=2, duration=0.6, workers=1))
    assert par.identity == ser.identity  # the worker count does not change the data (nor its cache key)
    assert torch.equal(par.audio(progress=False), ser.audio(progress=False))


def test_sound_task_standardises_with_training_folds_only():
    from memristive.experiments.audio_soc import _acc, _sound_task

    labels = torch.arange(20) % 10
    folds = 1 + torch.arange(20) // 10
    ds = U.SoundSet(labels, folds, lambda idx, p: None, SR, 1.0, "toy", "toy", {}, substitute=True)
    feats = torch.randn(20, 4, 3) + 5.0
    feats[folds == 2] += 100.0  # the test fold is shifted: train statistics must not see it
    task, mean, std = _sound_task(ds, feats, 2)
    assert torch.allclose(mean, feats[:10].mean((0, 1))) and torch.allclose(std, feats[:10].std((0, 1)))
    assert abs(float(task.x_train.mean())) < 1e-5 and float(task.x_test.mean()) > 10
    out = torch.zeros(2, 4, 10)
    out[0, torch.arange(4), torch.tensor([1, 2, 3, 4])] = 1  # trial 0: all right; trial 1: argmax 0
    assert _acc(out, torch.tensor([1, 2, 3, 4])).tolist() == [100.0, 0.0]
