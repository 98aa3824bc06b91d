"""UrbanSound8K: the real loader, and an offline 10-class substitute for machines without the data.

**Real data** (``load_urbansound8k``): the published layout (Salamon, Jacoby & Bello 2014)::

    UrbanSound8K/metadata/UrbanSound8K.csv     slice_file_name,fsID,start,end,salience,fold,classID,class
    UrbanSound8K/audio/fold1 … fold10/*.wav

It is looked for under ``$MEMRISTIVE_DATA/UrbanSound8K`` (see :func:`memristive.data.data_dir`) or a
``root`` you give. The dataset prescribes **10-fold cross-validation over its predefined folds**
(clips cut from the same recording share a fold; never reshuffle them): :meth:`SoundSet.split` gives
the train/test indices for one held-out fold.

**Offline substitute** (:class:`SubstituteConfig`, ``load_substitute``): UrbanSound8K cannot be
fetched here (no package ships it), so for everything we *run* we build a 10-class dataset with the
UrbanSound8K class names, its 4 s clip length, 22.05 kHz and its 10-fold layout. **It is a
substitute, not UrbanSound8K; accuracies on it are not comparable with the paper's.** Each clip is:

* one **foreground event** of the labelled class, either a *real field recording* from Debian's
  ``openttd-opensfx`` (CC-BY/CC0 freesound recordings: car horn, jackhammer, circular saw and
  chainsaw for drilling, bus/truck engines, two short music jingles), randomly cropped, resampled
  ±15 % (tape-style pitch/speed change) and equalised, or a **physically motivated generator**
  (below) with widely randomised parameters; ``children_playing`` uses ``espeak-ng`` speech with
  child-like pitch and formants (``espeak-ng`` missing → a formant-synthesis fallback, recorded in the
  dataset's ``source``);
* 0–2 **overlapping interferers**: events of *other* classes, other OpenSFX recordings (bells,
  trains, jets, helicopter, animals, crashes, ship horns, wind, applause …) and ``espeak-ng`` adult
  babble, 3–15 dB below the foreground;
* **background noise**: 1/f^β noise (β ∈ [0, 2]) plus low-frequency traffic rumble, at a
  foreground-to-background ratio drawn from ``snr_range_db``;
* a random room (exponentially decaying noise impulse response, RT60 0.05–0.8 s), random EQ tilt
  and gain.

Generators (all parameters drawn per clip; ``t`` time, ``f0`` fundamental):

* ``air_conditioner``: stationary 1/f^β noise through a broad resonance + fan-blade tone (20–140 Hz)
  and its harmonics + slow (0.1–1 Hz) level wobble; whole clip.
* ``car_horn``: 1–3 honks (0.15–1.5 s) of a two-tone sawtooth horn (f0 300–520 Hz, second tone ×1.19–1.33)
  through a 1.5–3.5 kHz formant; small vibrato.
* ``children_playing``: 2–5 overlapping high-pitched talkers / shouts at several distances.
* ``dog_bark``: 1–7 barks of 0.08–0.35 s, harmonic f0 350–1100 Hz falling 10–40 %, mixed with
  formant-filtered noise, fast attack, exponential decay; gaps 0.1–0.7 s.
* ``drilling``: motor whine with f0 80–450 Hz and 6–20 harmonics, load-dependent f0 dips, plus
  high-passed noise; on/off trigger pattern.
* ``engine_idling``: cylinder firing pulses at ``rpm/60 · cylinders/2`` (rpm 550–1200, 4/6/8
  cylinders, ±3 % jitter), each a damped 60–250 Hz resonance, plus low-passed noise; whole clip.
* ``gun_shot``: 1–5 shots: an N-wave muzzle blast (0.5–3 ms) + a 100–400 Hz body thump + room tail
  (RT60 0.3–1.6 s), distance low-pass 1.5–8 kHz; intervals 0.08–0.9 s.
* ``jackhammer``: impacts at 12–30 Hz, each a broadband click plus 1–5 kHz metallic ring (decay 5–30 ms),
  plus compressor noise; bursts of 0.4–2.5 s.
* ``siren``: wail (sweep 500–1600 Hz, period 1.5–6 s), yelp (period 0.12–0.4 s) or hi-lo (two tones,
  0.35–0.8 s each), 3–8 harmonics, Doppler drift; whole clip.
* ``street_music``: a tempo (70–170 BPM), a pentatonic/major melody in a plucked-string (modal Karplus–Strong: partial k decays k× faster) or
  organ-like timbre, optional chords, kick/snare/hat drums.

Hardness check: :func:`mfcc_stats_baseline` (multinomial logistic regression on per-clip MFCC mean and
std, the classic simple UrbanSound8K baseline, which reaches about 70 % on the real data) — its
accuracy on the substitute is reported in ``docs/results/audio-and-soc.md``.
"""

from __future__ import annotations

import io
import math
import os
import re
import shutil
import struct
import subprocess
import warnings
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..config import check
from .audio import FeatureCache, FeatureConfig, extract_features, load_audio, resample
from .mnist import DataError, data_dir

CLASSES = [
    "air_conditioner",
    "car_horn",
    "children_playing",
    "dog_bark",
    "drilling",
    "engine_idling",
    "gun_shot",
    "jackhammer",
    "siren",
    "street_music",
]
METADATA = Path("metadata") / "UrbanSound8K.csv"
METADATA_COLUMNS = ["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class"]
OPENSFX_CAT = Path("/usr/share/games/openttd/baseset/opensfx/opensfx.cat")

__all__ = [
    "CLASSES",
    "SoundSet",
    "find_urbansound8k",
    "read_metadata",
    "load_urbansound8k",
    "SubstituteConfig",
    "load_substitute",
    "generate_clip",
    "read_opensfx",
    "load_sound_dataset",
    "sound_features",
    "mfcc_stats_baseline",
]


# ====================================================================================== container
class SoundSet:
    """Clips with labels and folds; audio is produced on demand by ``audio_fn(indices)``.

    ``labels``/``folds`` are int64 tensors of length ``N``; ``identity`` is a JSON-able description
    used to key feature caches; ``substitute`` is True for generated data.
    """

    def __init__(self, labels, folds, audio_fn, sample_rate: int, duration: float, name: str, source: str,
                 identity: dict, substitute: bool, names: list[str] | None = None) -> None:
        self.labels = torch.as_tensor(labels, dtype=torch.int64)
        self.folds = torch.as_tensor(folds, dtype=torch.int64)
        if self.labels.shape != self.folds.shape:
            raise ValueError("labels and folds must have the same length")
        self._audio_fn = audio_fn
        self.sample_rate = int(sample_rate)
        self.duration = float(duration)
        self.name = name
        self.source = source
        self.identity = identity
        self.substitute = substitute
        self.names = names or [f"clip{i}" for i in range(len(self.labels))]

    def __len__(self) -> int:
        return len(self.labels)

    def audio(self, indices=None, progress: bool = True) -> torch.Tensor:
        """``(k, samples)`` float32 audio of the clips ``indices`` (all if None)."""
        idx = np.arange(len(self)) if indices is None else np.asarray(indices, dtype=np.int64).reshape(-1)
        return torch.as_tensor(self._audio_fn(idx, progress))

    def split(self, test_fold: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Train indices (every other fold) and test indices (``test_fold``)."""
        present = sorted(set(self.folds.tolist()))
        if test_fold not in present:
            raise DataError(f"{self.name}: test_fold={test_fold} does not exist; folds present: {present}")
        test = torch.nonzero(self.folds == test_fold).flatten()
        train = torch.nonzero(self.folds != test_fold).flatten()
        return train, test


# ====================================================================================== real data
def find_urbansound8k(root: str | Path | None = None) -> Path | None:
    """The UrbanSound8K folder (the one holding ``metadata/UrbanSound8K.csv``) or None."""
    cands = []
    if root is not None:
        r = Path(root)
        cands += [r, r / "UrbanSound8K"]
    else:
        base = data_dir()
        cands += [base / "UrbanSound8K", base / "urbansound8k"]
    for c in cands:
        if (c / METADATA).is_file():
            return c
    return None


def read_metadata(root: str | Path) -> list[dict]:
    """Rows of ``metadata/UrbanSound8K.csv`` with typed fields; raises DataError for a malformed file."""
    import csv

    path = Path(root) / METADATA
    if not path.is_file():
        raise DataError(f"UrbanSound8K metadata not found: {path}")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in METADATA_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path}: missing column(s) {missing}; expected {METADATA_COLUMNS}")
        rows = []
        for line, r in enumerate(reader, start=2):
            try:
                row = {"slice_file_name": r["slice_file_name"], "fsID": int(r["fsID"]), "start": float(r["start"]),
                       "end": float(r["end"]), "salience": int(r["salience"]), "fold": int(r["fold"]),
                       "classID": int(r["classID"]), "class": r["class"]}
            except (TypeError, ValueError) as exc:
                raise DataError(f"{path}:{line}: bad value ({exc})") from None
            if not 1 <= row["fold"] <= 10:
                raise DataError(f"{path}:{line}: fold={row['fold']} outside 1..10")
            if not 0 <= row["classID"] < len(CLASSES):
                raise DataError(f"{path}:{line}: classID={row['classID']} outside 0..9")
            rows.append(row)
    if not rows:
        raise DataError(f"{path}: no clips listed")
    return rows


def load_urbansound8k(root: str | Path | None = None, sample_rate: int = 22050, duration: float = 4.0) -> SoundSet:
    """The real UrbanSound8K (audio read lazily, mono, resampled to ``sample_rate``, zero-padded to
    ``duration``). Raises DataError with instructions if it is not there."""
    folder = find_urbansound8k(root)
    if folder is None:
        where = Path(root) if root is not None else data_dir() / "UrbanSound8K"
        raise DataError(
            f"UrbanSound8K not found at {where}. It cannot be downloaded automatically (licence click-through): "
            "get it from https://urbansounddataset.weebly.com/urbansound8k.html and unpack it so that "
            f"{where / METADATA} exists, or run with dataset=substitute."
        )
    rows = read_metadata(folder)
    paths = [folder / "audio" / f"fold{r['fold']}" / r["slice_file_name"] for r in rows]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise DataError(f"UrbanSound8K: {len(missing)} audio file(s) listed in the metadata are missing, "
                        f"e.g. {missing[0]}")

    def audio_fn(idx, progress):
        out = np.zeros((len(idx), int(round(duration * sample_rate))), np.float32)
        for k, i in enumerate(tqdm(idx, desc="reading UrbanSound8K", disable=not progress or len(idx) < 50,
                                   leave=False)):
            out[k] = load_audio(paths[i], sample_rate, duration)
        return out

    stat = [(r["slice_file_name"], paths[i].stat().st_size) for i, r in enumerate(rows)]
    identity = {"dataset": "urbansound8k", "root": str(folder.resolve()), "files": FeatureCache.digest(stat),
                "sample_rate": sample_rate, "duration": duration}
    return SoundSet([r["classID"] for r in rows], [r["fold"] for r in rows], audio_fn, sample_rate, duration,
                    "urbansound8k", str(folder), identity, substitute=False, names=[r["slice_file_name"] for r in rows])


# ====================================================================================== OpenSFX
def _soundfile():
    try:
        import soundfile
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise DataError("the sound datasets need 'soundfile': pip install 'memristive[audio]'") from exc
    return soundfile


def _title(desc: str) -> str:
    m = re.match(r'\s*"([^"]*)"', desc)
    return m.group(1) if m else desc.split(".")[0]


@lru_cache(maxsize=4)
def read_opensfx(path: str | None = None, sample_rate: int = 22050) -> dict[str, np.ndarray]:
    """Real field recordings from Debian's ``openttd-opensfx``: ``{title: mono float32 audio}``.

    ``opensfx.cat`` is a table of little-endian ``(offset, size)`` pairs (the top bit of the offset is a
    flag) followed by entries ``[name length][name][RIFF WAV]``. Returns ``{}`` if the file is absent.
    """
    sf = _soundfile()
    p = Path(path) if path else OPENSFX_CAT
    if not p.is_file():
        return {}
    data = p.read_bytes()
    first = struct.unpack_from("<I", data, 0)[0] & 0x7FFFFFFF
    out: dict[str, np.ndarray] = {}
    for k in range(first // 8):
        off, size = struct.unpack_from("<II", data, 8 * k)
        off &= 0x7FFFFFFF
        n = data[off]
        title = _title(data[off + 1 : off + 1 + n].rstrip(b"\0").decode("latin-1"))
        try:
            y, sr = sf.read(io.BytesIO(data[off + 1 + n : off + size]), dtype="float32", always_2d=True)
        except Exception:
            continue  # the set has two intentionally empty entries
        y = resample(y.mean(1), sr, sample_rate)
        if len(y) > sample_rate // 20 and np.abs(y).max() > 0:
            out[title] = y / np.abs(y).max()
    return out


# titles (the quoted part of each OpenSFX entry's description) used as class seeds and as interferers
SEED_CLIPS = {
    "car_horn": ["Modern car horn", "Truck/old bus start, pull away with horn"],
    "drilling": ["Sawmill", "Lumber mill: Chainsaw"],
    "engine_idling": ["Truck/old bus start, pull away", "Modern bus start", "Old bus start"],
    "jackhammer": ["Jackhammer"],
    "street_music": ["Good Year", "Bad Year"],
}
INTERFERER_CLIPS = [
    "Level crossing", "Helicopter", "Early jet take off", "Modern jet take off", "Crash", "Big crash", "Sheep", "Cow",
    "Horse", "Applause", "Wind", "Heavy wind", "Ship horn", "Ferry horn", "Factory Whistle",
    "Diesel/electric train station departure", "Monorail train station departure", "Tropical: Bird (1)",
    "Tropical: Bird (2)", "Cash till", "Building bridge", "Electric sparking", "Mining machinery",
    "Propeller plane start", "Explosion", "Steam train station departure", "Maglev train station departure",
    "Lumber mill: Falling tree", "Tropical: Monkeys", "Tropical: Lion roar", "Road vehicle breakdown",
]


# ====================================================================================== espeak-ng
CHILD_PHRASES = [
    "hey", "come on", "catch it", "my turn", "over here", "no way", "run run", "you are it", "ha ha ha", "wait for me",
    "look at this", "one two three", "mommy", "stop it", "throw it", "again again", "yay", "got you", "hide", "whee",
    "I win", "ready go", "let's play", "tag", "faster", "jump", "yes", "my ball", "ouch", "watch me",
]
ADULT_PHRASES = [
    "excuse me", "the meeting is at nine", "did you see that", "I will call you later", "turn left at the corner",
    "how much is it", "we should go now", "it is going to rain", "that is not what I said", "see you tomorrow",
    "can you hear me", "the bus is late again", "where is the station", "thank you very much", "just a moment",
]


def _espeak(text: str, voice: str, pitch: int, speed: int, sample_rate: int) -> np.ndarray | None:
    exe = shutil.which("espeak-ng")
    if exe is None:
        return None
    try:
        r = subprocess.run([exe, "--stdout", "-v", voice, "-p", str(pitch), "-s", str(speed), text],
                           capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if r.returncode != 0 or len(r.stdout) < 100:
        return None
    y, sr = _soundfile().read(io.BytesIO(r.stdout), dtype="float32", always_2d=True)
    y = resample(y.mean(1), sr, sample_rate)
    y = np.trim_zeros(np.where(np.abs(y) < 1e-4, 0, y))
    return y / np.abs(y).max() if len(y) and np.abs(y).max() > 0 else None


def _speech_pool(kind: str, n: int, seed: int, sample_rate: int) -> list[np.ndarray]:
    """``n`` espeak-ng utterances (``kind`` "child" or "adult"); empty if espeak-ng is absent."""
    rng = np.random.default_rng([seed, 7 if kind == "child" else 11])
    phrases = CHILD_PHRASES if kind == "child" else ADULT_PHRASES
    variants = ["f1", "f2", "f3", "f4", "f5", "m1", "m3", "m7", "klatt", "klatt3"]
    accents = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp"]
    pool = []
    for _ in tqdm(range(n), desc=f"espeak-ng {kind} speech", leave=False):
        text = " ".join(rng.choice(phrases, size=rng.integers(1, 3)))
        voice = f"{rng.choice(accents)}+{rng.choice(variants)}"
        pitch = int(rng.integers(70, 100)) if kind == "child" else int(rng.integers(20, 70))
        speed = int(rng.integers(150, 240)) if kind == "child" else int(rng.integers(120, 200))
        y = _espeak(text, voice, pitch, speed, sample_rate)
        if y is None:
            return []
        if kind == "child":  # children: shorter vocal tract → formants ×1.15–1.35 (resample = tape speed-up)
            y = _speed(y, float(rng.uniform(1.15, 1.35)))
        pool.append(y.astype(np.float32))
    return pool


# ====================================================================================== DSP helpers
def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)) + 1e-12)


def _norm(x: np.ndarray) -> np.ndarray:
    return x / _rms(x)


def _speed(y: np.ndarray, factor: float) -> np.ndarray:
    """Play ``factor`` times faster (pitch up by the same factor), by linear interpolation."""
    n = max(2, int(len(y) / factor))
    return np.interp(np.linspace(0, len(y) - 1, n), np.arange(len(y)), y).astype(np.float32)


@lru_cache(maxsize=16)
def _grid(n: int, sr: int) -> tuple[int, np.ndarray]:
    """A fast FFT length >= n and its rfft frequencies (zero padding also avoids circular wrap-around)."""
    from scipy.fft import next_fast_len

    m = next_fast_len(int(n), real=True)
    return m, np.fft.rfftfreq(m, 1 / sr).astype(np.float32)


def _filter(x: np.ndarray, sr: int, gain) -> np.ndarray:
    """Zero-phase FFT-domain filter: ``gain(f)`` (a function of the frequency grid in Hz)."""
    from scipy.fft import irfft, rfft

    n = len(x)
    m, f = _grid(n, sr)
    return irfft(rfft(np.asarray(x, np.float32), m) * gain(f), m)[:n].astype(np.float32)


def _smooth(x: np.ndarray, k: int) -> np.ndarray:
    """Centred moving average of width ``k`` (cumulative sums; same length)."""
    k = max(1, int(k))
    c = np.cumsum(np.pad(np.asarray(x, np.float64), (k // 2, k - 1 - k // 2), mode="edge"))
    c = np.concatenate([[0.0], c])
    return ((c[k:] - c[:-k]) / k).astype(np.float32)


def _band(x: np.ndarray, sr: int, lo: float, hi: float, order: float = 4.0) -> np.ndarray:
    """Smooth FFT-domain band-pass (Butterworth-magnitude shaped)."""

    def gain(f):
        g = np.ones_like(f)
        if lo > 0:
            g = g / np.sqrt(1 + (lo / np.maximum(f, lo * 1e-3)) ** (2 * order))
        if hi < sr / 2:
            g = g / np.sqrt(1 + (f / hi) ** (2 * order))
        return g

    return _filter(x, sr, gain)


def _resonator(x: np.ndarray, sr: int, fc: float, bw: float) -> np.ndarray:
    """Gaussian-shaped spectral resonance at ``fc`` with bandwidth ``bw`` (Hz)."""
    return _filter(x, sr, lambda f: np.exp(-0.5 * ((f - fc) / max(bw, 1.0)) ** 2))


def _colored(rng, n: int, beta: float) -> np.ndarray:
    """Unit-RMS noise with power spectrum ~ 1/f^beta."""
    w = rng.standard_normal(n, dtype=np.float32)
    y = _filter(w, 1, lambda f: np.where(f > 0, np.maximum(f, 1e-9) ** (-beta / 2), 0.0).astype(np.float32))
    return _norm(y - y.mean()).astype(np.float32)


def _eq(rng, x: np.ndarray, sr: int, max_db: float = 9.0) -> np.ndarray:
    """Random smooth EQ: a tilt plus 2 random peaks/notches (+-``max_db``)."""
    tilt = rng.uniform(-3, 3)
    peaks = [(rng.uniform(-3, 3.3), rng.uniform(-max_db, max_db), rng.uniform(0.3, 1.5)) for _ in range(2)]

    def gain(f):
        lf = np.log2(np.maximum(f, 20) / 1000)
        gdb = tilt * lf
        for c, a, w in peaks:
            gdb = gdb + a * np.exp(-0.5 * ((lf - c) / w) ** 2)
        return (10 ** (gdb / 20)).astype(np.float32)

    return _filter(x, sr, gain)


def _fftconv(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from scipy.signal import oaconvolve

    return oaconvolve(np.asarray(a, np.float32), np.asarray(b, np.float32)).astype(np.float32)


def _reverb(rng, x: np.ndarray, sr: int, rt60: float, wet: float) -> np.ndarray:

    m = int(min(rt60, 1.2) * sr)
    t = np.arange(m) / sr
    ir = rng.standard_normal(m) * np.exp(-6.91 * t / rt60)
    ir = _band(ir.astype(np.float32), sr, 80, rng.uniform(3000, 9000), 1)
    ir[0] = 0
    ir = ir / (np.sqrt(np.sum(ir**2)) + 1e-12)
    y = _fftconv(x, ir)[: len(x)]
    return ((1 - wet) * x + wet * y * _rms(x) / _rms(y)).astype(np.float32)


def _place(event: np.ndarray, n: int, start: int) -> np.ndarray:
    out = np.zeros(n, np.float32)
    if start < n:
        seg = event[: n - start]
        out[start : start + len(seg)] = seg
    return out


def _env(n: int, sr: int, attack: float, decay: float) -> np.ndarray:
    t = np.arange(n) / sr
    return (np.minimum(1, t / max(attack, 1e-4)) * np.exp(-t / max(decay, 1e-4))).astype(np.float32)


def _tone(sr: int, f0: np.ndarray, harmonics: int, rolloff: float, rng=None) -> np.ndarray:
    """Sum of ``harmonics`` partials ``k^(−rolloff)·sin(k·φ(t) + θ_k)`` on the instantaneous frequency
    ``f0(t)``, ``φ = 2π·cumsum(f0)/sr``; partials above Nyquist − 200 Hz are left out. The partials are
    the powers ``z^k`` of ``z = e^{iφ}`` (one complex multiply each instead of a sine)."""
    f0 = np.asarray(f0, np.float64)
    z = np.exp(1j * (2 * np.pi * np.cumsum(f0) / sr))
    zk = np.ones_like(z)
    y = np.zeros(len(f0), np.float64)
    limit, fmax = sr / 2 - 200, float(f0.max()) if len(f0) else 0.0
    for k in range(1, harmonics + 1):
        zk *= z
        amp = k ** (-rolloff) * (1 if rng is None else rng.uniform(0.5, 1.0))
        th = 0.0 if rng is None else rng.uniform(0, 6.28)
        part = amp * (np.sin(th) * zk.real + np.cos(th) * zk.imag)
        if k * fmax >= limit:
            part = np.where(k * f0 < limit, part, 0.0)
        y += part
    return y.astype(np.float32)


def _gate(rng, n: int, sr: int, on: tuple, off: tuple, start_on: bool = True) -> np.ndarray:
    """0/1 on/off pattern with segment lengths drawn from ``on``/``off`` (seconds), 5 ms ramps."""
    g = np.zeros(n, np.float32)
    i, state = int(rng.uniform(0, 0.3) * sr) if not start_on else 0, start_on
    while i < n:
        d = int(rng.uniform(*(on if state else off)) * sr)
        if state:
            g[i : i + d] = 1
        i += max(d, 1)
        state = not state
    k = max(1, int(0.005 * sr))
    return _smooth(g, k)


# ====================================================================================== generators
def _air_conditioner(rng, n, sr, ctx):
    noise = _colored(rng, n, rng.uniform(0.3, 1.8))
    noise = _resonator(noise, sr, rng.uniform(200, 2500), rng.uniform(300, 2500)) + rng.uniform(0.1, 0.6) * noise
    fan = rng.uniform(20, 140)
    f0 = fan * (1 + 0.003 * rng.standard_normal() + 0.002 * np.sin(2 * np.pi * rng.uniform(0.05, 0.5) * np.arange(n) / sr))
    hum = _tone(sr, f0, int(rng.integers(2, 12)), rng.uniform(0.5, 2.0), rng)
    wob = 1 + rng.uniform(0, 0.25) * np.sin(2 * np.pi * rng.uniform(0.1, 1.0) * np.arange(n) / sr + rng.uniform(0, 6))
    return (_norm(noise) + rng.uniform(0.05, 1.0) * _norm(hum)) * wob


def _car_horn(rng, n, sr, ctx):
    out = np.zeros(n, np.float32)
    t0 = rng.uniform(0, 1.5)
    f1 = rng.uniform(300, 520)
    ratio = rng.uniform(1.19, 1.33)
    for _ in range(int(rng.integers(1, 4))):
        d = rng.uniform(0.15, 1.5)
        m = int(d * sr)
        vib = 1 + 0.004 * np.sin(2 * np.pi * rng.uniform(4, 8) * np.arange(m) / sr)
        h = int(rng.integers(6, 20))
        y = _tone(sr, f1 * vib, h, rng.uniform(0.6, 1.3)) + _tone(sr, f1 * ratio * vib, h, rng.uniform(0.6, 1.3))
        y = _resonator(y, sr, rng.uniform(1500, 3500), rng.uniform(500, 2000)) + 0.3 * y
        y *= np.minimum(1, np.minimum(np.arange(m), m - np.arange(m)) / (0.01 * sr))
        out += _place(y, n, int(t0 * sr))
        t0 += d + rng.uniform(0.08, 0.6)
    return out


def _children_playing(rng, n, sr, ctx):
    pool = ctx["child"]
    out = np.zeros(n, np.float32)
    for _ in range(int(rng.integers(2, 6))):
        if pool:
            y = pool[rng.integers(len(pool))]
            y = _speed(y, rng.uniform(0.9, 1.12))
        else:  # formant-synthesis fallback: glottal pulse train through vowel formants
            m = int(rng.uniform(0.3, 1.2) * sr)
            f0 = rng.uniform(230, 420) * (1 + rng.uniform(-0.3, 0.3) * np.linspace(0, 1, m))
            src = _tone(sr, f0, 30, 1.0)
            y = sum(_resonator(src, sr, rng.uniform(*b), rng.uniform(80, 200)) for b in ((600, 1100), (1300, 2800), (2800, 3800)))
            y *= _env(m, sr, 0.03, rng.uniform(0.2, 1.0))
        gain = rng.uniform(0.2, 1.0)
        out += gain * _place(_norm(y), n, int(rng.uniform(0, max(0.1, (n - len(y)) / sr)) * sr))
    return out


def _dog_bark(rng, n, sr, ctx):
    out = np.zeros(n, np.float32)
    t0 = rng.uniform(0, 1.2)
    f_base = rng.uniform(350, 1100)
    for _ in range(int(rng.integers(1, 8))):
        d = rng.uniform(0.08, 0.35)
        m = int(d * sr)
        f0 = f_base * rng.uniform(0.9, 1.1) * (1 - rng.uniform(0.1, 0.4) * np.linspace(0, 1, m))
        voiced = _tone(sr, f0, int(rng.integers(5, 14)), rng.uniform(0.8, 1.6), rng)
        noisy = rng.standard_normal(m).astype(np.float32)
        y = rng.uniform(0.3, 1) * _norm(voiced) + rng.uniform(0.1, 0.8) * _norm(noisy)
        y = _resonator(y, sr, rng.uniform(900, 3000), rng.uniform(400, 1500)) + 0.4 * y
        y *= _env(m, sr, rng.uniform(0.003, 0.015), d * rng.uniform(0.25, 0.6))
        out += _place(y, n, int(t0 * sr))
        t0 += d + rng.uniform(0.1, 0.7)
        if t0 > n / sr:
            break
    return out


def _drilling(rng, n, sr, ctx):
    t = np.arange(n) / sr
    f0 = rng.uniform(80, 450)
    dip = 1 - rng.uniform(0, 0.25) * np.clip(np.sin(2 * np.pi * rng.uniform(0.2, 1.5) * t + rng.uniform(0, 6)), 0, 1)
    whine = _tone(sr, f0 * dip, int(rng.integers(6, 21)), rng.uniform(0.3, 1.2), rng)
    noise = _band(rng.standard_normal(n).astype(np.float32), sr, rng.uniform(1000, 4000), sr / 2)
    y = _norm(whine) + rng.uniform(0.1, 0.8) * _norm(noise)
    return y * _gate(rng, n, sr, (0.5, 3.0), (0.1, 0.8), start_on=rng.random() < 0.6)


def _engine_idling(rng, n, sr, ctx):
    rpm = rng.uniform(550, 1200)
    rate = rpm / 60 * int(rng.choice([4, 6, 8])) / 2
    times = np.cumsum(1 / rate * (1 + 0.03 * rng.standard_normal(int(n / sr * rate) + 2)))
    pulses = np.zeros(n, np.float32)
    idx = (times * sr).astype(int)
    pulses[idx[idx < n]] = rng.uniform(0.6, 1.0, size=(idx < n).sum())
    m = int(0.05 * sr)
    fr = rng.uniform(60, 250)
    kernel = np.sin(2 * np.pi * fr * np.arange(m) / sr) * np.exp(-np.arange(m) / sr / rng.uniform(0.005, 0.02))
    y = _fftconv(pulses, kernel)[:n]
    rumble = _band(rng.standard_normal(n).astype(np.float32), sr, 20, rng.uniform(300, 1500), 2)
    return _norm(y) + rng.uniform(0.2, 1.0) * _norm(rumble)


def _gun_shot(rng, n, sr, ctx):
    out = np.zeros(n, np.float32)
    t0 = rng.uniform(0, 2.0)
    for _ in range(int(rng.integers(1, 6))):
        w = rng.uniform(0.0005, 0.003)
        m = int(max(w * sr, 4))
        nwave = np.linspace(1, -1, m).astype(np.float32)
        tm = int(0.15 * sr)
        thump = np.sin(2 * np.pi * rng.uniform(100, 400) * np.arange(tm) / sr) * np.exp(-np.arange(tm) / sr / rng.uniform(0.01, 0.05))
        shot = np.zeros(int(1.8 * sr), np.float32)
        shot[:m] += nwave * 3
        shot[:tm] += rng.uniform(0.2, 1.0) * thump
        shot[:tm] += 0.5 * rng.standard_normal(tm) * np.exp(-np.arange(tm) / sr / 0.01)
        shot = _reverb(rng, shot, sr, rng.uniform(0.3, 1.6), rng.uniform(0.2, 0.7))
        shot = _band(shot, sr, 30, rng.uniform(1500, 8000), 2)
        out += _place(shot, n, int(t0 * sr))
        t0 += rng.uniform(0.08, 0.9)
        if t0 > n / sr - 0.1:
            break
    return out


def _jackhammer(rng, n, sr, ctx):
    rate = rng.uniform(12, 30)
    times = np.cumsum(1 / rate * (1 + 0.02 * rng.standard_normal(int(n / sr * rate) + 2)))
    pulses = np.zeros(n, np.float32)
    idx = (times * sr).astype(int)
    pulses[idx[idx < n]] = 1
    m = int(0.06 * sr)
    tt = np.arange(m) / sr
    ring = np.zeros(m)
    for _ in range(3):
        ring += np.sin(2 * np.pi * rng.uniform(1000, 5000) * tt) * np.exp(-tt / rng.uniform(0.005, 0.03))
    click = rng.standard_normal(m) * np.exp(-tt / 0.002)
    y = _fftconv(pulses, ring + rng.uniform(0.5, 2) * click)[:n]
    comp = _band(rng.standard_normal(n).astype(np.float32), sr, 200, rng.uniform(2000, 6000), 2)
    y = _norm(y) + rng.uniform(0.1, 0.6) * _norm(comp)
    return y * _gate(rng, n, sr, (0.4, 2.5), (0.1, 0.6), start_on=rng.random() < 0.7)


def _siren(rng, n, sr, ctx):
    t = np.arange(n) / sr
    kind = rng.integers(3)
    lo, hi = rng.uniform(500, 900), rng.uniform(1000, 1600)
    if kind == 0:  # wail
        f0 = lo + (hi - lo) * 0.5 * (1 - np.cos(2 * np.pi * t / rng.uniform(1.5, 6) + rng.uniform(0, 6)))
    elif kind == 1:  # yelp
        f0 = lo + (hi - lo) * ((t / rng.uniform(0.12, 0.4) + rng.uniform(0, 1)) % 1.0)
    else:  # hi-lo
        f0 = np.where(((t / rng.uniform(0.35, 0.8)) % 2) < 1, lo, hi)
        f0 = _smooth(f0, 64)
    f0 = f0 * (1 + rng.uniform(-0.05, 0.05) * t / t[-1])  # Doppler drift
    return _tone(sr, f0, int(rng.integers(3, 9)), rng.uniform(0.5, 1.5), rng)


def _street_music(rng, n, sr, ctx):
    out = np.zeros(n, np.float32)
    beat = 60 / rng.uniform(70, 170)
    root = rng.uniform(110, 330)
    scale = [0, 2, 4, 7, 9] if rng.random() < 0.5 else [0, 2, 4, 5, 7, 9, 11]
    pluck = rng.random() < 0.5
    t0 = rng.uniform(0, 0.5)
    while t0 < n / sr:
        d = beat * rng.choice([0.5, 1, 1, 2])
        notes = [root * 2 ** ((rng.choice(scale) + 12 * rng.integers(0, 2)) / 12)]
        if rng.random() < 0.4:
            notes += [notes[0] * 2 ** (4 / 12), notes[0] * 2 ** (7 / 12)]
        m = int(d * sr * 1.3)
        for f in notes:
            if pluck:  # plucked string (modal form of Karplus-Strong): partial k decays k times faster
                tt = np.arange(m, dtype=np.float32) / sr
                tau = rng.uniform(0.3, 1.2)
                y = np.zeros(m, np.float32)
                for k in range(1, 11):
                    if k * f < sr / 2 - 200:
                        y += (rng.uniform(0.3, 1.0) / k) * np.exp(-tt * k / tau) * np.sin(2 * np.pi * k * f * tt + rng.uniform(0, 6.28))
            else:
                y = _tone(sr, np.full(m, f), 6, 1.0) * _env(m, sr, 0.02, d)
            out += _place(y / len(notes), n, int(t0 * sr))
        t0 += d
    if rng.random() < 0.7:  # drums
        drums = np.zeros(n, np.float32)
        km = int(0.2 * sr)
        kick = np.sin(2 * np.pi * np.cumsum(np.linspace(rng.uniform(80, 120), 45, km)) / sr) * np.exp(-np.arange(km) / sr / 0.06)
        snare = rng.standard_normal(km) * np.exp(-np.arange(km) / sr / 0.04)
        tb = rng.uniform(0, 0.3)
        i = 0
        while tb < n / sr:
            drums += _place((kick if i % 2 == 0 else 0.5 * snare).astype(np.float32), n, int(tb * sr))
            tb += beat
            i += 1
        out = _norm(out) + rng.uniform(0.2, 0.8) * _norm(drums)
    return out


GENERATORS = {
    "air_conditioner": _air_conditioner,
    "car_horn": _car_horn,
    "children_playing": _children_playing,
    "dog_bark": _dog_bark,
    "drilling": _drilling,
    "engine_idling": _engine_idling,
    "gun_shot": _gun_shot,
    "jackhammer": _jackhammer,
    "siren": _siren,
    "street_music": _street_music,
}


# ====================================================================================== substitute
@dataclass
class SubstituteConfig:
    """The offline UrbanSound8K substitute (see the module docstring). ``clips_per_class`` clips of each
    of the 10 classes, spread evenly over folds 1–10; every clip is reproducible from ``(seed, index)``."""

    clips_per_class: int = 300
    seed: int = 0
    sample_rate: int = 22050
    duration: float = 4.0
    real_seed_prob: float = 0.4
    snr_range_db: tuple[float, float] = (-3.0, 15.0)
    interferer_prob: float = 0.8
    interferer_db: tuple[float, float] = (-15.0, -3.0)
    max_interferers: int = 2
    reverb_prob: float = 0.6
    speech_pool: int = 120
    workers: int = 2

    def __post_init__(self) -> None:
        check(self.clips_per_class >= 1, "clips_per_class", self.clips_per_class, "must be >= 1")
        check(self.sample_rate >= 8000, "sample_rate", self.sample_rate, "must be >= 8000 Hz")
        check(self.duration > 0.5, "duration", self.duration, "must be > 0.5 s")
        check(0 <= self.real_seed_prob <= 1, "real_seed_prob", self.real_seed_prob, "must lie in [0, 1]")
        check(0 <= self.interferer_prob <= 1, "interferer_prob", self.interferer_prob, "must lie in [0, 1]")
        check(0 <= self.reverb_prob <= 1, "reverb_prob", self.reverb_prob, "must lie in [0, 1]")
        check(self.snr_range_db[0] <= self.snr_range_db[1], "snr_range_db", self.snr_range_db, "need low <= high")
        check(self.interferer_db[0] <= self.interferer_db[1], "interferer_db", self.interferer_db, "need low <= high")
        check(self.max_interferers >= 0, "max_interferers", self.max_interferers, "must be >= 0")
        check(self.speech_pool >= 1, "speech_pool", self.speech_pool, "must be >= 1")
        check(self.workers >= 1, "workers", self.workers, "must be >= 1 (processes generating clips)")


class _Context(dict):
    """Shared material for generating clips: OpenSFX clips and espeak-ng speech pools."""


def _context(cfg: SubstituteConfig) -> _Context:
    ctx = _Context()
    sfx = read_opensfx(None, cfg.sample_rate)
    ctx["sfx"] = sfx
    ctx["seeds"] = {c: [sfx[t] for t in titles if t in sfx] for c, titles in SEED_CLIPS.items()}
    ctx["interferers"] = [sfx[t] for t in INTERFERER_CLIPS if t in sfx]
    ctx["child"] = _speech_pool("child", cfg.speech_pool, cfg.seed, cfg.sample_rate)
    ctx["adult"] = _speech_pool("adult", max(8, cfg.speech_pool // 3), cfg.seed, cfg.sample_rate)
    return ctx


def _real_event(rng, clip: np.ndarray, n: int, sr: int) -> np.ndarray:
    y = _speed(clip, rng.uniform(0.85, 1.15))
    if len(y) > n:
        s = int(rng.integers(0, len(y) - n + 1))
        y = y[s : s + n]
    y = _eq(rng, y, sr, 6.0)
    start = int(rng.uniform(0, max(0.0, (n - len(y)) / sr)) * sr)
    return _place(y, n, start)


def _event(rng, cls: str, n: int, sr: int, ctx, cfg: SubstituteConfig, allow_real: bool = True) -> np.ndarray:
    seeds = ctx["seeds"].get(cls, [])
    if allow_real and seeds and rng.random() < cfg.real_seed_prob:
        y = _real_event(rng, seeds[rng.integers(len(seeds))], n, sr)
    else:
        y = GENERATORS[cls](rng, n, sr, ctx)
    y = np.asarray(y, np.float32)[:n]
    if len(y) < n:
        y = np.pad(y, (0, n - len(y)))
    return y


def generate_clip(index: int, cfg: SubstituteConfig, ctx=None) -> tuple[np.ndarray, int]:
    """Clip ``index`` of the substitute dataset: ``(audio float32 (duration·sr,), class id)``.

    Class ``index % 10``; the random stream is seeded by ``(cfg.seed, index)`` so any clip can be
    regenerated alone. Peak-normalised to 0.9 (level is not a class cue)."""
    ctx = _context(cfg) if ctx is None else ctx
    sr, n = cfg.sample_rate, int(round(cfg.duration * cfg.sample_rate))
    rng = np.random.default_rng([cfg.seed, int(index), 12345])
    label = int(index) % len(CLASSES)
    cls = CLASSES[label]
    fg = _norm(_eq(rng, _event(rng, cls, n, sr, ctx, cfg), sr))
    mix = fg.copy()
    fg_power = _rms(fg) ** 2
    if cfg.max_interferers and rng.random() < cfg.interferer_prob:
        for _ in range(int(rng.integers(1, cfg.max_interferers + 1))):
            u = rng.random()
            if u < 0.45:
                other = CLASSES[(label + int(rng.integers(1, len(CLASSES)))) % len(CLASSES)]
                y = _event(rng, other, n, sr, ctx, cfg, allow_real=False)
                # interferers are short events: gate a random 0.3–2 s window
                w = np.zeros(n, np.float32)
                a = int(rng.uniform(0, cfg.duration - 0.3) * sr)
                w[a : a + int(rng.uniform(0.3, 2.0) * sr)] = 1
                y = y * _smooth(w, 256)
            elif u < 0.8 and ctx["interferers"]:
                y = _real_event(rng, ctx["interferers"][rng.integers(len(ctx["interferers"]))], n, sr)
            elif ctx["adult"]:
                y = np.zeros(n, np.float32)
                for _ in range(int(rng.integers(1, 4))):
                    s = ctx["adult"][rng.integers(len(ctx["adult"]))]
                    y += _place(s, n, int(rng.uniform(0, max(0.1, cfg.duration - len(s) / sr)) * sr))
            else:
                continue
            level = 10 ** (rng.uniform(*cfg.interferer_db) / 20)
            # level relative to the foreground's power over the samples where the interferer is active
            active = np.abs(y) > 1e-4
            if active.sum() < sr // 100:  # (nearly) silent interferer: skip it
                continue
            y = y / np.sqrt(np.mean(y[active] ** 2) + 1e-12) * math.sqrt(fg_power) * level
            mix += y
    # background: 1/f^β noise + low-passed traffic rumble, as one Gaussian noise with the summed spectrum
    beta, rumble, fc = rng.uniform(0.0, 2.0), rng.uniform(0, 1.5), rng.uniform(150, 600)
    m_fft, f_grid = _grid(n, sr)
    fpos = np.maximum(f_grid, sr / m_fft)
    p1 = fpos ** -beta
    p2 = fpos ** -1.0 / (1 + (fc / fpos) ** -8) / (1 + (20 / fpos) ** 8)  # 1/f through a 20 Hz–fc band
    gain = np.sqrt(p1 / p1.mean() + rumble**2 * p2 / p2.mean()).astype(np.float32)
    gain[0] = 0
    bg = _filter(rng.standard_normal(n, dtype=np.float32), sr, lambda f: gain)
    snr = rng.uniform(*cfg.snr_range_db)
    mix = mix + _norm(bg) * math.sqrt(fg_power / 10 ** (snr / 10))
    if rng.random() < cfg.reverb_prob:
        mix = _reverb(rng, mix, sr, rng.uniform(0.05, 0.8), rng.uniform(0.1, 0.5))
    mix = _eq(rng, mix, sr, 4.0)
    mix = mix - mix.mean()
    if not np.isfinite(mix).all() or np.abs(mix).max() == 0:  # a generator bug must not pass silently
        raise RuntimeError(f"substitute clip {index} (seed {cfg.seed}) came out non-finite or silent")
    return (0.9 * mix / np.abs(mix).max()).astype(np.float32), label


_POOL_CTX: dict[int, _Context] = {}


def _exit_with_parent(parent: int) -> None:
    """Pool-worker initializer: leave as soon as the parent process is gone (e.g. killed), instead of
    waiting forever on the task queue as an orphan."""
    import threading
    import time

    def watch():
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def _generate_part(args) -> np.ndarray:
    key, cfg, idx = args
    ctx = _POOL_CTX[key]  # inherited from the parent through fork
    return np.stack([generate_clip(int(i), cfg, ctx)[0] for i in idx])


def _generate_parallel(sel, cfg: SubstituteConfig, state: dict, progress: bool) -> np.ndarray:
    """Generate clips ``sel`` in ``cfg.workers`` forked processes (the shared material is built once,
    in the parent, and inherited); results are identical to the serial path."""
    import atexit
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    if "pool" not in state:
        _POOL_CTX[id(state)] = state["ctx"]
        try:
            state["pool"] = ProcessPoolExecutor(cfg.workers, mp_context=mp.get_context("fork"),
                                                initializer=_exit_with_parent, initargs=(os.getpid(),))
        except (ValueError, OSError):  # no fork on this platform: stay serial
            state["pool"] = None
        if state["pool"] is not None:
            atexit.register(state["pool"].shutdown)
    if state["pool"] is None:
        return np.stack([generate_clip(int(i), cfg, state["ctx"])[0] for i in sel])
    parts = np.array_split(np.asarray(sel), max(1, len(sel) // 16))
    bar = tqdm(total=len(sel), desc=f"generating substitute clips ({cfg.workers} processes)",
               disable=not progress or len(sel) < 20, leave=False)
    out = []
    for arr in state["pool"].map(_generate_part, [(id(state), cfg, p) for p in parts]):
        out.append(arr)
        bar.update(len(arr))
    bar.close()
    return np.concatenate(out)


def load_substitute(cfg: SubstituteConfig | None = None) -> SoundSet:
    """The substitute dataset as a :class:`SoundSet` (clips generated on demand, reproducibly)."""
    cfg = cfg or SubstituteConfig()
    n = cfg.clips_per_class * len(CLASSES)
    idx = np.arange(n)
    labels = idx % len(CLASSES)
    folds = 1 + (idx // len(CLASSES)) % 10
    state: dict = {}

    def audio_fn(sel, progress):
        if "ctx" not in state:
            state["ctx"] = _context(cfg)
        if cfg.workers > 1 and len(sel) >= 8 * cfg.workers:
            return _generate_parallel(sel, cfg, state, progress)
        out = np.zeros((len(sel), int(round(cfg.duration * cfg.sample_rate))), np.float32)
        for k, i in enumerate(tqdm(sel, desc="generating substitute clips", disable=not progress or len(sel) < 20,
                                   leave=False)):
            out[k] = generate_clip(int(i), cfg, state["ctx"])[0]
        return out

    have_sfx = OPENSFX_CAT.is_file()
    have_espeak = shutil.which("espeak-ng") is not None
    if not have_sfx:
        warnings.warn("openttd-opensfx is not installed: the UrbanSound8K substitute uses generators only "
                      "(apt-get install openttd-opensfx for the real seed recordings)", stacklevel=2)
    source = (f"UrbanSound8K SUBSTITUTE (generated offline; not UrbanSound8K): {n} clips, seed {cfg.seed}; "
              f"OpenSFX recordings {'yes' if have_sfx else 'NO'}, espeak-ng {'yes' if have_espeak else 'NO (formant fallback)'}")
    identity = {"dataset": "urbansound8k-substitute", "version": 4,
                **{k: v for k, v in asdict(cfg).items() if k != "workers"}, "opensfx": have_sfx,
                "espeak": have_espeak}
    return SoundSet(labels, folds, audio_fn, cfg.sample_rate, cfg.duration, "urbansound8k-substitute", source,
                    identity, substitute=True)


def load_sound_dataset(dataset: str = "auto", root: str | Path | None = None,
                       substitute: SubstituteConfig | None = None, sample_rate: int = 22050,
                       duration: float = 4.0) -> SoundSet:
    """``"urbansound8k"`` (real, error if absent), ``"substitute"``, or ``"auto"`` (real if found)."""
    if dataset not in ("auto", "urbansound8k", "substitute"):
        raise DataError(f"dataset={dataset!r}: must be 'auto', 'urbansound8k' or 'substitute'")
    if dataset == "urbansound8k" or (dataset == "auto" and find_urbansound8k(root) is not None):
        return load_urbansound8k(root, sample_rate, duration)
    return load_substitute(substitute)


def sound_features(ds: SoundSet, cfg: FeatureConfig, cache_dir: str | Path | None = None, chunk: int = 256,
                   progress: bool = True) -> torch.Tensor:
    """``(N, frames, features)`` for every clip of ``ds``, cached on disk (default
    ``<data dir>/feature-cache``) under a key of the dataset identity and ``cfg``."""
    if cfg.sample_rate != ds.sample_rate:
        raise ValueError(f"feature sample_rate={cfg.sample_rate} differs from the dataset's {ds.sample_rate}")
    cache = FeatureCache(Path(cache_dir) if cache_dir is not None else data_dir() / "feature-cache")
    key = {"data": ds.identity, "features": cfg.key(), "version": 1}

    def compute():
        parts = []
        bar = tqdm(range(0, len(ds), chunk), desc=f"{ds.name}: audio → {cfg.kind} features", disable=not progress)
        for i in bar:
            sel = np.arange(i, min(len(ds), i + chunk))
            parts.append(extract_features(ds.audio(sel, progress=False), cfg, progress=False).numpy())
        return {"features": np.concatenate(parts).astype(np.float32)}

    return torch.from_numpy(cache.get_or_compute(key, compute)["features"])


# ====================================================================================== baseline
def mfcc_stats_baseline(features: torch.Tensor, labels: torch.Tensor, train_idx, test_idx, epochs: int = 300,
                        lr: float = 0.05, weight_decay: float = 1e-3, seed: int = 0) -> float:
    """Test accuracy of multinomial logistic regression on per-clip mean and std of each feature
    (full-batch Adam, standardised inputs): the simple baseline used to judge task hardness."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops: extra OpenMP threads only spin on a busy CPU
    try:
        return _logreg(features, labels, train_idx, test_idx, epochs, lr, weight_decay, seed)
    finally:
        torch.set_num_threads(threads)


def _logreg(features, labels, train_idx, test_idx, epochs, lr, weight_decay, seed) -> float:
    x = torch.cat([features.mean(1), features.std(1)], 1).double()
    tr, te = torch.as_tensor(train_idx), torch.as_tensor(test_idx)
    mu, sd = x[tr].mean(0), x[tr].std(0).clamp_min(1e-8)
    x = (x - mu) / sd
    g = torch.Generator().manual_seed(seed)
    n_cls = int(labels.max()) + 1
    w = (0.01 * torch.randn(x.shape[1], n_cls, generator=g, dtype=torch.float64)).requires_grad_()
    b = torch.zeros(n_cls, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=lr, weight_decay=weight_decay)
    for _ in range(epochs):
        loss = torch.nn.functional.cross_entropy(x[tr] @ w + b, labels[tr])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return float(((x[te] @ w + b).argmax(1) == labels[te]).double().mean())
