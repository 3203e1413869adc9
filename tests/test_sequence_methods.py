"""The six sequence and text methods called directly, without the trainer: on a tiny
synthetic batch each loss is finite with a nonzero gradient and a few Adam steps on that
batch lower it; CPC's loss is the same on 8 devices as on one; the token losses equal a
NumPy cross-entropy over the positions they should score; skip-gram's pairs and noise
follow word2vec.c's rules (dynamic window, subsampling formula, unigram^0.75 noise); the
methods refuse data and networks that cannot work. Last, 3 trainer steps of APC and
skip-gram on tiny JapaneseVowels and fortunes files."""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from jax.sharding import PartitionSpec as P

from sslax import config as config_lib
from sslax import parallel
from sslax.errors import ConfigError
from sslax.methods import apc, cpc, masked_frames, masked_token, next_token, skipgram
from sslax.methods.base import StepInputs
from sslax.methods.common import tokens as token_ops
from sslax.models.sequence import CPCEncoder, CPCPredictors, GRUStack, SequenceTransformer, SkipGramEmbeddings

B, T, F, V = 8, 16, 4, 40


def lengths_mask(lengths, length=T):
  return jnp.arange(length)[None] < jnp.asarray(lengths)[:, None]


MASK = lengths_mask([16, 16, 14, 12, 10, 16, 9, 13])


def frame_batch():
  """Sinusoids of per-sequence frequency and phase, one per feature: predictable ahead."""
  rng = np.random.default_rng(0)
  t = np.arange(T)[None, :, None]
  freq = rng.uniform(0.2, 0.8, (B, 1, F))
  phase = rng.uniform(0, 2 * np.pi, (B, 1, F))
  x = np.sin(freq * t + phase).astype(np.float32)
  return jnp.where(MASK[:, :, None], x, 0.0)


def token_batch():
  """Counting sequences mod the word range: each token follows from the previous one."""
  rng = np.random.default_rng(1)
  start = rng.integers(0, V - 3, (B, 1))
  step = rng.integers(1, 3, (B, 1))
  tokens = 3 + (start + step * np.arange(T)[None]) % (V - 3)
  return jnp.where(MASK, jnp.asarray(tokens, jnp.int32), 0)


def word_counts():
  """Zipf-like counts over the V ids, specials at 0."""
  counts = 1000.0 / np.arange(1, V + 1)
  counts[:token_ops.NUM_SPECIAL] = 0
  return counts


def transformer(causal, vocab=0):
  return SequenceTransformer(hidden_dim=16, depth=1, num_heads=2, causal=causal, vocab_size=vocab,
                             max_length=T)


# name -> (method module, model, input batch fn, method config overrides, method state fn)
CASES = {
    "apc": (apc, lambda: apc.APCModel(GRUStack(hidden_dim=16, num_layers=2)), frame_batch,
            {"shift": 2}, None),
    "cpc": (cpc, lambda: cpc.CPCModel(CPCEncoder(frame_hidden=(16,), dim=8, context_dim=16),
                                      CPCPredictors(3, 8)), frame_batch, {"num_steps": 3}, None),
    "masked_frames": (masked_frames, lambda: masked_frames.MaskedFrameModel(transformer(False)),
                      frame_batch, {"mask_ratio": 0.3}, None),
    "masked_token": (masked_token, lambda: masked_token.MaskedTokenModel(transformer(False, V)),
                     token_batch, {"mask_ratio": 0.3}, None),
    "next_token": (next_token, lambda: next_token.NextTokenModel(transformer(True, V)),
                   token_batch, {}, None),
    "skipgram": (skipgram, lambda: skipgram.SkipGram(SkipGramEmbeddings(vocab_size=V, dim=16)),
                 token_batch, {"window": 2, "num_negatives": 3},
                 lambda cfg: skipgram.noise_state(word_counts(), cfg.noise_power, cfg.subsample)),
}


def as_config(cfg):
  """The full config a method's hooks take, around a config.method."""
  return ml_collections.ConfigDict({"method": cfg})


def setup_case(name):
  """-> (method module, model, a fresh config.method, StepInputs, initialized variables)."""
  module, _, _, overrides, _ = CASES[name]
  cfg = module.defaults()
  cfg.update(overrides)
  model, inputs, variables = _initialized(name)
  return module, model, cfg, inputs, variables


@functools.lru_cache(maxsize=None)
def _initialized(name):
  """The model, inputs and variables of a case, made once per test session (each init
  compiles for about a second)."""
  module, make_model, batch_fn, overrides, state_fn = CASES[name]
  cfg = module.defaults()
  cfg.update(overrides)
  model = make_model()
  x = batch_fn()
  state = {} if state_fn is None else jax.tree.map(jnp.asarray, state_fn(cfg))
  inputs = StepInputs(views=[x], labels=jnp.zeros((B,), jnp.int32), step=jnp.zeros((), jnp.int32),
                      state=state, keys=jax.random.split(jax.random.key(3), B), mask=MASK)
  # The trainer's init: zeros and a mask of all True.
  zeros = jnp.zeros((2,) + x.shape[1:], x.dtype)
  variables = jax.jit(lambda k: model.init(k, zeros, jnp.ones((2, T), bool), train=False))(
      jax.random.key(0))
  return model, inputs, variables


@pytest.mark.parametrize("name", sorted(CASES))
def test_loss_is_finite_has_a_gradient_and_decreases(name):
  module, model, cfg, inputs, variables = setup_case(name)
  # word2vec's vectors start at +-0.5/dim and zero: they need a larger step to move.
  tx = optax.adam(1e-1 if name == "skipgram" else 1e-2)

  @jax.jit  # one compiled step: an eager optimizer update compiles every op for every leaf
  def step(params, opt_state):
    def loss_fn(params):
      return module.METHOD.loss(model, {"params": params}, inputs, as_config(cfg), None)
    (value, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, value, optax.tree.norm(grads), aux.metrics

  params = variables["params"]
  opt_state = tx.init(params)
  params, opt_state, first, grad_norm, metrics = step(params, opt_state)
  assert np.isfinite(float(first)) and float(first) > 0
  assert float(grad_norm) > 0
  assert all(np.isfinite(float(v)) for v in metrics.values())
  for _ in range(15):
    params, opt_state, last, _, _ = step(params, opt_state)
  assert float(last) < 0.9 * float(first), (float(first), float(last))


def test_cpc_loss_on_8_devices_is_the_one_device_global_batch_loss():
  """CPC's negatives come from the whole global batch: splitting the batch over 8 devices
  (one sequence each) does not change the loss."""
  module, model, cfg, inputs, variables = setup_case("cpc")
  one = jax.jit(lambda v: module.METHOD.loss(model, v, inputs, as_config(cfg), None)[0])(variables)
  mesh = parallel.make_mesh(8)

  def per_device(variables, batch):
    local = inputs.replace(views=[batch["x"]], mask=batch["mask"], keys=batch["keys"],
                           labels=batch["labels"])
    return module.METHOD.loss(model, variables, local, as_config(cfg), parallel.DATA_AXIS)[0]
  sharded = jax.jit(jax.shard_map(per_device, mesh=mesh, in_specs=(P(), P(parallel.DATA_AXIS)),
                                  out_specs=P(), check_vma=True))
  eight = sharded(variables, {"x": inputs.views[0], "mask": inputs.mask, "keys": inputs.keys,
                              "labels": inputs.labels})
  np.testing.assert_allclose(float(eight), float(one), rtol=1e-5)


def numpy_cross_entropy(logits, targets, weights):
  logits = np.asarray(logits, np.float64)
  logp = logits - np.log(np.sum(np.exp(logits - logits.max(-1, keepdims=True)), -1, keepdims=True)) \
      - logits.max(-1, keepdims=True)
  nll = -np.take_along_axis(logp, np.asarray(targets)[..., None], -1)[..., 0]
  return np.sum(nll * weights) / np.sum(weights)


def test_next_token_loss_is_the_cross_entropy_of_real_pairs():
  """The packed loss (only real (t, t+1) pairs through the output layer) against the
  cross-entropy of every position's logits, written out in NumPy over the real pairs."""
  module, model, cfg, inputs, variables = setup_case("next_token")
  tokens, mask = np.asarray(inputs.views[0]), np.asarray(inputs.mask)
  logits = np.asarray(jax.jit(model.apply)(variables, inputs.views[0], inputs.mask))  # [B, T, V]
  weights = mask[:, :-1] & mask[:, 1:]
  expected = numpy_cross_entropy(logits[:, :-1], tokens[:, 1:], weights)

  def loss(capacity):
    cfg.pair_capacity = capacity
    value, aux = jax.jit(lambda v: module.METHOD.loss(model, v, inputs, as_config(cfg), None))(variables)
    return float(value), float(aux.metrics["dropped_pairs"])
  # 0.9: more than the 82% real pairs of this batch; 0.5: fewer.
  np.testing.assert_allclose(loss(0.9), (expected, 0), rtol=1e-5)
  assert loss(0.5)[1] > 0


def test_masked_token_loss_is_the_cross_entropy_of_the_chosen_tokens():
  module, model, cfg, inputs, variables = setup_case("masked_token")

  @jax.jit
  def run(variables):
    corrupted, chosen = masked_token.corrupt_tokens(inputs.keys, inputs.views[0], inputs.mask, V, cfg)
    logits = model.apply(variables, corrupted, inputs.mask)  # every position
    return logits, chosen, module.METHOD.loss(model, variables, inputs, as_config(cfg), None)[0]
  logits, chosen, value = run(variables)
  expected = numpy_cross_entropy(logits, inputs.views[0], np.asarray(chosen))
  np.testing.assert_allclose(float(value), expected, rtol=1e-5)


def test_pack_keeps_live_entries_in_order_and_counts_the_excess():
  weights = jnp.asarray([0, 1, 0, 1, 1, 0, 1], jnp.float32)
  index, kept, dropped = token_ops.pack(weights, 5)
  np.testing.assert_array_equal(index[:4], [1, 3, 4, 6])
  np.testing.assert_array_equal(kept, [1, 1, 1, 1, 0])
  assert int(dropped) == 0
  index, kept, dropped = token_ops.pack(weights, 2)
  np.testing.assert_array_equal(index, [1, 3])
  assert int(dropped) == 2


# ----------------------------------------------------------------------------
# Skip-gram: pairs, subsampling and noise, against word2vec.c's rules.
# ----------------------------------------------------------------------------

def test_skipgram_pairs_follow_the_dynamic_window_over_kept_words():
  cfg = skipgram.defaults()
  cfg.window, cfg.subsample = 3, 0.0
  state = jax.tree.map(jnp.asarray, skipgram.noise_state(word_counts(), 0.75, 0.0))
  # Text 0: words with an <unk> (1) and a <mask> (2) among them; text 1: short, padded.
  tokens = jnp.asarray([[5, 6, 1, 7, 8, 2, 9, 10], [11, 12, 13, 0, 0, 0, 0, 0]])
  mask = tokens > 0
  n = 2000
  keys = jax.random.split(jax.random.key(0), n)
  center, context, _, weights = jax.jit(lambda k: skipgram.skipgram_pairs(
      k, jnp.tile(tokens, (n // 2, 1)), jnp.tile(mask, (n // 2, 1)), state, cfg))(keys)
  center, context, weights = map(np.asarray, (center, context, weights))
  live = weights > 0
  # word2vec.c drops the special tokens from the sentence before windowing: 5 6 7 8 9 10.
  sentence = [5, 6, 7, 8, 9, 10]
  distance = {(a, b): abs(i - j) for i, a in enumerate(sentence) for j, b in enumerate(sentence)}
  distance.update({(a, b): abs(i - j) for i, a in enumerate([11, 12, 13])
                   for j, b in enumerate([11, 12, 13])})
  pairs = list(zip(center[live], context[live]))
  assert all((c, o) in distance and 1 <= distance[c, o] <= 3 for c, o in pairs)
  # Dynamic window: b uniform in 1..3, so a word at distance d is a context with
  # probability (3 - d + 1) / 3: 1, 2/3, 1/3 (word2vec's weighting of near words).
  texts0 = np.arange(0, n, 2)
  c0 = center.reshape(n, 8, 6)[texts0]  # text 0's [position, offset] pairs
  o0 = context.reshape(n, 8, 6)[texts0]
  w0 = weights.reshape(n, 8, 6)[texts0] > 0
  for d, expected in ((1, 1.0), (2, 2 / 3), (3, 1 / 3)):
    hits = sum(np.sum(w0[:, i] & (c0[:, i] == sentence[i]) & (o0[:, i] == sentence[i + d]))
               for i in range(len(sentence) - d))
    np.testing.assert_allclose(hits / (len(texts0) * (len(sentence) - d)), expected, atol=0.04)


def test_skipgram_noise_and_subsampling_match_word2vec():
  counts = word_counts()
  state = skipgram.noise_state(counts, 0.75, 1e-2)
  # word2vec.c: ran = (sqrt(cn / (sample * train_words)) + 1) * (sample * train_words) / cn.
  total = counts.sum()
  for w in (3, 4, 10, V - 1):
    ran = (np.sqrt(counts[w] / (1e-2 * total)) + 1) * (1e-2 * total) / counts[w]
    np.testing.assert_allclose(state["keep_prob"][w], min(ran, 1.0), rtol=1e-5)
  assert np.all(state["keep_prob"][:3] == 0)
  # Negatives drawn by inverse CDF follow counts^0.75 over the words (specials never).
  cfg = skipgram.defaults()
  cfg.subsample, cfg.window = 0.0, 5
  jstate = jax.tree.map(jnp.asarray, state)
  tokens = jnp.full((400, 12), 5)
  _, _, negatives, _ = jax.jit(lambda k: skipgram.skipgram_pairs(k, tokens, tokens > 0, jstate, cfg))(
      jax.random.split(jax.random.key(1), 400))
  freq = np.bincount(np.asarray(negatives).ravel(), minlength=V) / negatives.size
  expected = counts ** 0.75 / np.sum(counts ** 0.75)
  assert freq[:3].sum() == 0
  np.testing.assert_allclose(freq, expected, atol=0.005)


# ----------------------------------------------------------------------------
# Validate-time checks: data modality and networks that cannot work.
# ----------------------------------------------------------------------------

def config_for(method, data_name, model):
  config = config_lib.base_config()
  config.data.name = data_name
  config.model = model
  config.method = method.defaults()
  return config


def test_methods_refuse_the_wrong_modality_and_name_datasets_that_work():
  from sslax.models import encoder_config

  with pytest.raises(ConfigError, match="fortunes"):
    masked_token.validate(config_for(masked_token, "japanese_vowels",
                                     encoder_config("sequence_transformer")))
  with pytest.raises(ConfigError, match="japanese_vowels"):
    apc.validate(config_for(apc, "fortunes", encoder_config("gru_stack")))
  with pytest.raises(ConfigError, match="japanese_vowels"):
    cpc.validate(config_for(cpc, "fashion_mnist", encoder_config("cpc_encoder")))


def test_methods_refuse_networks_that_see_their_target():
  from sslax.models import encoder_config

  with pytest.raises(ConfigError, match="causal"):
    apc.validate(config_for(apc, "japanese_vowels", encoder_config("sequence_transformer", causal=False)))
  with pytest.raises(ConfigError, match="causal"):
    masked_frames.validate(config_for(masked_frames, "japanese_vowels",
                                      encoder_config("sequence_transformer", causal=True)))
  with pytest.raises(ConfigError, match="gru_stack"):
    apc.validate(config_for(apc, "japanese_vowels", encoder_config("convnet")))
  built = apc.build(config_for(apc, "japanese_vowels", encoder_config("gru_stack")))
  assert isinstance(built.encoder, GRUStack)


# ----------------------------------------------------------------------------
# Through the trainer: 3 steps on tiny synthetic files, on the 8-device test mesh.
# ----------------------------------------------------------------------------

def write_japanese_vowels(folder, features=3):
  """data_dir holding JapaneseVowels/JapaneseVowels_{TRAIN,TEST}.ts (aeon's .ts format):
  16 and 8 series of 4..10 frames, 2 speakers."""
  rng = np.random.default_rng(0)
  for split, n in (("TRAIN", 16), ("TEST", 8)):
    lines = []
    for i in range(n):
      series = rng.normal(size=(features, int(rng.integers(4, 11)))) + i % 2
      lines.append(":".join(",".join(f"{v:.4f}" for v in dim) for dim in series) + f":{1 + i % 2}\n")
    path = folder / "JapaneseVowels" / f"JapaneseVowels_{split}.ts"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"@problemName JapaneseVowels\n@timeStamps false\n@missing false\n"
                    f"@univariate false\n@dimensions {features}\n@equalLength false\n"
                    f"@classLabel true 1 2\n@data\n" + "".join(lines))
  return str(folder)


def write_fortunes(folder):
  """Two topic files of 12 fortunes each, texts separated by lines holding '%'."""
  folder.mkdir(parents=True)
  words = {"cats": "the cat sat on a mat and purred at the dog".split(),
           "ships": "a ship sailed over the sea and the wind blew hard".split()}
  rng = np.random.default_rng(0)
  for topic, vocab in words.items():
    texts = [" ".join(rng.choice(vocab, int(rng.integers(3, 14)))) for _ in range(12)]
    (folder / topic).write_text("".join(f"{t}\n%\n" for t in texts))
  return str(folder)


def load_config(name):
  import importlib.util
  import os

  path = os.path.join(os.path.dirname(__file__), "..", "configs", f"{name}.py")
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


@pytest.mark.parametrize("name", ["apc_japanese_vowels", "skipgram_fortunes"])
def test_three_trainer_steps_on_tiny_sources(name, tmp_path):
  import json
  import os

  from sslax import train

  config = load_config(name)
  if name.startswith("apc"):
    config.data.data_dir = write_japanese_vowels(tmp_path / "data")
    config.model.hidden_dim, config.model.num_layers = 8, 2
  else:
    config.data.path = write_fortunes(tmp_path / "fortunes")
    config.data.min_count = 1
    config.model.dim = 8
  config_lib.validate(config)
  config.batch_size = 8  # one example per device of the test mesh
  config.total_steps = 3
  config.log_every_steps = 1
  config.checkpoint_every_steps = 3
  config.async_checkpoints = False
  config.diagnostics.enabled = False
  config.online_probe.enabled = False
  workdir = str(tmp_path / "run")
  state, _, _ = train.train(config, workdir)
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  losses = [r["loss"] for r in rows if "loss" in r]
  assert len(losses) == 3 and all(np.isfinite(losses)), rows
  assert int(jax.device_get(state.step)) == 3
  assert losses[2] != losses[0], "the steps trained"
  if name.startswith("skipgram"):
    # word2vec's output vectors start at zero, so every logit of step 1 is 0: each pair costs
    # -log sigma(0) for its context word and for each of its negatives, (1 + M) log 2.
    np.testing.assert_allclose(losses[0], (1 + config.method.num_negatives) * np.log(2), rtol=1e-6)
