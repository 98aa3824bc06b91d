"""Audio features for the sound tasks: log-mel and MFCC (librosa-compatible), framing, caching, SNR mixing.

All functions work on batches of clips at once (``(B, N)`` sample tensors, any device) and match
librosa 0.10/0.11 with its defaults; ``tests/test_audio.py`` compares them with librosa itself.

Definitions (librosa's, which are the usual ones):

* **STFT power** (``center=True``, zero padding of ``n_fft // 2`` on both sides, periodic Hann
  window of length ``n_fft``, hop ``hop_length``)::

      P[f, t] = | Σ_n  w[n] · y[t·hop + n − n_fft/2] · exp(−2πi f n / n_fft) |²        f = 0 … n_fft/2

* **Mel scale** (Slaney, ``htk=False``): linear below 1 kHz, logarithmic above::

      m(f) = 3 f / 200                                    f < 1000 Hz
      m(f) = 15 + ln(f / 1000) / (ln 6.4 / 27)             f ≥ 1000 Hz

  ``n_mels`` triangular filters with edges at ``n_mels + 2`` points equally spaced in mel between
  ``fmin`` and ``fmax`` (default ``sr / 2``); with ``norm="slaney"`` each triangle is scaled by
  ``2 / (f_{k+2} − f_k)`` so that it has unit area (constant energy per band).

* **Mel spectrogram**: ``M = F · P`` (``F`` the ``(n_mels, n_fft/2+1)`` filterbank).

* **power_to_db** (``ref=1``, ``amin=1e-10``, ``top_db=80``; the ceiling is taken *per clip*, as
  librosa does for the one clip it is given)::

      L = 10·log10(max(M, amin)) − 10·log10(max(ref, amin));   L = max(L, max(L) − top_db)

* **MFCC**: orthonormal DCT-II of the log-mel spectrogram along the mel axis, first ``n_mfcc``
  coefficients (``librosa.feature.mfcc`` with ``dct_type=2, norm="ortho", lifter=0``)::

      c[k, t] = s_k Σ_m L[m, t] cos(π k (2m + 1) / (2 n_mels)),   s_0 = √(1/n_mels), s_k = √(2/n_mels)

* **Noise at a given SNR** (power ratio over the whole clip)::

      SNR_dB = 10·log10(P_signal / P_noise),   P = mean(x²)
      mixture = signal + noise · sqrt(P_signal / (P_noise · 10^(SNR_dB/10)))

Feature caching: :class:`FeatureCache` stores arrays as ``.npz`` files named by a hash of everything
that determines them (the audio's identity and the :class:`FeatureConfig`), written atomically.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from ..config import check

__all__ = [
    "FeatureConfig",
    "hz_to_mel",
    "mel_to_hz",
    "mel_filterbank",
    "stft_power",
    "melspectrogram",
    "power_to_db",
    "dct_matrix",
    "mfcc",
    "extract_features",
    "fix_length",
    "frame_sequence",
    "signal_power",
    "mix_at_snr",
    "make_noise",
    "resample",
    "load_audio",
    "FeatureCache",
]


# ------------------------------------------------------------------------------------------- config
@dataclass
class FeatureConfig:
    """How clips become GRU input sequences ``(frames, features)``.

    ``kind="mfcc"`` gives ``n_mfcc`` coefficients from an ``n_mels``-band log-mel spectrogram;
    ``kind="logmel"`` gives the ``n_mels`` log-mel bands themselves. ``pool`` averages that many
    consecutive frames (a shorter sequence for the GRU; 1 = none). The features go to the GRU as
    computed (no per-feature standardization).
    """

    kind: Literal["mfcc", "logmel"] = "mfcc"
    sample_rate: int = 22050
    duration: float = 4.0
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 128
    n_mfcc: int = 40
    fmin: float = 0.0
    fmax: float | None = None
    top_db: float | None = 80.0
    pool: int = 1

    def __post_init__(self) -> None:
        check(self.sample_rate > 0, "sample_rate", self.sample_rate, "must be > 0 Hz")
        check(self.duration > 0, "duration", self.duration, "must be > 0 s")
        check(self.n_fft >= 16, "n_fft", self.n_fft, "must be >= 16")
        check(0 < self.hop_length, "hop_length", self.hop_length, "must be > 0")
        check(self.n_mels >= 1, "n_mels", self.n_mels, "must be >= 1")
        check(self.kind in ("mfcc", "logmel"), "kind", self.kind, "must be 'mfcc' or 'logmel'")
        if self.kind == "mfcc":
            check(1 <= self.n_mfcc <= self.n_mels, "n_mfcc", self.n_mfcc, f"must lie in [1, n_mels={self.n_mels}]")
        fmax = self.sample_rate / 2 if self.fmax is None else self.fmax
        check(0 <= self.fmin < fmax <= self.sample_rate / 2, "fmin/fmax", (self.fmin, self.fmax),
              f"need 0 <= fmin < fmax <= sample_rate/2 = {self.sample_rate / 2}")
        check(self.top_db is None or self.top_db > 0, "top_db", self.top_db, "must be > 0 or null")
        check(self.pool >= 1, "pool", self.pool, "must be >= 1")

    @property
    def n_samples(self) -> int:
        return int(round(self.duration * self.sample_rate))

    @property
    def n_frames(self) -> int:
        """Frames per clip after pooling (STFT with ``center=True`` gives ``1 + N // hop`` frames)."""
        return (1 + self.n_samples // self.hop_length) // self.pool

    @property
    def n_features(self) -> int:
        return self.n_mfcc if self.kind == "mfcc" else self.n_mels

    def key(self) -> dict:
        return asdict(self)


# ------------------------------------------------------------------------------------------- mel
def hz_to_mel(f, htk: bool = False):
    """Hz → mel (Slaney by default, HTK ``2595·log10(1 + f/700)`` with ``htk=True``)."""
    f = np.asanyarray(f, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    f_sp = 200.0 / 3
    mels = f / f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-300) / min_log_hz) / logstep, mels)


def mel_to_hz(m, htk: bool = False):
    """Inverse of :func:`hz_to_mel`."""
    m = np.asanyarray(m, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_sp = 200.0 / 3
    freqs = f_sp * m
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), freqs)


def mel_filterbank(sr: float, n_fft: int, n_mels: int = 128, fmin: float = 0.0, fmax: float | None = None,
                   htk: bool = False, norm: str | None = "slaney") -> np.ndarray:
    """``(n_mels, 1 + n_fft // 2)`` triangular mel filterbank, as ``librosa.filters.mel``."""
    fmax = sr / 2.0 if fmax is None else float(fmax)
    fftfreqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(fmin, htk), hz_to_mel(fmax, htk), n_mels + 2), htk)
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fftfreqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    if norm == "slaney":
        weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, None]
    elif norm is not None:
        raise ValueError(f"norm={norm!r}: only 'slaney' or None are supported")
    return weights.astype(np.float32)


# ------------------------------------------------------------------------------------------- spectra
def _as_batch(y) -> tuple[torch.Tensor, bool]:
    y = torch.as_tensor(y)
    if not torch.is_floating_point(y):
        raise TypeError(f"audio must be floating point, got {y.dtype}")
    if y.dim() == 1:
        return y.unsqueeze(0), True
    if y.dim() != 2:
        raise ValueError(f"audio must be (N,) or (B, N), got shape {tuple(y.shape)}")
    return y, False


def stft_power(y, n_fft: int = 2048, hop_length: int = 512) -> torch.Tensor:
    """``|STFT|²`` of ``(B, N)`` clips → ``(B, 1 + n_fft//2, frames)`` (librosa ``center=True``, zero pad)."""
    y, single = _as_batch(y)
    if y.shape[-1] < 1:
        raise ValueError("audio clip is empty")
    win = torch.hann_window(n_fft, periodic=True, dtype=y.dtype, device=y.device)
    spec = torch.stft(y, n_fft=n_fft, hop_length=hop_length, window=win, center=True, pad_mode="constant",
                      return_complex=True)
    p = spec.real**2 + spec.imag**2
    return p[0] if single else p


def melspectrogram(y, sr: float = 22050, n_fft: int = 2048, hop_length: int = 512, n_mels: int = 128,
                   fmin: float = 0.0, fmax: float | None = None) -> torch.Tensor:
    """Mel power spectrogram ``(B, n_mels, frames)`` (``librosa.feature.melspectrogram``)."""
    y, single = _as_batch(y)
    p = stft_power(y, n_fft, hop_length)
    fb = torch.from_numpy(mel_filterbank(sr, n_fft, n_mels, fmin, fmax)).to(p.device, p.dtype)
    m = torch.einsum("mf,bft->bmt", fb, p)
    return m[0] if single else m


def power_to_db(s: torch.Tensor, ref: float = 1.0, amin: float = 1e-10, top_db: float | None = 80.0) -> torch.Tensor:
    """Power → dB; ``top_db`` floor relative to each clip's own maximum (leading dim = batch for 3-D input)."""
    if amin <= 0:
        raise ValueError(f"amin={amin}: must be > 0")
    log_spec = 10.0 * torch.log10(torch.clamp(s, min=amin)) - 10.0 * math.log10(max(ref, amin))
    if top_db is not None:
        if top_db < 0:
            raise ValueError(f"top_db={top_db}: must be non-negative")
        dims = tuple(range(1, log_spec.dim())) if log_spec.dim() == 3 else tuple(range(log_spec.dim()))
        peak = log_spec.amax(dim=dims, keepdim=True)
        log_spec = torch.maximum(log_spec, peak - top_db)
    return log_spec


def dct_matrix(n_in: int, n_out: int, dtype=torch.float32) -> torch.Tensor:
    """``(n_out, n_in)`` orthonormal DCT-II matrix (``scipy.fft.dct(type=2, norm="ortho")`` rows)."""
    m = torch.arange(n_in, dtype=torch.float64)
    k = torch.arange(n_out, dtype=torch.float64)[:, None]
    d = torch.cos(math.pi * k * (2 * m + 1) / (2 * n_in)) * math.sqrt(2.0 / n_in)
    d[0] /= math.sqrt(2.0)
    return d.to(dtype)


def mfcc(y, sr: float = 22050, n_mfcc: int = 20, n_fft: int = 2048, hop_length: int = 512, n_mels: int = 128,
         fmin: float = 0.0, fmax: float | None = None, top_db: float | None = 80.0) -> torch.Tensor:
    """MFCCs ``(B, n_mfcc, frames)`` (``librosa.feature.mfcc`` defaults)."""
    y, single = _as_batch(y)
    logmel = power_to_db(melspectrogram(y, sr, n_fft, hop_length, n_mels, fmin, fmax), top_db=top_db)
    c = torch.einsum("km,bmt->bkt", dct_matrix(n_mels, n_mfcc, logmel.dtype).to(logmel.device), logmel)
    return c[0] if single else c


# ------------------------------------------------------------------------------------------- framing
def fix_length(y, n: int) -> torch.Tensor:
    """Zero-pad or trim the last axis to exactly ``n`` samples (``librosa.util.fix_length``)."""
    y = torch.as_tensor(y)
    if y.shape[-1] >= n:
        return y[..., :n]
    return torch.nn.functional.pad(y, (0, n - y.shape[-1]))


def frame_sequence(feats: torch.Tensor, n_frames: int | None = None, pool: int = 1) -> torch.Tensor:
    """``(B, F, T)`` features → ``(B, T', F)`` GRU sequences: average-pool ``pool`` frames, then
    pad (with each clip's last frame) or trim to exactly ``n_frames`` steps (default: all full pools)."""
    if feats.dim() != 3:
        raise ValueError(f"features must be (B, F, T), got {tuple(feats.shape)}")
    if pool < 1:
        raise ValueError(f"pool={pool}: must be >= 1")
    b, f, t = feats.shape
    tp = t // pool
    if tp < 1:
        raise ValueError(f"{t} frames cannot be pooled by {pool}")
    x = feats[..., : tp * pool].reshape(b, f, tp, pool).mean(-1).transpose(1, 2)
    if n_frames is not None:
        if x.shape[1] >= n_frames:
            x = x[:, :n_frames]
        else:
            x = torch.cat([x, x[:, -1:].expand(b, n_frames - x.shape[1], f)], 1)
    return x.contiguous()


def extract_features(audio, cfg: FeatureConfig, batch_size: int = 64, progress: bool = True,
                     desc: str = "features") -> torch.Tensor:
    """``(B, N)`` clips at ``cfg.sample_rate`` → ``(B, cfg.n_frames, cfg.n_features)`` float32 sequences."""
    audio = torch.as_tensor(audio)
    if audio.dim() != 2:
        raise ValueError(f"audio must be (B, N), got shape {tuple(audio.shape)}")
    audio = fix_length(audio.float(), cfg.n_samples)
    out = []
    for i in tqdm(range(0, len(audio), batch_size), desc=desc, disable=not progress or len(audio) <= batch_size,
                  leave=False):
        y = audio[i : i + batch_size]
        if cfg.kind == "mfcc":
            f = mfcc(y, cfg.sample_rate, cfg.n_mfcc, cfg.n_fft, cfg.hop_length, cfg.n_mels, cfg.fmin, cfg.fmax,
                     cfg.top_db)
        else:
            f = power_to_db(melspectrogram(y, cfg.sample_rate, cfg.n_fft, cfg.hop_length, cfg.n_mels, cfg.fmin,
                                           cfg.fmax), top_db=cfg.top_db)
        out.append(frame_sequence(f, cfg.n_frames, cfg.pool))
    if not out:
        return torch.zeros(0, cfg.n_frames, cfg.n_features)
    return torch.cat(out).float()


# ------------------------------------------------------------------------------------------- noise
def signal_power(x: torch.Tensor) -> torch.Tensor:
    """Mean square over the last axis."""
    return (x.double() ** 2).mean(-1).to(x.dtype)


def mix_at_snr(signal, noise, snr_db) -> torch.Tensor:
    """``signal + g·noise`` with ``g`` chosen per clip so that ``10·log10(P_signal / P_{g·noise}) = snr_db``.

    ``signal`` and ``noise`` are ``(N,)`` or ``(B, N)`` with the same length; ``snr_db`` a number or one
    value per clip. Raises ``ValueError`` for a silent signal or noise (the SNR would be undefined).
    """
    signal = torch.as_tensor(signal)
    noise = torch.as_tensor(noise, dtype=signal.dtype, device=signal.device)
    if signal.shape[-1] != noise.shape[-1]:
        raise ValueError(f"signal has {signal.shape[-1]} samples but noise has {noise.shape[-1]}")
    snr = torch.as_tensor(snr_db, dtype=torch.float64, device=signal.device)
    if not torch.isfinite(snr).all():
        raise ValueError(f"snr_db={snr_db}: must be finite")
    ps, pn = signal_power(signal).double(), signal_power(noise).double()
    if (ps <= 0).any():
        raise ValueError("mix_at_snr: signal has zero power (silent clip); the SNR is undefined")
    if (pn <= 0).any():
        raise ValueError("mix_at_snr: noise has zero power")
    gain = torch.sqrt(ps / (pn * 10.0 ** (snr / 10.0)))
    return signal + (gain.unsqueeze(-1) * noise.double()).to(signal.dtype)


def make_noise(kind: str, shape, generator: torch.Generator | None = None, beta: float | None = None) -> torch.Tensor:
    """Unit-variance noise: ``white`` (Gaussian), ``pink`` (1/f power) or ``brown`` (1/f²), or
    ``colored`` with power spectrum ∝ 1/f^beta. Shaped in the frequency domain (vectorised)."""
    shape = tuple(shape) if not isinstance(shape, int) else (shape,)
    betas = {"white": 0.0, "pink": 1.0, "brown": 2.0}
    if kind == "colored":
        if beta is None:
            raise ValueError("make_noise('colored') needs beta")
        b = float(beta)
    elif kind in betas:
        b = betas[kind]
    else:
        raise ValueError(f"noise kind {kind!r}: must be one of {sorted(betas) + ['colored']}")
    w = torch.randn(shape, generator=generator, dtype=torch.float64)
    if b != 0.0:
        n = shape[-1]
        spec = torch.fft.rfft(w)
        f = torch.arange(spec.shape[-1], dtype=torch.float64)
        f[0] = 1.0
        spec = spec * f ** (-b / 2)
        spec[..., 0] = 0
        w = torch.fft.irfft(spec, n=n)
    w = w - w.mean(-1, keepdim=True)
    return (w / w.std(-1, keepdim=True).clamp_min(1e-12)).float()


# ------------------------------------------------------------------------------------------- files
def resample(y: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Band-limited polyphase resampling along the last axis (``scipy.signal.resample_poly``)."""
    if sr_in == sr_out:
        return np.asarray(y, dtype=np.float32)
    from scipy.signal import resample_poly

    g = math.gcd(int(sr_in), int(sr_out))
    return resample_poly(np.asarray(y, dtype=np.float64), int(sr_out) // g, int(sr_in) // g, axis=-1).astype(np.float32)


def load_audio(path: str | Path, sr: int = 22050, duration: float | None = None) -> np.ndarray:
    """Read a sound file (WAV/FLAC/OGG via soundfile), mix to mono, resample to ``sr``, and pad/trim to
    ``duration`` seconds if given. Raises ``DataError`` naming the file if it cannot be read."""
    from .mnist import DataError

    try:
        import soundfile as sf
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise DataError("reading audio files needs 'soundfile': pip install 'memristive[audio]'") from exc
    try:
        y, sr_in = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:
        raise DataError(f"cannot read audio file {path}: {exc}") from None
    y = resample(y.mean(axis=1), sr_in, sr)
    if duration is not None:
        n = int(round(duration * sr))
        y = np.pad(y[:n], (0, max(0, n - len(y))))
    return y


class FeatureCache:
    """Arrays on disk, keyed by a hash of a JSON-able description of how they were made.

    ``cache.get_or_compute(key, fn)`` returns ``fn()``'s dict of arrays, computing and storing it (as
    an atomically written ``.npz``) only the first time for a given key.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @staticmethod
    def digest(key) -> str:
        blob = json.dumps(key, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def path(self, key) -> Path:
        return self.root / f"{self.digest(key)}.npz"

    def get_or_compute(self, key, compute: Callable[[], dict]) -> dict:
        p = self.path(key)
        if p.is_file():
            try:
                with np.load(p, allow_pickle=False) as z:
                    return {k: z[k] for k in z.files}
            except Exception:
                p.unlink(missing_ok=True)  # corrupt: recompute
        arrays = compute()
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-", suffix=".npz")
        os.close(fd)
        try:
            np.savez(tmp, **{k: np.asarray(v) for k, v in arrays.items()})
            os.replace(tmp, p)
            (self.root / f"{self.digest(key)}.json").write_text(json.dumps(key, sort_keys=True, default=str, indent=1))
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return {k: np.asarray(v) for k, v in arrays.items()}
