"""Full fine-tuning (sslax/evaluate/finetune.py) and layer-wise lr decay (sslax/optim.py)
against independent references:

* the lr multipliers of a ViT-like, a ConvNet and a ResNet parameter tree are hand-written
  tables of layer_decay ** (L + 1 - layer) (MAE's util/lr_decay.py for the ViT), and an SGD
  step through `make_optimizer` moves each parameter by -lr * its multiplier;
* every registered method's evaluated network has an `encoder` shaped like the supervised
  network's (what fine-tuning copies), checked on shapes alone;
* a tiny pretrained run fine-tuned 60 steps with layer_decay 1e-4: the ConvNet's first
  stage (lr x 1e-8) ends where the pretraining checkpoint left it (both read back with Orbax
  directly; pretraining moves it by > 1e-3 every 2 steps, so it did not start from an
  init), its second stage (lr x 1e-4) moves over a thousand times more, and the training
  loss goes down; the accuracy in finetune.json is the argmax accuracy of the saved network,
  written out in Flax, on the raw test images;
* --mode=finetune's function, which all of the above goes through, says to pretrain first
  when WORKDIR has no checkpoint, and will not resume a fine-tuning of an older checkpoint.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

from sslax import assemble, optim, train
from sslax import step as step_lib
from sslax.data.pipeline import DATASET_INFO
from sslax.evaluate import finetune
from sslax.methods import available_methods, get_method
from sslax.models import ConvNet
from tests.helpers import tiny_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ----------------------------------------------------------------------------
# Layer-wise learning-rate decay
# ----------------------------------------------------------------------------

def zeros(*shape):
  return np.zeros(shape, np.float32)


def vit_like_params():
  """The parameter layout of sslax/models/vit.py (depth 3, learned position embeddings)
  under a classifier, as the fine-tuned network has it."""
  return {"encoder": {
      "patch_embed": {"kernel": zeros(4, 4, 1, 8), "bias": zeros(8)},
      "pos_embed": {"embedding": zeros(49, 8)},
      "cls": zeros(1, 1, 8),
      "block_0": {"attn": {"qkv": {"kernel": zeros(8, 24)}}, "norm1": {"scale": zeros(8)}},
      "block_1": {"mlp": {"fc1": {"kernel": zeros(8, 32), "bias": zeros(32)}}},
      "block_2": {"mlp": {"fc2": {"kernel": zeros(32, 8)}}},
      "norm": {"scale": zeros(8), "bias": zeros(8)}},
      "classifier": {"kernel": zeros(8, 10), "bias": zeros(10)}}


# layer_decay 0.5, depth L = 3: layer 0 (embeddings) 0.5^4, block_i 0.5^(3 - i), norm and head 1.
VIT_TABLE = {
    "encoder/patch_embed/kernel": 0.0625, "encoder/patch_embed/bias": 0.0625,
    "encoder/pos_embed/embedding": 0.0625, "encoder/cls": 0.0625,
    "encoder/block_0/attn/qkv/kernel": 0.125, "encoder/block_0/norm1/scale": 0.125,
    "encoder/block_1/mlp/fc1/kernel": 0.25, "encoder/block_1/mlp/fc1/bias": 0.25,
    "encoder/block_2/mlp/fc2/kernel": 0.5,
    "encoder/norm/scale": 1.0, "encoder/norm/bias": 1.0,
    "classifier/kernel": 1.0, "classifier/bias": 1.0,
}


def by_path(tree) -> dict:
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {"/".join(k.key for k in path): leaf for path, leaf in leaves}


def test_layer_decay_scales_of_a_vit_are_the_mae_table():
  scales = by_path(optim.layer_decay_scales(vit_like_params(), 0.5))
  assert scales == pytest.approx(VIT_TABLE, rel=1e-12)
  # Block numbers are read as numbers: in a 12-block ViT block_10 is layer 11 of 13.
  deep = {"encoder": {f"block_{i}": {"w": zeros(2)} for i in range(12)}, "classifier": {"w": zeros(2)}}
  deep_scales = by_path(optim.layer_decay_scales(deep, 0.5))
  assert deep_scales["encoder/block_10/w"] == 0.25 and deep_scales["encoder/block_2/w"] == 0.5 ** 10
  assert deep_scales["encoder/block_0/w"] == 0.5 ** 12 and deep_scales["classifier/w"] == 1.0


def test_stage_encoders_take_one_layer_per_stage_and_unknown_names_fail():
  convnet = {"encoder": {"stage1_conv1": {"kernel": zeros(3, 3, 1, 4)}, "stage1_bn1": {"scale": zeros(4)},
                         "stage2_conv1": {"kernel": zeros(3, 3, 4, 8)}, "stage3_conv2": {"kernel": zeros(1)}},
             "classifier": {"kernel": zeros(8, 10)}}
  assert by_path(optim.layer_decay_scales(convnet, 0.8)) == pytest.approx({
      "encoder/stage1_conv1/kernel": 0.512, "encoder/stage1_bn1/scale": 0.512,
      "encoder/stage2_conv1/kernel": 0.64, "encoder/stage3_conv2/kernel": 0.8,
      "classifier/kernel": 1.0}, rel=1e-12)
  resnet = {"encoder": {"stem_conv": {"kernel": zeros(1)}, "stem_bn": {"bias": zeros(1)},
                        "stage1_block1": {"Conv_0": {"kernel": zeros(1)}},
                        "stage4_block2": {"BatchNorm_1": {"scale": zeros(1)}}},
            "classifier": {"bias": zeros(1)}}
  assert by_path(optim.layer_decay_scales(resnet, 0.5)) == pytest.approx({
      "encoder/stem_conv/kernel": 1 / 32, "encoder/stem_bn/bias": 1 / 32,
      "encoder/stage1_block1/Conv_0/kernel": 1 / 16, "encoder/stage4_block2/BatchNorm_1/scale": 0.5,
      "classifier/bias": 1.0}, rel=1e-12)
  with pytest.raises(ValueError, match="encoder/Dense_0/kernel.*layer_decay to 1.0"):
    optim.layer_decay_scales({"encoder": {"Dense_0": {"kernel": zeros(1)}}}, 0.5)


def test_sgd_step_with_layer_decay_moves_each_parameter_by_lr_times_its_multiplier():
  cfg = optim.default_config()
  cfg.update(dict(name="sgd", momentum=0.0, weight_decay=0.0, layer_decay=0.5))
  tx = optim.make_optimizer(cfg, optax.constant_schedule(0.1))
  params = vit_like_params()
  grads = jax.tree.map(lambda p: np.full_like(p, 2.0), params)
  updates, _ = tx.update(grads, tx.init(params), params)
  for path, update in by_path(updates).items():
    np.testing.assert_allclose(update, -0.1 * 2.0 * VIT_TABLE[path], rtol=1e-6, err_msg=path)


# ----------------------------------------------------------------------------
# Every method's network has the `encoder` fine-tuning copies
# ----------------------------------------------------------------------------

def method_config(name: str):
  path = os.path.join(REPO, "configs", f"{name}_fashion_mnist.py")
  spec = importlib.util.spec_from_file_location(f"{name}_fashion_mnist", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  config.data.num_classes = 10
  return config


@pytest.mark.parametrize("name", sorted(n for n in available_methods()
                                        if os.path.exists(os.path.join(REPO, "configs", f"{n}_fashion_mnist.py"))))
def test_every_method_evaluates_an_encoder_shaped_like_the_fine_tuned_one(name):
  config = method_config(name)
  method = get_method(name)
  x = jnp.zeros((2, 28, 28, 1))

  def evaluated_encoder():
    variables = method.build(config).init(jax.random.key(0), x, train=False)
    variables = {"params": variables["params"], "batch_stats": variables.get("batch_stats", {})}
    state = method.init_state(config, variables, None)
    return method.evaluated_variables(config, variables["params"], variables["batch_stats"],
                                      state)["params"]["encoder"]

  supervised = get_method("supervised").build(config)
  expected = jax.eval_shape(lambda: supervised.init(jax.random.key(0), x, train=False)["params"]["encoder"])
  got = jax.eval_shape(evaluated_encoder)
  assert jax.tree.map(lambda a: a.shape, got) == jax.tree.map(lambda a: a.shape, expected)


# ----------------------------------------------------------------------------
# Fine-tuning runs
# ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def data_dir(tiny_fashion_mnist):
  """This module's own TFDS folder; SSLAX_FASHION_MNIST_DIR set for its tests only (conftest)."""
  return os.path.dirname(tiny_fashion_mnist)  # the tiny data's root folder


def pretrain_config(data_dir: str):
  """tiny_config with AdamW, so that 4 pretraining steps move every weight by about 3e-3
  per 2 steps, then 60 fine-tuning steps at lr 2.0 x 16/256 with layer_decay 1e-4: the
  ConvNet's stage 1 of 2 takes lr x 1e-8 (~0), stage 2 lr x 1e-4, the classifier lr."""
  config = tiny_config(os.path.join(data_dir, "tfds"))
  config.eval.enabled = False
  config.optimizer.name = "adamw"
  config.optimizer.base_lr = 0.05
  config.optimizer.weight_decay = 0.0
  config.finetune.enabled = True
  config.finetune.batch_size = 16
  config.finetune.total_steps = 60
  config.finetune.checkpoint_every_steps = 100
  config.finetune.warmup_steps = 1
  config.finetune.base_lr = 2.0
  config.finetune.layer_decay = 1e-4
  config.finetune.label_smoothing = 0.0
  return config


@pytest.fixture(scope="module")
def run(data_dir, tmp_path_factory):
  """Pretrains 4 steps, then fine-tunes 60 from the newest checkpoint (--mode=finetune's
  function, which restores it)."""
  config = pretrain_config(data_dir)
  workdir = str(tmp_path_factory.mktemp("run"))
  train.train(config, workdir)
  results = finetune.finetune_latest(config, workdir)
  return config, workdir, results


def restore(directory: str, step: int) -> dict:
  """A checkpoint read back by Orbax alone, as nested dicts of arrays."""
  return ocp.StandardCheckpointer().restore(os.path.join(directory, "checkpoints", str(step), "default"))


def flat(tree) -> dict:
  return {k: np.asarray(v) for k, v in by_path(tree).items()}


def test_fine_tuning_starts_from_the_pretrained_encoder_decays_lr_by_layer_and_lowers_the_loss(run):
  config, workdir, _ = run
  midway = flat(restore(workdir, 2)["params"]["encoder"])
  pretrained = flat(restore(workdir, 4)["params"]["encoder"])
  tuned = flat(restore(os.path.join(workdir, "finetune"), 60)["params"]["encoder"])
  assert sorted(tuned) == sorted(pretrained) == sorted(midway)
  assert {name.split("/")[0] for name in tuned} == {"stage1_conv1", "stage1_bn1", "stage2_conv1", "stage2_bn1"}
  moved = {name: np.max(np.abs(tuned[name] - pretrained[name])) for name in tuned}
  for name in tuned:
    # Pretraining moves every weight by > 1e-3 every 2 steps: the fine-tuned encoder starts
    # from the pretrained one, not from an init, if stage 1 (lr x 1e-8) ends where it began.
    assert np.max(np.abs(pretrained[name] - midway[name])) > 1e-3, name
    if name.startswith("stage1"):
      assert moved[name] < 1e-6, (name, moved[name])
  for name in [n for n in tuned if n.startswith("stage2")]:
    # The encoder trains, at lr x 1e-4: a thousand times more than stage 1 moved.
    assert moved[name] > 1e-5 and moved[name] > 1000 * max(moved[n] for n in tuned if n.startswith("stage1")), moved

  with open(os.path.join(workdir, "finetune", "metrics.jsonl")) as f:
    losses = np.array([r["loss"] for r in map(json.loads, f)])
  assert len(losses) == 60 and np.all(np.isfinite(losses))
  assert losses[-5:].mean() < 0.9 * losses[:5].mean(), losses


def read_idx(path: str) -> np.ndarray:
  with gzip.open(path) as f:
    data = f.read()
  ndim = data[3]
  shape = np.frombuffer(data[4:4 + 4 * ndim], ">i4")
  return np.frombuffer(data[4 + 4 * ndim:], np.uint8).reshape(shape)


class Classifier(nn.Module):
  """The fine-tuned network, written out: ConvNet features -> Dense(10)."""
  widths: tuple

  @nn.compact
  def __call__(self, x):
    return nn.Dense(10, name="classifier")(ConvNet(self.widths, name="encoder")(x, train=False))


def test_finetune_json_records_settings_and_the_saved_networks_test_accuracy(run, data_dir):
  config, workdir, results = run
  with open(os.path.join(workdir, "finetune.json")) as f:
    recorded = json.load(f)
  assert recorded == json.loads(json.dumps(results))
  assert recorded["protocol"].startswith("full fine-tuning")
  assert recorded["settings"] == json.loads(json.dumps(config.finetune.to_dict()))
  assert recorded["settings"]["layer_decay"] == 1e-4 and recorded["settings"]["view"]["flip_p"] == 0.5
  assert (recorded["pretrained_step"], recorded["steps"]) == (4, 60)

  saved = restore(os.path.join(workdir, "finetune"), 60)
  images = read_idx(os.path.join(data_dir, "idx", "t10k-images-idx3-ubyte.gz"))[..., None] / 255.0
  labels = read_idx(os.path.join(data_dir, "idx", "t10k-labels-idx1-ubyte.gz"))
  info = DATASET_INFO["fashion_mnist"]
  x = (images - np.array(info["mean"])) / np.array(info["std"])
  logits = Classifier(tuple(config.model.widths)).apply(
      {"params": saved["params"], "batch_stats": saved["batch_stats"]}, jnp.asarray(x, jnp.float32))
  expected = np.mean(np.argmax(np.asarray(logits), 1) == labels)
  assert recorded["accuracy"] == pytest.approx(expected, abs=1e-9)


def test_finetune_without_a_checkpoint_says_pretrain_first(data_dir, tmp_path):
  with pytest.raises(FileNotFoundError, match="no pretraining checkpoint.*pretrain first"):
    finetune.finetune_latest(pretrain_config(data_dir), str(tmp_path))


def test_refuses_to_resume_the_fine_tuning_of_an_older_checkpoint(run):
  """WORKDIR/finetune holds the fine-tuning of step 4; pretraining has since reached step 8."""
  config, workdir, _ = run
  newer = step_lib.TrainState(step=np.int32(8), params={}, batch_stats={}, opt_state={}, method_state={})
  with pytest.raises(FileExistsError, match=r"checkpoint of step 4, not the newest \(8\): delete"):
    finetune.finetune_run(config, newer, workdir)


def test_random_init_baseline_fine_tunes_the_same_protocol_from_the_initialization(run):
  """config.finetune.init="random": no checkpoint is read; the encoder starts at the random
  init (stage 1, at lr x 1e-8, ends where the initialization has it, not where pretraining
  left it); the result goes to finetune_random_init.json next to finetune.json."""
  config, workdir, _ = run
  config = config.copy_and_resolve_references()
  config.finetune.init = "random"
  config.finetune.total_steps = 4
  results = finetune.finetune_latest(config, workdir)
  with open(os.path.join(workdir, "finetune_random_init.json")) as f:
    assert json.load(f) == json.loads(json.dumps(results))
  assert results["init"] == "random" and results["pretrained_step"] == 0 and results["steps"] == 4
  ft = finetune.finetune_config(config)
  init = flat(step_lib.init_variables(get_method("supervised").build(assemble.with_dataset_facts(
      ft, assemble.open_split(ft, "train"))), ft, 1)["params"]["encoder"])
  tuned = flat(restore(os.path.join(workdir, "finetune_random_init"), 4)["params"]["encoder"])
  pretrained = flat(restore(workdir, 4)["params"]["encoder"])
  for name in [n for n in tuned if n.startswith("stage1")]:
    np.testing.assert_allclose(tuned[name], init[name], atol=1e-6)
    assert np.max(np.abs(tuned[name] - pretrained[name])) > 1e-3
