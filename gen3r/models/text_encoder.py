"""umT5 text encoder: transformers ``UMT5EncoderModel`` loaded from the official ``text_encoder/`` folder.

The official checkpoint is Wan's own T5 encoder (``WanT5EncoderModel``) with Wan names and a Wan
``config.json`` (``vocab, dim, dim_attn, dim_ffn, num_heads, num_layers, num_buckets, shared_pos``).
Numerically it is umT5: RMS norms (eps 1e-6), no attention scaling, a per-layer bidirectional
relative-position bias (32 buckets, max distance 128), gated FFN ``fc1(x) * gelu_tanh(gate(x))``,
final RMS norm. transformers' ``UMT5EncoderModel`` with ``feed_forward_proj="gated-gelu"`` computes
the same (``docs/models/encoders.md``). Keys are renamed with :data:`_GLOBAL_KEYS` / :data:`_BLOCK_KEYS`.

Prompts are encoded as in the official pipeline: padded to 512 tokens, run with the attention mask,
trimmed to the true length (including EOS); :func:`pad_prompt_embeds` zero-pads them back to 512.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase, UMT5Config, UMT5EncoderModel

from gen3r.errors import CheckpointError, Gen3RError
from gen3r.models._loading import load_strict, read_config_json, read_weights_dir, restore_unsaved_state

logger = logging.getLogger(__name__)

__all__ = [
    "TEXT_LEN",
    "build_word_tokenizer",
    "encode_prompt",
    "encode_token_ids",
    "from_official_state_dict",
    "load_official_text_encoder",
    "load_tokenizer",
    "pad_prompt_embeds",
    "to_official_state_dict",
    "umt5_config_from_official",
]

COMPONENT = "text_encoder"
#: Text context length of the DiT (official ``text_len`` and tokenizer ``max_length``).
TEXT_LEN = 512
#: Relative-position bias range of Wan's ``T5RelativeEmbedding`` (hard-coded ``max_dist=128``).
MAX_DISTANCE = 128

#: Official Wan T5 config keys (``WanT5EncoderModel.__init__``) and what they become in ``UMT5Config``.
_OFFICIAL_CONFIG_KEYS = ("vocab", "dim", "dim_attn", "dim_ffn", "num_heads", "num_layers", "num_buckets",
                         "shared_pos", "dropout")
#: Full-size Wan umT5-XXL encoder config (gen3r.yaml ``text_encoder_kwargs``).
OFFICIAL_CONFIG: dict[str, Any] = {
    "vocab": 256384, "dim": 4096, "dim_attn": 4096, "dim_ffn": 10240, "num_heads": 64,
    "num_layers": 24, "num_buckets": 32, "shared_pos": False,
}

# --- key tables (official Wan name -> transformers name) ------------------------------------------
#: Keys outside the blocks. The token embedding is tied: it fills both ``shared`` and
#: ``encoder.embed_tokens`` (one tensor).
_GLOBAL_KEYS: dict[str, tuple[str, ...]] = {
    "token_embedding.weight": ("shared.weight", "encoder.embed_tokens.weight"),
    "norm.weight": ("encoder.final_layer_norm.weight",),
}
#: Per block ``i``: ``blocks.{i}.<official>`` -> ``encoder.block.{i}.<ours>``.
_BLOCK_KEYS: dict[str, str] = {
    "norm1.weight": "layer.0.layer_norm.weight",
    "attn.q.weight": "layer.0.SelfAttention.q.weight",
    "attn.k.weight": "layer.0.SelfAttention.k.weight",
    "attn.v.weight": "layer.0.SelfAttention.v.weight",
    "attn.o.weight": "layer.0.SelfAttention.o.weight",
    "pos_embedding.embedding.weight": "layer.0.SelfAttention.relative_attention_bias.weight",
    "norm2.weight": "layer.1.layer_norm.weight",
    "ffn.gate.0.weight": "layer.1.DenseReluDense.wi_0.weight",  # the GELU(tanh) branch
    "ffn.fc1.weight": "layer.1.DenseReluDense.wi_1.weight",  # the linear branch
    "ffn.fc2.weight": "layer.1.DenseReluDense.wo.weight",
}
_OFFICIAL_BLOCK = re.compile(r"^blocks\.(\d+)\.(.+)$")
_OUR_BLOCK = re.compile(r"^encoder\.block\.(\d+)\.(.+)$")


def from_official_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Convert official Wan T5 encoder weights to ``UMT5EncoderModel`` names."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key in _GLOBAL_KEYS:
            out.update({ours: value for ours in _GLOBAL_KEYS[key]})
            continue
        match = _OFFICIAL_BLOCK.match(key)
        if match is None or match.group(2) not in _BLOCK_KEYS:
            raise CheckpointError(f"{COMPONENT}: unexpected key {key!r}; expected a Wan umT5 encoder checkpoint "
                                  "with per-layer position bias (shared_pos false)")
        out[f"encoder.block.{match.group(1)}.{_BLOCK_KEYS[match.group(2)]}"] = value
    return out


def to_official_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Convert ``UMT5EncoderModel`` weights to the official Wan names (``encoder.embed_tokens`` = tied copy)."""
    inverse_global = {ours[0]: official for official, ours in _GLOBAL_KEYS.items()}
    tied = {ours for names in _GLOBAL_KEYS.values() for ours in names[1:]}
    inverse_block = {v: k for k, v in _BLOCK_KEYS.items()}
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key in tied:
            continue
        if key in inverse_global:
            out[inverse_global[key]] = value
            continue
        match = _OUR_BLOCK.match(key)
        if match is None or match.group(2) not in inverse_block:
            raise CheckpointError(f"{COMPONENT}: key {key!r} is not part of a UMT5 encoder")
        out[f"blocks.{match.group(1)}.{inverse_block[match.group(2)]}"] = value
    return out


# --- construction and loading --------------------------------------------------------------------
def umt5_config_from_official(config: Mapping[str, Any]) -> UMT5Config:
    """Translate an official Wan T5 ``config.json`` (or :data:`OFFICIAL_CONFIG`) into a ``UMT5Config``."""
    cfg = {k: v for k, v in config.items() if k in _OFFICIAL_CONFIG_KEYS}
    missing = [k for k in _OFFICIAL_CONFIG_KEYS[:7] if k not in cfg]
    if missing:
        raise CheckpointError(f"{COMPONENT} config lacks {missing}; expected a Wan T5 config.json")
    if cfg.get("shared_pos", True):
        raise CheckpointError(f"{COMPONENT}: shared_pos=true (one position bias for all layers) is not umT5; "
                              "only the Wan umT5 encoder (shared_pos false) is supported")
    if cfg["dim_attn"] % cfg["num_heads"]:
        raise CheckpointError(f"{COMPONENT}: dim_attn {cfg['dim_attn']} is not divisible by "
                              f"num_heads {cfg['num_heads']}")
    return UMT5Config(
        vocab_size=cfg["vocab"], d_model=cfg["dim"], d_kv=cfg["dim_attn"] // cfg["num_heads"],
        d_ff=cfg["dim_ffn"], num_layers=cfg["num_layers"], num_heads=cfg["num_heads"],
        relative_attention_num_buckets=cfg["num_buckets"], relative_attention_max_distance=MAX_DISTANCE,
        feed_forward_proj="gated-gelu",  # gelu_new = GELU with the tanh approximation, as Wan's GELU
        layer_norm_epsilon=1e-6, dropout_rate=0.0, is_encoder_decoder=False, use_cache=False,
    )


def load_official_text_encoder(folder: str | Path, torch_dtype: torch.dtype | None = None) -> UMT5EncoderModel:
    """Load the official ``text_encoder/`` folder (config.json + all ``*.safetensors`` shards) strictly.

    ``torch_dtype`` defaults to float32. The model is built on the meta device and the checkpoint
    tensors are assigned, so peak memory is about one copy of the weights.
    """
    folder = Path(folder)
    config = umt5_config_from_official(read_config_json(folder / "config.json", COMPONENT))
    dtype = torch_dtype or torch.float32
    official = read_weights_dir(folder, dtype=dtype)  # cast while reading: peak ~ one cast copy
    state_dict = from_official_state_dict(official)
    with torch.device("meta"):
        model = UMT5EncoderModel(config)
    load_strict(model, state_dict, COMPONENT, assign=True)
    restore_unsaved_state(model)  # re-tie the input embedding after assignment
    logger.info("loaded %s from %s (%d layers, d_model %d, %s)", COMPONENT, folder, config.num_layers,
                config.d_model, dtype)
    return model.eval()


def load_tokenizer(folder: str | Path) -> PreTrainedTokenizerBase:
    """Load the umT5 tokenizer from the checkpoint's ``tokenizer/`` folder (local files only)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"tokenizer folder {folder} does not exist; point to the checkpoint's tokenizer/")
    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot load the tokenizer from {folder} ({exc}); re-download the checkpoint") \
            from exc


def build_word_tokenizer(words: Sequence[str]) -> PreTrainedTokenizerBase:
    """A small umT5-style tokenizer (``T5TokenizerFast``) whose pieces are whole ``words``.

    A SentencePiece-like Unigram model: ``<pad>`` = 0, ``</s>`` = 1, ``<unk>`` = 2, then ``▁word``
    for every word in lower case and capitalised (most likely), single characters as the fallback
    for unknown words, whitespace + Metaspace pre-tokenisation and ``</s>`` appended; no normaliser
    (transformers' T5 tokenizer rebuilds its pipeline without one when it loads, so this is what a
    saved copy does too). Used by the mini model, whose prompts are the captions of procedural scenes.
    """
    from tokenizers import Tokenizer, decoders, pre_tokenizers, processors
    from tokenizers.models import Unigram
    from transformers import T5Tokenizer  # T5TokenizerFast is an alias of it in transformers 5

    words = sorted({form for w in words if w.strip() for form in (w.lower(), w.lower().capitalize())})
    chars = sorted({c for w in words for c in w} | set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                        "0123456789,.-'"))
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    vocab += [("\u2581" + w, -1.0) for w in words]
    vocab += [(c, -10.0) for c in chars]
    model = Tokenizer(Unigram(vocab, unk_id=2, byte_fallback=False))
    model.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")])
    model.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    model.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                         special_tokens=[("</s>", 1)])
    return T5Tokenizer(tokenizer_object=model, eos_token="</s>", unk_token="<unk>", pad_token="<pad>", extra_ids=0)


# --- encoding ------------------------------------------------------------------------------------
def encode_token_ids(text_encoder: UMT5EncoderModel, input_ids: torch.Tensor,
                     attention_mask: torch.Tensor) -> list[torch.Tensor]:
    """Run the encoder on padded ids (B, L) with their mask; return one (len_i, D) tensor per prompt.

    ``len_i`` is the number of non-pad tokens (incl. EOS); padded positions are dropped.
    """
    if input_ids.ndim != 2 or input_ids.shape != attention_mask.shape:
        raise Gen3RError(f"input_ids and attention_mask must both be (B, L), got {tuple(input_ids.shape)} "
                         f"and {tuple(attention_mask.shape)}")
    device = text_encoder.device
    hidden = text_encoder(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)).last_hidden_state
    lengths = attention_mask.gt(0).sum(dim=1).tolist()
    return [h[:n] for h, n in zip(hidden, lengths)]


def encode_prompt(tokenizer: PreTrainedTokenizerBase, text_encoder: UMT5EncoderModel, prompts: Sequence[str],
                  max_length: int = TEXT_LEN, device: torch.device | str | None = None,
                  dtype: torch.dtype | None = None) -> list[torch.Tensor]:
    """Tokenise (pad to ``max_length``, truncate, EOS appended), encode, trim each to its true length.

    Returns a list of (len_i, D) tensors on ``device`` (default: the encoder's) in ``dtype``
    (default: the encoder's).
    """
    if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
        raise Gen3RError("prompts must be a list of strings")
    tokens = tokenizer(list(prompts), padding="max_length", max_length=max_length, truncation=True,
                       add_special_tokens=True, return_attention_mask=True, return_tensors="pt")
    embeds = encode_token_ids(text_encoder, tokens.input_ids, tokens.attention_mask)
    device = device if device is not None else text_encoder.device
    dtype = dtype or text_encoder.dtype
    return [e.to(device=device, dtype=dtype) for e in embeds]


def pad_prompt_embeds(embeds: Sequence[torch.Tensor], length: int = TEXT_LEN) -> torch.Tensor:
    """Zero-pad trimmed prompt embeddings to (B, length, D), as the official DiT does with its context."""
    if not embeds:
        raise Gen3RError("pad_prompt_embeds needs at least one prompt embedding")
    too_long = [e.shape[0] for e in embeds if e.shape[0] > length]
    if too_long:
        raise Gen3RError(f"prompt embeddings longer than {length} tokens: {too_long}; truncate the prompts")
    return torch.stack([torch.cat([e, e.new_zeros(length - e.shape[0], e.shape[1])]) for e in embeds])
