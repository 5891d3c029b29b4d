"""umT5 text encoder (transformers UMT5EncoderModel) loaded from the official layout."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file
from transformers import UMT5EncoderModel

from gen3r.errors import CheckpointError, Gen3RError
from gen3r.models.text_encoder import (
    OFFICIAL_CONFIG,
    TEXT_LEN,
    encode_prompt,
    encode_token_ids,
    from_official_state_dict,
    load_official_text_encoder,
    load_tokenizer,
    pad_prompt_embeds,
    to_official_state_dict,
    umt5_config_from_official,
)
from tests._tiny import (
    TINY,
    TINY_CHECKPOINT,
    WEIGHTS,
    official_manifest,
    rel_err,
    write_component_variant,
    write_sharded_component,
)

TE_DIR = TINY_CHECKPOINT / "text_encoder"
TOKENIZER_DIR = TINY_CHECKPOINT / "tokenizer"
MAX_REL = 1e-4


@pytest.fixture(scope="module")
def meta() -> dict:
    return json.loads((TINY / "meta.json").read_text())["call"]


@pytest.fixture(scope="module")
def encoder() -> UMT5EncoderModel:
    return load_official_text_encoder(TE_DIR)


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(TOKENIZER_DIR)


# --- parity with the official outputs ------------------------------------------------------------
def test_stored_ids_give_official_embeddings(encoder, tiny_inputs, tiny_stages):
    with torch.no_grad():
        pos, neg = (encode_token_ids(encoder, tiny_inputs[f"{name}_input_ids"],
                                     tiny_inputs[f"{name}_attention_mask"])[0] for name in ("prompt", "negative"))
    assert pos.shape == tiny_stages["text_prompt_embeds"].shape == (15, 32)
    assert neg.shape == tiny_stages["text_negative_prompt_embeds"].shape == (3, 32)
    assert rel_err(pos, tiny_stages["text_prompt_embeds"]) <= MAX_REL
    assert rel_err(neg, tiny_stages["text_negative_prompt_embeds"]) <= MAX_REL


def test_untrimmed_output_matches_official(encoder, tiny_inputs, tiny_stages):
    with torch.no_grad():
        out = encoder(input_ids=tiny_inputs["prompt_input_ids"],
                      attention_mask=tiny_inputs["prompt_attention_mask"]).last_hidden_state[0]
    assert out.shape == (TEXT_LEN, 32)
    assert rel_err(out, tiny_stages["text_prompt_embeds_untrimmed_512"]) <= MAX_REL


def test_tokenizer_reproduces_stored_ids(tokenizer, tiny_inputs, meta):
    tokens = tokenizer([meta["prompt"], meta["negative_prompt"]], padding="max_length", max_length=TEXT_LEN,
                       truncation=True, return_tensors="pt")
    assert torch.equal(tokens.input_ids[:1], tiny_inputs["prompt_input_ids"])
    assert torch.equal(tokens.input_ids[1:], tiny_inputs["negative_input_ids"])
    assert torch.equal(tokens.attention_mask[:1], tiny_inputs["prompt_attention_mask"])
    assert torch.equal(tokens.attention_mask[1:], tiny_inputs["negative_attention_mask"])


def test_encode_prompt_from_strings_matches_official(tokenizer, encoder, tiny_stages, meta):
    with torch.no_grad():
        pos, neg = encode_prompt(tokenizer, encoder, [meta["prompt"], meta["negative_prompt"]])
    assert rel_err(pos, tiny_stages["text_prompt_embeds"]) <= MAX_REL
    assert rel_err(neg, tiny_stages["text_negative_prompt_embeds"]) <= MAX_REL
    padded = pad_prompt_embeds([pos, neg])
    assert padded.shape == (2, TEXT_LEN, 32)
    assert torch.equal(padded[0, :15], pos) and torch.equal(padded[1, :3], neg)
    assert not padded[0, 15:].any() and not padded[1, 3:].any()


def test_encode_prompt_dtype_and_bad_input(tokenizer, encoder):
    with torch.no_grad():
        (out,) = encode_prompt(tokenizer, encoder, ["bad detailed"], dtype=torch.bfloat16)
    assert out.dtype == torch.bfloat16 and out.shape == (3, 32)
    with pytest.raises(Gen3RError, match="list of strings"):
        encode_prompt(tokenizer, encoder, "bad detailed")
    with pytest.raises(Gen3RError, match="longer than 4"):
        pad_prompt_embeds([torch.zeros(5, 2)], length=4)
    with pytest.raises(Gen3RError, match=r"\(B, L\)"):
        encode_token_ids(encoder, torch.zeros(1, 4, dtype=torch.long), torch.ones(1, 3, dtype=torch.long))


# --- numerics the conversion relies on ------------------------------------------------------------
def test_umt5_numerics_match_wan_t5(encoder):
    cfg = encoder.config
    assert cfg.dense_act_fn == "gelu_new" and cfg.is_gated_act  # fc1(x) * gelu_tanh(gate(x))
    assert cfg.relative_attention_num_buckets == 32 and cfg.relative_attention_max_distance == 128
    assert cfg.layer_norm_epsilon == 1e-6
    attn = encoder.encoder.block[1].layer[0].SelfAttention
    assert attn.scaling == 1.0  # T5: no 1/sqrt(d) scaling
    assert all(b.layer[0].SelfAttention.has_relative_attention_bias for b in encoder.encoder.block)  # per layer
    # Wan's bidirectional bucket formula (T5RelativeEmbedding._relative_position_bucket), computed here
    rel = torch.arange(-300, 301)
    half, exact = 16, 8
    mag = rel.abs()
    large = exact + (torch.log(mag.float() / exact) / math.log(128 / exact) * (half - exact)).long()
    wan = (rel > 0).long() * half + torch.where(mag < exact, mag, large.clamp(max=half - 1))
    assert torch.equal(attn._relative_position_bucket(rel), wan)


def test_tied_embedding_after_load(encoder):
    assert encoder.encoder.embed_tokens.weight is encoder.shared.weight


# --- key tables ----------------------------------------------------------------------------------
def test_official_round_trip_is_identity():
    official = load_file(str(TE_DIR / WEIGHTS))
    back = to_official_state_dict(from_official_state_dict(official))
    assert set(back) == set(official) and all(back[k] is official[k] for k in official)


def test_official_config_is_the_released_one():
    """(The full-size key set: tests/models/test_loading_contract.py.)"""
    manifest = official_manifest("text_encoder")
    assert {k: manifest["config"][k] for k in OFFICIAL_CONFIG} == OFFICIAL_CONFIG
    assert manifest["num_tensors"] == 242


def test_shared_position_bias_config_is_rejected():
    with pytest.raises(CheckpointError, match="shared_pos"):
        umt5_config_from_official({**OFFICIAL_CONFIG, "shared_pos": True})
    with pytest.raises(CheckpointError, match="lacks"):
        umt5_config_from_official({"dim": 4})


# --- loading: shards, strictness, bad folders -----------------------------------------------------
def _write_variant(tmp_path, edit=None):
    return write_component_variant(tmp_path, TE_DIR, WEIGHTS, edit)


def test_sharded_folder_loads_like_single_file(tmp_path, encoder, tiny_inputs):
    shards = [f"diffusion_pytorch_model-0000{i}-of-00002.safetensors" for i in (1, 2)]
    folder = write_sharded_component(tmp_path, TE_DIR, WEIGHTS, shards)
    sharded = load_official_text_encoder(folder)
    ids, mask = tiny_inputs["prompt_input_ids"], tiny_inputs["prompt_attention_mask"]
    with torch.no_grad():
        torch.testing.assert_close(encode_token_ids(sharded, ids, mask)[0], encode_token_ids(encoder, ids, mask)[0],
                                   rtol=0, atol=0)


def test_missing_config_and_tokenizer_raise(tmp_path):
    folder = _write_variant(tmp_path)
    (folder / "config.json").unlink()
    with pytest.raises(CheckpointError, match="config.json"):
        load_official_text_encoder(folder)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_tokenizer(tmp_path / "no_tokenizer")


# --- transformers round trip ---------------------------------------------------------------------
def test_save_pretrained_round_trip(tmp_path, encoder, tiny_inputs):
    encoder.save_pretrained(tmp_path / "te")
    again = UMT5EncoderModel.from_pretrained(tmp_path / "te", local_files_only=True)
    ids, mask = tiny_inputs["prompt_input_ids"], tiny_inputs["prompt_attention_mask"]
    with torch.no_grad():
        torch.testing.assert_close(encode_token_ids(again, ids, mask)[0], encode_token_ids(encoder, ids, mask)[0],
                                   rtol=0, atol=0)
