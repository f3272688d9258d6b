#!/usr/bin/env python3
"""Converts a Whisper model from CTranslate2's format (model.bin, vocabulary.txt,
config.json) to whisper.cpp's ggml format. Needs only numpy.

The source layout is CTranslate2's WhisperSpec (python/ctranslate2/specs/ in
CTranslate2); the target is what whisper.cpp's models/convert-pt-to-ggml.py
writes: hyperparameters, 80 mel filters, the byte-level BPE tokens, then the
tensors under OpenAI's names. CTranslate2 fuses attention projections (query,
key and value in one matrix; key and value for cross-attention): they are
split here, and the key bias, which Whisper does not have (CTranslate2 stores
zeros), is dropped.

Usage: convert.py <ct2-model-dir> <out.bin>
"""

import json
import struct
import sys
from pathlib import Path

import numpy as np

# CTranslate2 DataType ids.
DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def read_ct2(path):
    """Returns {name: ndarray} from a CTranslate2 model.bin (binary version 6)."""
    buf = path.read_bytes()
    pos = 0

    def take(fmt):
        nonlocal pos
        value = struct.unpack_from(fmt, buf, pos)
        pos += struct.calcsize(fmt)
        return value[0]

    def string():
        nonlocal pos
        n = take("H")
        s = buf[pos : pos + n - 1].decode()
        pos += n
        return s

    version = take("I")
    if version != 6:
        raise SystemExit(f"unsupported CTranslate2 binary version {version}")
    spec = string()
    if spec != "WhisperSpec":
        raise SystemExit(f"not a Whisper model: {spec}")
    take("I")  # spec revision
    tensors = {}
    for _ in range(take("I")):
        name = string()
        shape = [take("I") for _ in range(take("B"))]
        dtype = take("B")
        nbytes = take("I")
        if dtype not in DTYPES:
            raise SystemExit(f"{name}: unsupported data type {dtype}")
        tensors[name] = np.frombuffer(buf, DTYPES[dtype], nbytes // np.dtype(DTYPES[dtype]).itemsize, pos).reshape(shape)
        pos += nbytes
    for _ in range(take("I")):
        alias, target = string(), string()
        tensors[alias] = tensors[target]
    return tensors


def mel_filters(sr=16000, n_fft=400, n_mels=80):
    """librosa.filters.mel(sr, n_fft, n_mels) with Slaney's scale and norm, as Whisper uses."""

    def hz_to_mel(f):
        f = np.asarray(f, dtype=np.float64)
        mel = f / (200.0 / 3)
        log = f >= 1000.0
        return np.where(log, 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0), mel)

    def mel_to_hz(m):
        m = np.asarray(m, dtype=np.float64)
        f = m * (200.0 / 3)
        log = m >= 15.0
        return np.where(log, 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0)), f)

    fft_freqs = np.linspace(0, sr / 2, 1 + n_fft // 2)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sr / 2), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fft_freqs)
    weights = np.zeros((n_mels, len(fft_freqs)))
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights.astype(np.float32)


def byte_decoder():
    """GPT-2's byte-level BPE: the printable character standing for each byte, inverted."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def tensors_for_whisper_cpp(t, n_audio_layer, n_text_layer, d):
    """Yields (OpenAI name, array) in whisper.cpp's naming."""
    yield "encoder.conv1.weight", t["encoder/conv1/weight"]
    yield "encoder.conv1.bias", t["encoder/conv1/bias"].reshape(-1, 1)
    yield "encoder.conv2.weight", t["encoder/conv2/weight"]
    yield "encoder.conv2.bias", t["encoder/conv2/bias"].reshape(-1, 1)
    yield "encoder.positional_embedding", t["encoder/position_encodings/encodings"]
    for i in range(n_audio_layer):
        src, dst = f"encoder/layer_{i}", f"encoder.blocks.{i}"
        yield from attention(t, f"{src}/self_attention", f"{dst}.attn", d)
        yield f"{dst}.attn_ln.weight", t[f"{src}/self_attention/layer_norm/gamma"]
        yield f"{dst}.attn_ln.bias", t[f"{src}/self_attention/layer_norm/beta"]
        yield from mlp(t, src, dst)
    yield "encoder.ln_post.weight", t["encoder/layer_norm/gamma"]
    yield "encoder.ln_post.bias", t["encoder/layer_norm/beta"]
    yield "decoder.positional_embedding", t["decoder/position_encodings/encodings"]
    yield "decoder.token_embedding.weight", t["decoder/embeddings/weight"]
    for i in range(n_text_layer):
        src, dst = f"decoder/layer_{i}", f"decoder.blocks.{i}"
        yield from attention(t, f"{src}/self_attention", f"{dst}.attn", d)
        yield f"{dst}.attn_ln.weight", t[f"{src}/self_attention/layer_norm/gamma"]
        yield f"{dst}.attn_ln.bias", t[f"{src}/self_attention/layer_norm/beta"]
        cross = f"{src}/attention"
        yield f"{dst}.cross_attn.query.weight", t[f"{cross}/linear_0/weight"]
        yield f"{dst}.cross_attn.query.bias", t[f"{cross}/linear_0/bias"]
        kv_w, kv_b = t[f"{cross}/linear_1/weight"], t[f"{cross}/linear_1/bias"]
        yield f"{dst}.cross_attn.key.weight", kv_w[:d]
        yield f"{dst}.cross_attn.value.weight", kv_w[d:]
        yield f"{dst}.cross_attn.value.bias", kv_b[d:]
        yield f"{dst}.cross_attn.out.weight", t[f"{cross}/linear_2/weight"]
        yield f"{dst}.cross_attn.out.bias", t[f"{cross}/linear_2/bias"]
        yield f"{dst}.cross_attn_ln.weight", t[f"{cross}/layer_norm/gamma"]
        yield f"{dst}.cross_attn_ln.bias", t[f"{cross}/layer_norm/beta"]
        yield from mlp(t, src, dst)
    yield "decoder.ln.weight", t["decoder/layer_norm/gamma"]
    yield "decoder.ln.bias", t["decoder/layer_norm/beta"]


def attention(t, src, dst, d):
    qkv_w, qkv_b = t[f"{src}/linear_0/weight"], t[f"{src}/linear_0/bias"]
    yield f"{dst}.query.weight", qkv_w[:d]
    yield f"{dst}.query.bias", qkv_b[:d]
    yield f"{dst}.key.weight", qkv_w[d : 2 * d]
    yield f"{dst}.value.weight", qkv_w[2 * d :]
    yield f"{dst}.value.bias", qkv_b[2 * d :]
    yield f"{dst}.out.weight", t[f"{src}/linear_1/weight"]
    yield f"{dst}.out.bias", t[f"{src}/linear_1/bias"]


def mlp(t, src, dst):
    yield f"{dst}.mlp_ln.weight", t[f"{src}/ffn/layer_norm/gamma"]
    yield f"{dst}.mlp_ln.bias", t[f"{src}/ffn/layer_norm/beta"]
    yield f"{dst}.mlp.0.weight", t[f"{src}/ffn/linear_0/weight"]
    yield f"{dst}.mlp.0.bias", t[f"{src}/ffn/linear_0/bias"]
    yield f"{dst}.mlp.2.weight", t[f"{src}/ffn/linear_1/weight"]
    yield f"{dst}.mlp.2.bias", t[f"{src}/ffn/linear_1/bias"]


def main(src_dir, out_path):
    src = Path(src_dir)
    t = read_ct2(src / "model.bin")
    vocab = (src / "vocabulary.txt").read_text(encoding="utf-8").split("\n")
    n_vocab, d = t["decoder/embeddings/weight"].shape
    n_audio_layer = sum(1 for k in t if k.startswith("encoder/layer_") and k.endswith("/ffn/linear_0/weight"))
    n_text_layer = sum(1 for k in t if k.startswith("decoder/layer_") and k.endswith("/ffn/linear_0/weight"))
    hparams = [
        n_vocab,
        t["encoder/position_encodings/encodings"].shape[0],  # n_audio_ctx (1500)
        d,
        int(t["encoder/num_heads"]),
        n_audio_layer,
        t["decoder/position_encodings/encodings"].shape[0],  # n_text_ctx (448)
        d,
        int(t["decoder/num_heads"]),
        n_text_layer,
        t["encoder/conv1/weight"].shape[1],  # n_mels (80)
        1,  # f16
    ]
    # Regular BPE tokens come before <|endoftext|>; whisper.cpp adds the special ones itself.
    eot = vocab.index("<|endoftext|>")
    decode = byte_decoder()
    tokens = [bytes(decode[c] for c in tok) for tok in vocab[:eot]]
    filters = mel_filters(n_mels=hparams[9])

    with open(out_path, "wb") as out:
        out.write(struct.pack("i", 0x67676D6C))
        out.write(struct.pack("11i", *hparams))
        out.write(struct.pack("ii", *filters.shape))
        out.write(filters.tobytes())
        out.write(struct.pack("i", len(tokens)))
        for tok in tokens:
            out.write(struct.pack("i", len(tok)))
            out.write(tok)
        for name, data in tensors_for_whisper_cpp(t, n_audio_layer, n_text_layer, d):
            small = data.ndim < 2 or name in ("encoder.conv1.bias", "encoder.conv2.bias") or name.endswith(
                "positional_embedding"
            )
            data = np.ascontiguousarray(data, dtype=np.float32 if small else np.float16)
            key = name.encode()
            out.write(struct.pack("iii", data.ndim, len(key), 0 if small else 1))
            for dim in reversed(data.shape):
                out.write(struct.pack("i", dim))
            out.write(key)
            out.write(data.tobytes())
    print(f"{out_path}: {n_audio_layer}+{n_text_layer} layers, d={d}, vocab {n_vocab}, {len(tokens)} BPE tokens")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2])
