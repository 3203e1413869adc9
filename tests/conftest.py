"""Every test process sees 8 CPU devices, so multi-device semantics are tested on a
laptop; 1-device references use a 1-device mesh over the first of them."""

import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("JAX_PLATFORMS", "cpu")


import pytest  # noqa: E402


def pytest_configure(config):
  config.addinivalue_line(
      "markers", "monitors: keep the online probe and diagnostics that the configs switch on")


@pytest.fixture(autouse=True)
def _monitors_off_unless_asked(request, monkeypatch):
  """The CPU and paper configs switch on the online probe and training diagnostics
  (sslax/online_probe.py): two more compiled functions per run. Trainer tests that are not
  about them run without, which keeps the suite minutes shorter; tests/test_online_probe.py
  and tests marked `monitors` keep them."""
  if request.node.get_closest_marker("monitors") or "test_online_probe" in request.node.nodeid:
    return
  from sslax import presets

  def off(make):
    def wrapped(*args, **kwargs):
      out = make(*args, **kwargs)
      config = out[0] if isinstance(out, tuple) else out
      config.online_probe.enabled = config.diagnostics.enabled = False
      return out
    return wrapped

  for name in ("fashion_mnist_cpu", "imagenet_resnet50", "cifar10_resnet18"):
    monkeypatch.setattr(presets, name, off(getattr(presets, name)))


@pytest.fixture(scope="module")
def tiny_fashion_mnist(tmp_path_factory):
  """A TFDS data dir (str) whose fashion_mnist is built from tiny idx files made here
  (tests/helpers.py); SSLAX_FASHION_MNIST_DIR points at them for the module's tests only."""
  from tests.helpers import write_tiny_fashion_mnist

  root = tmp_path_factory.mktemp("fmnist")
  write_tiny_fashion_mnist(str(root / "idx"))
  with pytest.MonkeyPatch.context() as env:
    env.setenv("SSLAX_FASHION_MNIST_DIR", str(root / "idx"))
    yield str(root / "tfds")
