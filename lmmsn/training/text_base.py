"""Stage 0 of the demo model: a small LLaMA and its BPE text tokenizer, trained from scratch on corpus text.

The paper starts from Vicuna-7B; the CPU demo cannot, so it first trains its own
small base on the text the later stages use, then applies the paper's recipes
unchanged on top of it (`recipes/pretrain_llm.py`, `recipes/finetune_llm.py`):

1. Text corpus (`corpus_documents`): from the training side's manifest rows only
   (never held-out rows): every caption and transcript as a plain document, and
   text-only Vicuna v1.1 renders (`lmmsn.llm.prompts.render_chat`, system prompt
   included) of each row's instruction dialogues (`lmmsn.llm.instructions`), the
   `<audio>` placeholders left out, plus the generation requests cut at
   "ASSISTANT:". So the system prompt, the chat template and every phrasing of
   the fine-tuning data are in-vocabulary and already modelled.
2. Text tokenizer (`train_text_tokenizer`): BPE trained with the `tokenizers`
   library, Llama-style: a SentencePiece-like Metaspace pre-tokenizer ("▁A",
   prepend_scheme "first", as transformers converts Llama 2 with legacy=False),
   byte fallback (characters outside the kept alphabet are spelled as the
   `<0x00>`...`<0xFF>` pieces, so any text, e.g. an unseen script in a
   transcript, round-trips), ids laid out as SentencePiece's Llama:
   `<unk>` 0, `<s>` 1, `</s>` 2, `<pad>` 3, the 256 byte pieces, then the merges'
   pieces; `<s>` is added in front of every text.
3. Model: `transformers.LlamaForCausalLM` from a `LlamaConfig` of `TextModelConfig`
   (untied input/output embeddings, as Vicuna), random init (transformers'
   `_init_weights`, normal std 0.02), trained on all tokens of the documents with
   next-token cross-entropy (Lightning, AdamW, warm-up + cosine).
4. Export: `<output_dir>/export` is a plain Hugging Face directory
   (`save_pretrained` of model and `PreTrainedTokenizerFast`) that
   `AudioLM.from_base` (and `AutoModelForCausalLM`) loads like any hub model.

`recipes/train_text_base.py` is the command line over `run(config)`.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch

from lmmsn.training.common import (
    OptimConfig,
    RunConfig,
    RunResult,
    TrainerConfig,
    TrainingModule,
    build_trainer,
    fit,
    recipe_main,
)

logger = logging.getLogger(__name__)

SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>")
"Llama's three special tokens plus a padding token, ids 0-3."
BYTE_TOKENS = tuple(f"<0x{b:02X}>" for b in range(256))
"SentencePiece's byte-fallback pieces, ids 4-259."
EXPORT_INFO = "text_base.json"
"Written beside the HF files of the export: corpus size, steps, final losses."


# ---- config -------------------------------------------------------------------------------------


@dataclass
class TextTokenizerConfig:
    """The BPE text tokenizer."""

    vocab_size: int = 4000
    "Total vocabulary: 4 special + 256 byte pieces + alphabet + merges (the trainer may stop earlier)."
    min_frequency: int = 2
    "A merge needs a pair seen this often."
    limit_alphabet: int = 400
    "Most frequent characters kept as pieces; rarer ones are spelled in byte pieces."

    def __post_init__(self) -> None:
        if self.vocab_size < len(SPECIAL_TOKENS) + len(BYTE_TOKENS) + 1:
            raise ValueError(f"vocab_size must exceed {len(SPECIAL_TOKENS) + len(BYTE_TOKENS)} (specials + bytes)")


@dataclass
class TextModelConfig:
    """Shape of the LLaMA (fields of `transformers.LlamaConfig`)."""

    hidden_size: int = 256
    "Model width."
    num_hidden_layers: int = 4
    "Decoder layers."
    num_attention_heads: int = 4
    "Attention heads."
    num_key_value_heads: int = 4
    "Key/value heads (fewer: grouped-query attention)."
    intermediate_size: int = 768
    "SwiGLU MLP width."
    max_position_embeddings: int = 1024
    "Longest sequence (audio spans of the later stages included: 10 s = 215 tokens)."
    rope_theta: float = 10000.0
    "RoPE base."

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_attention_heads or self.num_attention_heads % self.num_key_value_heads:
            raise ValueError("hidden_size must divide by num_attention_heads, and those by num_key_value_heads")


@dataclass
class TextCorpusConfig:
    """Which text the base trains on, and how it is batched."""

    manifests: list[str] = field(default_factory=lambda: ["data/corpus-split/train.jsonl"])
    "JSON-lines manifests of the TRAINING side (caption, category, label, transcript per row); never held-out rows."
    chat_renders: int = 2
    "Text-only chat renders per row (each draws its dialogues' phrasings anew)."
    val_fraction: float = 0.02
    "Documents held out of training for the validation loss (by a seeded draw)."
    max_length: int = 192
    "Longest document in tokens (longer ones are cut)."
    batch_size: int = 32
    "Documents per batch."

    def __post_init__(self) -> None:
        if not self.manifests:
            raise ValueError("corpus.manifests needs at least one manifest")
        if self.chat_renders < 0 or not 0.0 <= self.val_fraction < 0.5 or self.max_length < 8 or self.batch_size < 1:
            raise ValueError("chat_renders >= 0, val_fraction in [0, 0.5), max_length >= 8 and batch_size >= 1 required")


@dataclass
class TextBaseConfig(RunConfig):
    """Config of `recipes/train_text_base.py` (shared fields: `lmmsn.training.common.RunConfig`)."""

    output_dir: str = "runs/demo/text_base"
    "Run directory: config, text tokenizer, checkpoints, logs, export."
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=2e-3, betas=(0.9, 0.95), weight_decay=0.1,
                                                                   warmup_steps=100, min_lr_ratio=0.1))
    "AdamW + warm-up/cosine."
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(max_steps=1500, log_every_n_steps=25,
                                                                         val_every_n_steps=500))
    "Trainer."
    tokenizer: TextTokenizerConfig = field(default_factory=TextTokenizerConfig)
    "Text tokenizer."
    model: TextModelConfig = field(default_factory=TextModelConfig)
    "Model shape."
    corpus: TextCorpusConfig = field(default_factory=TextCorpusConfig)
    "Training text and batching."


# ---- corpus -------------------------------------------------------------------------------------


def read_manifest_rows(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """JSON-lines rows of every manifest (bad lines are an error naming file and line)."""
    rows = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"text corpus manifest {path} does not exist")
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise ValueError(f"{path} line {n}: not JSON ({exc})") from exc
            if not isinstance(row, dict):
                raise ValueError(f"{path} line {n}: expected a JSON object")
            rows.append(row)
    if not rows:
        raise ValueError(f"no rows in {list(map(str, paths))}")
    return rows


def _strip_audio(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    from lmmsn.llm.prompts import AUDIO_PLACEHOLDER

    return [{**m, "content": m["content"].replace(AUDIO_PLACEHOLDER + "\n", "").replace(AUDIO_PLACEHOLDER, "")}
            for m in messages]


def corpus_documents(rows: Iterable[dict[str, Any]], chat_renders: int, seed: int) -> list[str]:
    """The stage-0 documents of manifest rows (module docstring, step 1), each ending in `</s>` when complete.

    Rows without any text are skipped. Deterministic for a given row order and seed.
    """
    from lmmsn.llm.instructions import clip_dialogues
    from lmmsn.llm.prompts import ASSISTANT_ROLE, AUDIO_PLACEHOLDER, EOS_TEXT, render_chat

    rng = random.Random(seed)
    docs: list[str] = []
    for row in rows:
        for key in ("caption", "transcript"):
            value = row.get(key)
            if isinstance(value, str) and value.strip():
                docs.append(value.strip() + EOS_TEXT)
        for _ in range(chat_renders):
            for dialogue in clip_dialogues(row, rng):
                if dialogue[-1]["content"] == AUDIO_PLACEHOLDER:  # a generation request: the audio is not text
                    docs.append(render_chat(_strip_audio(dialogue[:1]), add_generation_prompt=True).text)
                    continue
                text = render_chat(_strip_audio(dialogue), add_generation_prompt=False).text
                assert ASSISTANT_ROLE in text
                docs.append(text)
    return docs


# ---- tokenizer ----------------------------------------------------------------------------------


def train_text_tokenizer(texts: Iterable[str], config: TextTokenizerConfig):
    """A Llama-style BPE `PreTrainedTokenizerFast` trained on `texts` (module docstring, step 2)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    metaspace = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    draft = Tokenizer(models.BPE(unk_token="<unk>"))
    draft.pre_tokenizer = metaspace
    reserved = len(SPECIAL_TOKENS) + len(BYTE_TOKENS)
    trainer = trainers.BpeTrainer(vocab_size=config.vocab_size - reserved + len(SPECIAL_TOKENS),
                                  min_frequency=config.min_frequency, special_tokens=list(SPECIAL_TOKENS),
                                  limit_alphabet=config.limit_alphabet, initial_alphabet=["▁"], show_progress=False)
    # "</s>" inside documents is the eos token, not text to learn merges from
    draft.train_from_iterator((t.replace("</s>", " ") for t in texts), trainer=trainer)
    learned = json.loads(draft.to_str())["model"]
    # SentencePiece's Llama layout: specials, the 256 byte pieces, then the learned pieces in their order
    pieces = [p for p, _ in sorted(learned["vocab"].items(), key=lambda kv: kv[1]) if p not in SPECIAL_TOKENS]
    vocab = {p: i for i, p in enumerate([*SPECIAL_TOKENS, *BYTE_TOKENS, *pieces])}
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in learned["merges"]]
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tokenizer.pre_tokenizer = metaspace
    tokenizer.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                           decoders.Strip(" ", 1, 0)])
    tokenizer.add_special_tokens(list(SPECIAL_TOKENS))
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B",
                                                             special_tokens=[("<s>", vocab["<s>"])])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>", model_max_length=4096)


# ---- model and data -----------------------------------------------------------------------------


def build_model(config: TextModelConfig, tokenizer: Any, seed: int = 0):
    """A randomly initialised `LlamaForCausalLM` for `tokenizer`'s vocabulary."""
    from transformers import LlamaConfig, LlamaForCausalLM

    llama = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=config.hidden_size, num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads, num_key_value_heads=config.num_key_value_heads,
        intermediate_size=config.intermediate_size, max_position_embeddings=config.max_position_embeddings,
        rope_theta=config.rope_theta, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return LlamaForCausalLM(llama)


def encode_documents(docs: Sequence[str], tokenizer: Any, max_length: int) -> list[torch.Tensor]:
    """Token ids [L] (with `<s>`) of each document, cut to `max_length`."""
    ids = tokenizer(list(docs), add_special_tokens=True, truncation=True, max_length=max_length)["input_ids"]
    return [torch.tensor(i, dtype=torch.long) for i in ids]


class DocumentBatches(torch.utils.data.IterableDataset):
    """Endless padded batches of documents, in a new seeded order every pass (labels: IGNORE on padding).

    `skip` drops the first batches of the stream (an exact resume after that many steps).
    """

    def __init__(self, docs: Sequence[torch.Tensor], batch_size: int, pad_id: int, seed: int = 0, skip: int = 0) -> None:
        super().__init__()
        if len(docs) < batch_size:
            raise ValueError(f"{len(docs)} documents cannot fill a batch of {batch_size}")
        self.docs, self.batch_size, self.pad_id, self.seed, self.skip = list(docs), batch_size, pad_id, seed, skip

    def __iter__(self):
        epoch, n = 0, 0
        while True:
            order = list(range(len(self.docs)))
            random.Random(f"{self.seed}-{epoch}").shuffle(order)
            for start in range(0, len(order) - self.batch_size + 1, self.batch_size):
                if n >= self.skip:
                    yield _collate([self.docs[i] for i in order[start : start + self.batch_size]], self.pad_id)
                n += 1
            epoch += 1


def _collate(docs: Sequence[torch.Tensor], pad_id: int) -> dict[str, torch.Tensor]:
    from lmmsn.llm.data import collate
    from lmmsn.llm.prompts import Example

    return collate([Example(d, d) for d in docs], pad_id)


class TextBaseModule(TrainingModule):
    """Next-token cross-entropy on every document token (transformers' shifted loss); exports the HF directory.

    AdamW + warm-up/cosine and the RNG states in checkpoints come from the shared `TrainingModule`.
    """

    def __init__(self, model: torch.nn.Module, tokenizer: Any, config: TextBaseConfig, info: dict[str, Any]) -> None:
        super().__init__()
        self.model, self.tokenizer, self.config, self.info = model, tokenizer, config, info
        self.restored_step = 0

    def _loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                          labels=batch["labels"], use_cache=False).loss

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["input_ids"].shape[0])
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log("val/loss", loss, prog_bar=True, batch_size=batch["input_ids"].shape[0])
        return loss

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        self.restored_step = int(checkpoint.get("global_step", 0))

    def export(self, directory: Path, checkpoint: Path) -> Path:
        """The plain HF directory (model + tokenizer) and `text_base.json` (corpus size, steps, metrics)."""
        self.model.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)
        metrics = {k: float(v) for k, v in self.trainer.callback_metrics.items()}
        info = {**self.info, "steps": self.trainer.global_step,
                "parameters": sum(p.numel() for p in self.model.parameters()), "metrics": metrics}
        (directory / EXPORT_INFO).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        return directory


class TextDataModule(L.LightningDataModule):
    """Training batches (resumed at the restored step) and the validation documents."""

    def __init__(self, train: Sequence[torch.Tensor], val: Sequence[torch.Tensor], batch_size: int, pad_id: int,
                 seed: int) -> None:
        super().__init__()
        self.train, self.val, self.batch_size, self.pad_id, self.seed = train, val, batch_size, pad_id, seed

    def train_dataloader(self) -> torch.utils.data.DataLoader:
        module = self.trainer.lightning_module
        skip = module.restored_step if isinstance(module, TextBaseModule) else 0
        batches = DocumentBatches(self.train, self.batch_size, self.pad_id, self.seed, skip=skip)
        return torch.utils.data.DataLoader(batches, batch_size=None)

    def val_dataloader(self) -> torch.utils.data.DataLoader:
        docs = self.val
        batches = [_collate(docs[i : i + self.batch_size], self.pad_id) for i in range(0, len(docs), self.batch_size)]
        return torch.utils.data.DataLoader(batches, batch_size=None)


# ---- runner -------------------------------------------------------------------------------------


def text_tokenizer(cfg: TextBaseConfig, docs: Sequence[str]) -> Any:
    """The run's text tokenizer: trained once and kept in <output_dir>/text_tokenizer (a resumed run reuses it)."""
    from transformers import PreTrainedTokenizerFast

    path = Path(cfg.output_dir) / "text_tokenizer"
    if (path / "tokenizer.json").is_file():
        return PreTrainedTokenizerFast.from_pretrained(str(path))
    tokenizer = train_text_tokenizer(docs, cfg.tokenizer)
    tokenizer.save_pretrained(str(path))
    return tokenizer


def run(cfg: TextBaseConfig) -> RunResult:
    """Build the corpus and text tokenizer, train (resuming as `cfg.resume` says), export."""
    from lmmsn.seeding import seed_everything

    seed_everything(cfg.seed)
    rows = read_manifest_rows(cfg.corpus.manifests)
    docs = corpus_documents(rows, cfg.corpus.chat_renders, cfg.seed)
    tokenizer = text_tokenizer(cfg, docs)
    ids = encode_documents(docs, tokenizer, cfg.corpus.max_length)
    order = list(range(len(ids)))
    random.Random(cfg.seed).shuffle(order)
    n_val = int(len(ids) * cfg.corpus.val_fraction)
    val, train = [ids[i] for i in order[:n_val]], [ids[i] for i in order[n_val:]]
    tokens = sum(len(d) for d in train)
    info = {"rows": len(rows), "documents": len(docs), "train_documents": len(train), "val_documents": len(val),
            "train_tokens": tokens, "text_tokens": len(tokenizer)}
    logger.info("text base corpus: %s", info)
    module = TextBaseModule(build_model(cfg.model, tokenizer, cfg.seed), tokenizer, cfg, info)
    data = TextDataModule(train, val, cfg.corpus.batch_size, tokenizer.pad_token_id, cfg.seed)
    return fit(build_trainer(cfg, validate=bool(val)), module, cfg, datamodule=data)


def recipe(argv: Sequence[str] | None = None, description: str | None = None) -> int:
    """Command line of `recipes/train_text_base.py`: `--config FILE [key=value ...]`."""

    def train(config: TextBaseConfig) -> int:
        print(f"export: {run(config).export}")
        return 0

    return recipe_main(argv, TextBaseConfig, train, description)


__all__ = [
    "BYTE_TOKENS",
    "SPECIAL_TOKENS",
    "DocumentBatches",
    "TextBaseConfig",
    "TextBaseModule",
    "TextCorpusConfig",
    "TextDataModule",
    "TextModelConfig",
    "TextTokenizerConfig",
    "build_model",
    "corpus_documents",
    "encode_documents",
    "read_manifest_rows",
    "run",
    "recipe",
    "text_tokenizer",
    "train_text_tokenizer",
]
