"""Sequence networks (sslax/models/sequence.py) and the masking schemes of masked_frames
and masked_token: causality (a perturbation after t leaves every output up to t
unchanged), padding invariance (padding of any content and length changes no real
position), shapes, and the masks' proportions, placement and dependence on each example's
key alone, checked against counts written from the papers' rules."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslax.methods import masked_frames, masked_token
from sslax.methods.common import tokens as token_ops
from sslax.models import build_encoder, encoder_config
from sslax.models.sequence import (
  CPCEncoder,
  CPCPredictors,
  GRUStack,
  SequenceTransformer,
  SkipGramEmbeddings,
  masked_mean,
  sinusoidal_positions,
)

B, T, F = 3, 12, 5


def frames(seed=0, batch=B, length=T, features=F):
  return jax.random.normal(jax.random.key(seed), (batch, length, features))


def lengths_mask(lengths, length=T):
  return jnp.arange(length)[None] < jnp.asarray(lengths)[:, None]


def init_apply(model, x, mask):
  """-> (variables, jitted apply); eager flax compiles every op anew for every shape, one
  jit per shape is several times faster on this CPU."""
  variables = jax.jit(model.init)(jax.random.key(1), x, mask)
  return variables, jax.jit(model.apply)


def first(out):
  """CPCEncoder returns (z, c, mask); the others an array."""
  return out[1] if isinstance(out, tuple) else out


def transformer(causal):
  return SequenceTransformer(hidden_dim=16, depth=2, num_heads=2, causal=causal, max_length=32)


# name -> (module, the module whose parameters it shares): the causal flag changes no
# parameter, so both Transformers share one initialization (each init compiles for seconds).
MODELS = {
    "causal_transformer": (transformer(True), "transformer"),
    "bidirectional_transformer": (transformer(False), "transformer"),
    "gru_stack": (GRUStack(hidden_dim=16, num_layers=2), "gru_stack"),
    "cpc_context": (CPCEncoder(frame_hidden=(16,), dim=8, context_dim=16), "cpc_context"),
}


@pytest.fixture(scope="module")
def initialized():
  """Parameters of each model family, initialized once for the module."""
  x, mask = frames(), jnp.ones((B, T), bool)
  return {family: init_apply(MODELS[name][0], x, mask)[0]
          for name, family in [("causal_transformer", "transformer"), ("gru_stack", "gru_stack"),
                               ("cpc_context", "cpc_context")]}


@pytest.mark.parametrize("name", ["causal_transformer", "gru_stack", "cpc_context"])
def test_causal_models_ignore_the_future(name, initialized):
  model, family = MODELS[name]
  variables = initialized[family]
  apply = jax.jit(lambda x: first(model.apply(variables, x, jnp.ones((B, T), bool))))
  x = frames()
  base = np.asarray(apply(x))
  for t in (0, 5, T - 2):
    changed = x.at[:, t + 1:].add(10.0 * frames(seed=t + 7)[:, t + 1:])
    out = np.asarray(apply(changed))
    np.testing.assert_allclose(out[:, :t + 1], base[:, :t + 1], rtol=1e-6, atol=1e-6)
    # The perturbation does reach later positions: the test can fail.
    assert np.abs(out[:, t + 1:] - base[:, t + 1:]).max() > 1e-3


@pytest.mark.parametrize("name", ["bidirectional_transformer", "gru_stack", "cpc_context"])
def test_padding_changes_no_real_position(name, initialized):
  """Sequences of lengths (12, 7, 3) with garbage in their padding, then 9 more padded
  frames: the real outputs and pooled encodings are the same, and sequence 1's are those
  of sequence 1 alone (batch of its 7 frames, no padding)."""
  model, family = MODELS[name]
  variables = initialized[family]
  lengths = (T, 7, 3)
  mask = lengths_mask(lengths)
  x = frames()
  garbage = jnp.where(mask[:, :, None], x, 1e3 * frames(seed=3))
  longer = jnp.concatenate([garbage, 50.0 * frames(seed=4, length=9)], axis=1)
  longer_mask = jnp.concatenate([mask, jnp.zeros((B, 9), bool)], axis=1)

  @jax.jit
  def run(x, mask):
    return first(model.apply(variables, x, mask)), model.apply(variables, x, mask, method="encode")
  out, enc = map(np.asarray, run(garbage, mask))
  out_longer, enc_longer = map(np.asarray, run(longer, longer_mask))
  alone = np.asarray(run(x[1:2, :7], jnp.ones((1, 7), bool))[0])[0]
  np.testing.assert_allclose(out[1, :7], alone, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(enc[1], alone.mean(axis=0), rtol=1e-5, atol=1e-5)
  for b, n in enumerate(lengths):
    np.testing.assert_allclose(out_longer[b, :n], out[b, :n], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(enc[b], out[b, :n].mean(axis=0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(enc_longer[b], enc[b], rtol=1e-5, atol=1e-5)
    assert np.all(out[b, n:] == 0) and np.all(out_longer[b, n:] == 0)  # padding is zeroed


def test_transformer_over_tokens_and_tied_logits():
  model = SequenceTransformer(hidden_dim=16, depth=1, num_heads=2, vocab_size=50, max_length=20,
                              posemb="sinusoidal")
  tokens = jax.random.randint(jax.random.key(0), (B, T), 3, 50)
  mask = lengths_mask((T, 5, 1))
  variables, apply = init_apply(model, tokens, mask)
  h = apply(variables, tokens, mask)
  assert h.shape == (B, T, 16)
  logits = model.apply(variables, h, method="logits")
  table = variables["params"]["token_embed"]["embedding"]
  np.testing.assert_allclose(logits, np.einsum("btd,vd->btv", h, table), rtol=1e-5, atol=1e-6)
  assert model.apply(variables, tokens, mask, method="encode").shape == (B, 16)
  with pytest.raises(ValueError, match="max_length"):
    model.apply(variables, jnp.zeros((1, 21), jnp.int32), jnp.ones((1, 21), bool))


def test_gru_stack_residual_layers_and_shapes(initialized):
  model = MODELS["gru_stack"][0]
  variables = initialized["gru_stack"]
  x = frames()
  assert sorted(variables["params"]) == ["gru_0", "gru_1"]
  out = model.apply(variables, x, None)
  assert out.shape == (B, T, 16)
  # APC's residual: the second layer (input as wide as its output) adds its input, which is
  # the first layer's output, a one-layer stack of the same parameters.
  one = GRUStack(hidden_dim=16, num_layers=1)
  below = one.apply({"params": {"gru_0": variables["params"]["gru_0"]}}, x, None)
  plain = GRUStack(hidden_dim=16, num_layers=2, residual=False).apply(variables, x, None)
  np.testing.assert_allclose(out, plain + below, rtol=1e-5, atol=1e-6)


def test_cpc_shapes_predictors_and_conv_downsampling(initialized):
  enc = MODELS["cpc_context"][0]
  x = frames()
  z, c, mask = enc.apply(initialized["cpc_context"], x, None)
  assert z.shape == (B, T, 8) and c.shape == (B, T, 16) and mask.shape == (B, T)
  preds = CPCPredictors(num_steps=4, dim=8)
  pv = preds.init(jax.random.key(1), c)
  p = preds.apply(pv, c)
  assert p.shape == (B, T, 4, 8)
  w = pv["params"]["w"]["kernel"]  # [C, K, D]
  np.testing.assert_allclose(p[:, :, 2], np.einsum("btc,cd->btd", c, w[:, 2]), rtol=1e-5, atol=1e-6)

  # The paper's strided convolutions on a waveform: (T - k) // s + 1 per layer, and a
  # downsampled step is real when its whole window is.
  wave_model = CPCEncoder(frame_hidden=(8,), dim=8, context_dim=8, conv_strides=(5, 4),
                          conv_kernels=(10, 8))
  wave = jax.random.normal(jax.random.key(2), (2, 120, 1))
  wave_mask = lengths_mask((120, 60), 120)
  wv, apply = init_apply(wave_model, wave, wave_mask)
  z, c, mask = apply(wv, wave, wave_mask)

  def down(n):
    return ((n - 10) // 5 + 1 - 8) // 4 + 1
  assert z.shape == (2, down(120), 8)
  np.testing.assert_array_equal(np.sum(mask, axis=1), [down(120), down(60)])


def test_masked_mean_and_sinusoids_against_numpy():
  h = np.asarray(frames())
  mask = np.asarray(lengths_mask((T, 4, 0)))
  out = np.asarray(masked_mean(jnp.asarray(h), jnp.asarray(mask)))
  np.testing.assert_allclose(out[0], h[0].mean(0), rtol=1e-6)
  np.testing.assert_allclose(out[1], h[1, :4].mean(0), rtol=1e-6)
  np.testing.assert_array_equal(out[2], 0)
  pe = sinusoidal_positions(7, 6)
  pos, i = 3, 1  # Vaswani et al.: sin(pos / 10000^(2i/d)) on the first half (as here)
  np.testing.assert_allclose(pe[pos, i], np.sin(pos / 10000 ** (i / 3)), rtol=1e-6)
  np.testing.assert_allclose(pe[pos, 3 + i], np.cos(pos / 10000 ** (i / 3)), rtol=1e-6)


def test_skipgram_tables_word2vec_init_and_encode():
  model = SkipGramEmbeddings(vocab_size=40, dim=10)
  tokens = jnp.asarray([[5, 1, 7, 2, 0, 0], [9, 9, 0, 0, 0, 0]])
  mask = tokens > 0
  variables = model.init(jax.random.key(0), tokens, mask)
  table = np.asarray(variables["params"]["input"])
  assert np.abs(table).max() <= 0.05 and np.abs(table).max() > 0.03  # uniform +-0.5/dim
  assert np.all(np.asarray(variables["params"]["output"]) == 0)       # word2vec's syn1neg
  enc = np.asarray(model.apply(variables, tokens, mask, method="encode"))
  np.testing.assert_allclose(enc[0], table[[5, 7]].mean(0), rtol=1e-6)  # <unk>, <mask> left out
  np.testing.assert_allclose(enc[1], table[9], rtol=1e-6)


def test_registry_builds_sequence_encoders():
  cfg = encoder_config("sequence_transformer", hidden_dim=16, depth=1, num_heads=2)
  model = build_encoder(cfg, bn_axis_name="data")
  assert isinstance(model, SequenceTransformer) and model.hidden_dim == 16
  assert isinstance(build_encoder(encoder_config("gru_stack"), None), GRUStack)
  assert isinstance(build_encoder(encoder_config("cpc_encoder"), None), CPCEncoder)
  assert isinstance(build_encoder(encoder_config("skipgram_embeddings", vocab_size=9), None),
                    SkipGramEmbeddings)


# ----------------------------------------------------------------------------
# Masking schemes: proportions on a large batch, padding untouched, per-example keys.
# ----------------------------------------------------------------------------

BIG_B, BIG_T, VOCAB = 512, 120, 1000
# One compiled function per scheme for every masking test (each compile takes seconds).
corrupt_frames = jax.jit(lambda k, x, m: masked_frames.corrupt_frames(k, x, m, masked_frames.defaults()))
corrupt_tokens = jax.jit(lambda k, x, m: masked_token.corrupt_tokens(k, x, m, VOCAB, masked_token.defaults()))


def big_batch(seed=0):
  keys = jax.random.split(jax.random.key(seed), BIG_B)
  lengths = jax.random.randint(jax.random.key(seed + 1), (BIG_B,), 1, BIG_T + 1)
  return keys, lengths_mask(lengths, BIG_T), np.asarray(lengths)


def runs(row):
  """Lengths of the runs of True in a 1-D bool array."""
  out, n = [], 0
  for v in list(row) + [False]:
    if v:
      n += 1
    elif n:
      out.append(n)
      n = 0
  return out


def test_masked_frames_spans_proportions_and_padding():
  keys, mask, lengths = big_batch()
  x = frames(seed=5, batch=BIG_B, length=BIG_T, features=4) + 3.0  # no frame is ~0
  corrupted, chosen = corrupt_frames(keys, x, mask)
  x, corrupted, chosen, mask = map(np.asarray, (x, corrupted, chosen, mask))
  assert not np.any(chosen & ~mask)                      # padding is never chosen
  np.testing.assert_array_equal(corrupted[~chosen], x[~chosen])  # nor anything unchosen touched
  # Mockingjay's count, round(0.15 L / 3) spans (at least one when one fits), never overlapping:
  # exactly 3 n frames, in runs whose lengths are multiples of the span.
  for b in range(BIG_B):
    n = min(max(1, int(np.floor(0.15 * lengths[b] / 3 + 0.5))), lengths[b] // 3)
    assert chosen[b].sum() == 3 * n
    assert all(r % 3 == 0 for r in runs(chosen[b]))
  assert abs(chosen.sum() / mask.sum() - 0.15) < 0.01
  # Span decisions: zeroed (80%), replaced by frames of the same sequence (10%), kept (10%).
  zeroed = np.all(corrupted == 0, axis=-1) & chosen
  kept = np.all(corrupted == x, axis=-1) & chosen
  replaced = chosen & ~zeroed & ~kept
  total = chosen.sum()
  assert abs(zeroed.sum() / total - 0.8) < 0.03
  assert abs(replaced.sum() / total - 0.1) < 0.025  # a span replaced by itself counts as kept
  assert abs(kept.sum() / total - 0.1) < 0.025
  for b in np.nonzero(replaced.any(axis=1))[0][:50]:
    real = x[b, :lengths[b]]
    for t in np.nonzero(replaced[b])[0]:
      assert np.any(np.all(real == corrupted[b, t], axis=-1))  # a real frame of its own sequence


def test_masked_tokens_bert_proportions_and_padding():
  vocab = VOCAB
  keys, mask, lengths = big_batch(seed=3)
  tokens = jnp.where(mask, jax.random.randint(jax.random.key(9), mask.shape, 3, vocab), 0)
  corrupted, chosen = corrupt_tokens(keys, tokens, mask)
  tokens, corrupted, chosen, mask = map(np.asarray, (tokens, corrupted, chosen, mask))
  assert not np.any(chosen & ~mask)
  np.testing.assert_array_equal(corrupted[~chosen], tokens[~chosen])
  # BERT's create_pretraining_data: max(1, round(0.15 L)) tokens of each text.
  for b in range(BIG_B):
    assert chosen[b].sum() == max(1, int(np.floor(np.float32(0.15) * lengths[b] + 0.5)))
  total = chosen.sum()
  assert abs(total / mask.sum() - 0.15) < 0.01
  masked = chosen & (corrupted == token_ops.MASK_ID)
  kept = chosen & (corrupted == tokens)
  replaced = chosen & ~masked & ~kept
  assert abs(masked.sum() / total - 0.8) < 0.03
  assert abs(kept.sum() / total - 0.1) < 0.025  # a random word equal to the original counts as kept
  assert abs(replaced.sum() / total - 0.1) < 0.025
  assert corrupted[replaced].min() >= token_ops.NUM_SPECIAL and corrupted[replaced].max() < vocab


@pytest.mark.parametrize("scheme", ["frames", "tokens"])
def test_masks_depend_only_on_each_examples_key(scheme):
  keys, mask, _ = big_batch(seed=7)
  if scheme == "frames":
    x, run = frames(seed=1, batch=BIG_B, length=BIG_T, features=4), corrupt_frames
  else:
    x, run = jnp.where(mask, jax.random.randint(jax.random.key(2), mask.shape, 3, VOCAB), 0), corrupt_tokens
  corrupted, chosen = map(np.asarray, run(keys, x, mask))
  # The batch reversed: every example gets the same mask and corruption.
  rev_corrupted, rev_chosen = map(np.asarray, run(keys[::-1], x[::-1], mask[::-1]))
  np.testing.assert_array_equal(rev_chosen[::-1], chosen)
  np.testing.assert_array_equal(rev_corrupted[::-1], corrupted)
  # Every other example changed (keys, content, lengths): example 0's stays.
  other_keys, other_mask, _ = big_batch(seed=8)
  other_x = x[::-1] + 1
  other = run(other_keys.at[0].set(keys[0]), other_x.at[0].set(x[0]), other_mask.at[0].set(mask[0]))
  np.testing.assert_array_equal(np.asarray(other[1])[0], chosen[0])
  np.testing.assert_array_equal(np.asarray(other[0])[0], corrupted[0])
  assert not np.array_equal(np.asarray(other[1])[1:], chosen[1:])  # and theirs do change
