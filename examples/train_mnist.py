"""MNIST in one screen: a 784-800-10 network trained with numpynn's Python API, no framework around it.

    python examples/train_mnist.py                         # 20 epochs: 98.65 % test accuracy
    EPOCHS=1 TRAIN_IMAGES=5000 python examples/train_mnist.py   # a quick look, a few seconds

The same recipe as `numpynn train` (the mlp preset): SGD with momentum, a cosine schedule, label smoothing.
The data is found as the CLI finds it: --data's folder is $NUMPYNN_DATA here, else the cache, else a download.
"""
import os

import numpy as np

from numpynn.data import load_mnist
from numpynn.losses import softmax_cross_entropy
from numpynn.model import mlp
from numpynn.optim import SGD, make_schedule

EPOCHS = int(os.environ.get("EPOCHS", 20))
TRAIN_IMAGES = int(os.environ.get("TRAIN_IMAGES", 50_000))  # fewer: a quicker, less accurate run
BATCH, K = 128, 10

data = load_mnist()                                  # pixels / 255, train 50,000 / dev 10,000 / test 10,000
X, y = data.X_train[:TRAIN_IMAGES], data.y_train[:TRAIN_IMAGES]  # X (N, 784) float32, y (N,) int64
rng = np.random.default_rng(0)
model = mlp([784, 800, K], rng=rng)                  # Dense, ReLU, Dense
optimizer = SGD(lr=0.1, momentum=0.9)
steps_per_epoch = -(-len(X) // BATCH)
schedule = make_schedule("cosine", 0.1, total_steps=EPOCHS * steps_per_epoch)

for epoch in range(EPOCHS):
    order = rng.permutation(len(X))                  # a fresh shuffle every epoch
    for step in range(steps_per_epoch):
        batch = order[step * BATCH : (step + 1) * BATCH]
        Z = model.forward(X[batch], train=True)      # (B, K) logits
        loss, dZ = softmax_cross_entropy(Z, y[batch], K, label_smoothing=0.1)
        model.backward(dZ)                           # fills every layer's gradients
        optimizer.lr = schedule(epoch * steps_per_epoch + step)
        optimizer.step(model.params(), model.grads())  # the only line that changes the weights
    dev_accuracy = (model.predict(data.X_dev) == data.y_dev).mean()
    print(f"epoch {epoch + 1}/{EPOCHS}: loss {loss:.3f}, dev accuracy {100 * dev_accuracy:.2f}%")

print(f"test accuracy {100 * (model.predict(data.X_test) == data.y_test).mean():.2f}%")
