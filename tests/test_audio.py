"""Audio features, framing, caching and SNR mixing, checked against hand calculations (and librosa
itself when it is installed)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from memristive.config import ConfigError
from memristive.data import DataError
from memristive.data import audio as A

SR = 22050


def test_mel_scale_hand_values():
    # Slaney: linear 3f/200 below 1 kHz, then log with 27 mels per ln(6.4)
    assert A.hz_to_mel(500.0) == pytest.approx(7.5)
    assert A.hz_to_mel(1000.0) == pytest.approx(15.0)
    assert A.hz_to_mel(6400.0) == pytest.approx(15.0 + 27.0)
    assert A.hz_to_mel(1000.0, htk=True) == pytest.approx(2595 * math.log10(1 + 1000 / 700))
    f = np.array([0.0, 123.0, 999.0, 1000.0, 4567.0, 11025.0])
    np.testing.assert_allclose(A.mel_to_hz(A.hz_to_mel(f)), f, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(A.mel_to_hz(A.hz_to_mel(f, htk=True), htk=True), f, rtol=1e-10, atol=1e-9)


def test_mel_filterbank_shape_and_unit_area():
    fb = A.mel_filterbank(SR, 2048, n_mels=40)
    assert fb.shape == (40, 1025)
    assert (fb >= 0).all()
    # Slaney normalisation: each triangle has unit area in Hz (checked on the wide upper filters,
    # where the 10.8 Hz bin spacing resolves the triangle well)
    df = SR / 2048
    area = fb.sum(1) * df
    np.testing.assert_allclose(area[20:], 1.0, rtol=0.02)
    # unnormalised triangles peak at 1
    raw = A.mel_filterbank(SR, 2048, n_mels=40, norm=None)
    assert raw.max() <= 1.0 + 1e-6 and raw[20:].max(1).min() > 0.9


def test_stft_power_of_a_bin_centred_sine():
    n_fft, hop, k, amp = 512, 128, 20, 0.5
    t = np.arange(SR) / SR
    y = torch.tensor(amp * np.cos(2 * np.pi * k * SR / n_fft * t), dtype=torch.float64)
    p = A.stft_power(y, n_fft, hop)
    assert p.shape == (n_fft // 2 + 1, 1 + SR // hop)
    mid = p[:, 10:-10]  # frames away from the zero-padded edges
    assert int(mid.mean(1).argmax()) == k
    # |Σ w[n]·A·cos(...)·e^{-iωn}| = A·Σw/2 = A·(n_fft/2)/2 for a periodic Hann window
    np.testing.assert_allclose(mid[k].numpy(), (amp * n_fft / 4) ** 2, rtol=1e-6)


def test_power_to_db_and_top_db_per_clip():
    s = torch.tensor([[[1.0, 10.0, 1e-12]], [[100.0, 1e-3, 1.0]]])
    db = A.power_to_db(s, top_db=None)
    np.testing.assert_allclose(db[0, 0].numpy(), [0.0, 10.0, -100.0], atol=1e-4)  # amin = 1e-10 floor
    db = A.power_to_db(s, top_db=15.0)
    np.testing.assert_allclose(db[0, 0].numpy(), [0.0, 10.0, -5.0], atol=1e-4)  # floor: 10 − 15
    np.testing.assert_allclose(db[1, 0].numpy(), [20.0, 5.0, 5.0], atol=1e-4)  # floor: 20 − 15, own max
    with pytest.raises(ValueError):
        A.power_to_db(s, amin=0)


def test_dct_matrix_is_orthonormal_dct2():
    from scipy.fft import dct

    d = A.dct_matrix(16, 16, torch.float64)
    np.testing.assert_allclose((d @ d.T).numpy(), np.eye(16), atol=1e-12)
    x = np.random.default_rng(0).standard_normal(16)
    np.testing.assert_allclose(d.numpy() @ x, dct(x, type=2, norm="ortho"), atol=1e-12)
    assert A.dct_matrix(16, 5).shape == (5, 16)


def test_features_match_librosa():
    librosa = pytest.importorskip("librosa")
    rng = np.random.default_rng(1)
    t = np.arange(2 * SR) / SR
    y = (0.3 * np.sin(2 * np.pi * 440 * t * (1 + 0.2 * t)) + 0.05 * rng.standard_normal(len(t))).astype(np.float32)
    y[: SR // 3] *= 0.01
    ours = A.mfcc(torch.from_numpy(y), SR, n_mfcc=20).numpy()
    ref = librosa.feature.mfcc(y=y, sr=SR, n_mfcc=20)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=2e-3 * np.abs(ref).max())
    mel = A.power_to_db(A.melspectrogram(torch.from_numpy(y), SR, n_mels=40)).numpy()
    ref = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=SR, n_mels=40))
    np.testing.assert_allclose(mel, ref, atol=1e-3)
    np.testing.assert_allclose(A.mel_filterbank(SR, 1024, 64, 50, 8000), librosa.filters.mel(sr=SR, n_fft=1024, n_mels=64, fmin=50, fmax=8000), atol=1e-7)


def test_batch_equals_single_clips():
    rng = np.random.default_rng(2)
    y = torch.tensor(rng.standard_normal((3, SR)), dtype=torch.float32) * torch.tensor([[0.1], [1.0], [0.01]])
    batch = A.mfcc(y, SR, n_mfcc=13)
    for i in range(3):
        np.testing.assert_allclose(batch[i].numpy(), A.mfcc(y[i], SR, n_mfcc=13).numpy(), atol=1e-3)


def test_fix_length_and_frame_sequence():
    assert A.fix_length(torch.ones(5), 8).tolist() == [1, 1, 1, 1, 1, 0, 0, 0]
    assert A.fix_length(torch.arange(10.0), 3).tolist() == [0, 1, 2]
    f = torch.arange(2 * 3 * 7, dtype=torch.float32).reshape(2, 3, 7)  # (B, F, T)
    x = A.frame_sequence(f, pool=2)  # (B, 3, F), last odd frame dropped
    assert x.shape == (2, 3, 3)
    assert x[0, 0].tolist() == [0.5, 7.5, 14.5]  # mean of frames 0,1 for each feature
    x = A.frame_sequence(f, n_frames=5, pool=2)  # padded with the last pooled frame
    assert x.shape == (2, 5, 3) and torch.equal(x[:, 3], x[:, 2]) and torch.equal(x[:, 4], x[:, 2])
    assert A.frame_sequence(f, n_frames=2).shape == (2, 2, 3)
    with pytest.raises(ValueError):
        A.frame_sequence(f, pool=0)


def test_extract_features_shape_and_config_errors():
    cfg = A.FeatureConfig(duration=1.0, pool=2, n_mfcc=13)
    assert cfg.n_frames == (1 + SR // 512) // 2 and cfg.n_features == 13
    x = A.extract_features(torch.randn(3, 15000) * 0.1, cfg, progress=False)  # shorter clips are padded
    assert x.shape == (3, cfg.n_frames, 13) and x.dtype == torch.float32
    x = A.extract_features(torch.randn(2, SR) * 0.1, A.FeatureConfig(kind="logmel", duration=1.0, n_mels=32), progress=False)
    assert x.shape == (2, 44, 32)
    with pytest.raises(ConfigError, match="n_mfcc"):
        A.FeatureConfig(n_mels=20, n_mfcc=40)
    with pytest.raises(ConfigError, match="pool"):
        A.FeatureConfig(pool=0)
    with pytest.raises(ConfigError, match="fmin/fmax"):
        A.FeatureConfig(fmax=20000)


def test_mix_at_snr_hits_the_target_per_clip():
    g = torch.Generator().manual_seed(0)
    sig = torch.randn(3, 8000, generator=g, dtype=torch.float64) * torch.tensor([[1.0], [0.2], [3.0]], dtype=torch.float64)
    noise = torch.randn(3, 8000, generator=g, dtype=torch.float64)
    snr = torch.tensor([-10.0, 0.0, 7.5])
    mix = A.mix_at_snr(sig, noise, snr)
    added = mix - sig
    measured = 10 * torch.log10((sig**2).mean(-1) / (added**2).mean(-1))
    np.testing.assert_allclose(measured.numpy(), snr.numpy(), atol=1e-9)
    one = A.mix_at_snr(sig[0], noise[0], 3.0)
    assert one.shape == (8000,)
    with pytest.raises(ValueError, match="zero power"):
        A.mix_at_snr(torch.zeros(100), torch.randn(100), 0.0)
    with pytest.raises(ValueError, match="samples"):
        A.mix_at_snr(torch.randn(100), torch.randn(99), 0.0)
    with pytest.raises(ValueError, match="finite"):
        A.mix_at_snr(torch.randn(100), torch.randn(100), float("inf"))


def test_noise_colours():
    g = torch.Generator().manual_seed(0)
    for kind, slope in (("white", 0.0), ("pink", -1.0), ("brown", -2.0)):
        x = A.make_noise(kind, (8, 1 << 14), generator=g).double()
        assert x.std(-1).mean() == pytest.approx(1.0, rel=1e-3) and abs(float(x.mean())) < 1e-6
        p = (torch.fft.rfft(x).abs() ** 2).mean(0)[1:]
        f = torch.arange(1, len(p) + 1, dtype=torch.float64)
        sel = (f > 20) & (f < 4000)
        fit = np.polyfit(np.log(f[sel].numpy()), np.log(p[sel].numpy()), 1)[0]
        assert fit == pytest.approx(slope, abs=0.1)
    with pytest.raises(ValueError):
        A.make_noise("purple", 10)


def test_resample_and_load_audio(tmp_path):
    sf = pytest.importorskip("soundfile")
    t = np.arange(44100) / 44100
    stereo = np.stack([np.sin(2 * np.pi * 1000 * t), np.sin(2 * np.pi * 1000 * t)], 1) * 0.5
    sf.write(tmp_path / "a.wav", stereo, 44100, subtype="PCM_16")
    y = A.load_audio(tmp_path / "a.wav", sr=SR, duration=1.5)
    assert y.shape == (int(1.5 * SR),) and np.all(y[SR + 10 :] == 0)  # zero-padded after 1 s
    spec = np.abs(np.fft.rfft(y[:SR]))
    assert np.argmax(spec) == pytest.approx(1000, abs=1)  # 1 Hz bins: the tone stays at 1 kHz
    assert np.abs(y[:SR]).max() == pytest.approx(0.5, abs=0.01)
    (tmp_path / "bad.wav").write_bytes(b"not a wav file")
    with pytest.raises(DataError, match="bad.wav"):
        A.load_audio(tmp_path / "bad.wav")


def test_feature_cache_computes_once(tmp_path):
    cache = A.FeatureCache(tmp_path)
    calls = []

    def compute():
        calls.append(1)
        return {"x": np.arange(6.0).reshape(2, 3)}

    a = cache.get_or_compute({"k": 1, "cfg": A.FeatureConfig().key()}, compute)
    b = cache.get_or_compute({"k": 1, "cfg": A.FeatureConfig().key()}, compute)
    assert len(calls) == 1 and np.array_equal(a["x"], b["x"])
    cache.get_or_compute({"k": 2, "cfg": A.FeatureConfig().key()}, compute)
    assert len(calls) == 2
    assert len(list(tmp_path.glob("*.npz"))) == 2 and not list(tmp_path.glob(".tmp-*"))
