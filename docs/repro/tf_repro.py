import os

import numpy as np

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf

nan, inf = float("nan"), float("inf")
seq = [1.0, nan, 2.0, 0.0, nan, nan]  # windows (k=2, s=1): [1,nan] [nan,2] [2,0] [0,nan] [nan,nan]
print("F1 NaN in max pooling")
print("  max_pool1d:", tf.nn.max_pool1d(tf.constant(seq, shape=(1, 6, 1)), 2, 1, "VALID").numpy().ravel())
print("  max_pool2d:", tf.nn.max_pool2d(tf.constant(seq, shape=(1, 1, 6, 1)), (1, 2), 1, "VALID").numpy().ravel())
print("  max_pool3d:", tf.nn.max_pool3d(tf.constant(seq, shape=(1, 1, 1, 6, 1)), (1, 1, 2), 1, "VALID").numpy().ravel())
print("F2 a window of -inf values")
print("  max_pool1d float32:", tf.nn.max_pool1d(tf.constant([-inf, -inf], shape=(1, 2, 1)), 2, 2, "VALID").numpy().ravel())
print(
    "  max_pool1d float64:",
    tf.nn.max_pool1d(tf.constant([-inf, -inf], shape=(1, 2, 1), dtype=tf.float64), 2, 2, "VALID").numpy().ravel(),
)
print(
    "  max_pool3d float32:",
    tf.nn.max_pool3d(tf.constant([-inf, -inf], shape=(1, 1, 1, 2, 1)), (1, 1, 2), 2, "VALID").numpy().ravel(),
)
print("F3 tied maxima in the gradient")
for name, f, shape, k in (
    ("max_pool2d", tf.nn.max_pool2d, (1, 2, 2, 1), 2),
    ("max_pool3d", tf.nn.max_pool3d, (1, 1, 2, 2, 1), (1, 2, 2)),
):
    x = tf.constant([1.0, 3.0, 3.0, 2.0], shape=shape)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = f(x, k, 1, "VALID")
    print(f"  {name}: y = {y.numpy().ravel()}, dx = {tape.gradient(y, x).numpy().ravel()}")
print("F4 rank-generic entry points: 3-D gradient fails")
x5, w5 = tf.ones((1, 4, 4, 4, 1)), tf.ones((2, 2, 2, 1, 1))
for name, f in (
    ("tf.nn.max_pool", lambda x: tf.nn.max_pool(x, 2, 2, "VALID")),
    ("tf.nn.avg_pool", lambda x: tf.nn.avg_pool(x, 2, 2, "VALID")),
    ("tf.nn.convolution", lambda x: tf.nn.convolution(x, w5, padding="VALID")),
    ("tf.nn.max_pool3d", lambda x: tf.nn.max_pool3d(x, 2, 2, "VALID")),
    ("tf.nn.conv3d", lambda x: tf.nn.conv3d(x, w5, [1] * 5, "VALID")),
):
    with tf.GradientTape() as tape:
        tape.watch(x5)
        y = f(x5)
    try:
        print(f"  {name}: gradient shape", tape.gradient(y, x5).shape)
    except AttributeError as e:
        print(f"  {name}: AttributeError:", e)
print("F5 groups are inferred from the filter: a filter with half the input channels is silently a grouped conv")
print("  ", tf.nn.conv1d(tf.ones((1, 3, 4)), tf.ones((1, 2, 2)), 1, "VALID").numpy().tolist())
print("F6 SAME average pooling leaves the padding out of the divisor (= count_include_pad=False)")
print("  ", tf.nn.avg_pool1d(tf.constant([1.0, 2, 3, 4, 5], shape=(1, 5, 1)), 3, 1, "SAME").numpy().ravel())
print("F7 limits")
x, w = tf.ones((1, 5, 4)), tf.ones((3, 2, 2))
with tf.GradientTape() as tape:
    tape.watch(x)
    y = tf.nn.conv1d(x, w, 1, "VALID")
try:
    tape.gradient(y, x)
except tf.errors.InvalidArgumentError as e:
    print("  grouped conv1d gradient:", e.message.splitlines()[0][-80:])
try:
    tf.nn.convolution(tf.ones((1, 7, 1)), tf.ones((2, 1, 1)), strides=2, dilations=2, padding="VALID")
except ValueError as e:
    print("  stride 2 + dilation 2:", e)
try:
    tf.nn.max_pool3d(tf.ones((1, 2, 2, 2, 1), tf.float64), 2, 2, "VALID")
except tf.errors.InvalidArgumentError as e:
    print("  float64 max_pool3d:", e.message.splitlines()[0][-90:])
try:
    tf.nn.pool(tf.ones((1, 5, 1)), (2,), "MAX", padding="SAME", dilations=(2,))
except ValueError as e:
    print("  SAME + dilation:", e)
print("F11 float32 convolution of an empty batch returns x (oneDNN; (0, 2, 4) is due)")
print("  conv1d float32:", tf.nn.conv1d(tf.zeros((0, 3, 1)), tf.ones((2, 1, 4)), 1, "VALID").shape,
      " float64:", tf.nn.conv1d(tf.zeros((0, 3, 1), tf.float64), tf.ones((2, 1, 4), tf.float64), 1, "VALID").shape)
print("F12 the weight gradient reads inputs no window reads")
for label, x, w, conv in (
    ("conv3d float64, stride 2, [3, -inf] (dw = 3 due):", np.array([3.0, -np.inf]).reshape(1, 1, 1, 2, 1),
     np.full((1, 1, 1, 1, 1), 2.0), lambda x, w: tf.nn.conv3d(x, w, [1, 1, 1, 2, 1], "VALID")),
    ("dilation 2, kernel 3, [nan, inf, 2, nan, 1] (dw = [nan, 2, 1] due):",
     np.array([nan, inf, 2, nan, 1], np.float32).reshape(1, 5, 1), np.ones((3, 1, 1), np.float32),
     lambda x, w: tf.nn.convolution(x, w, padding="VALID", dilations=2)),
):
    wt = tf.constant(w)
    with tf.GradientTape() as tape:
        tape.watch(wt)
        y = conv(tf.constant(x), wt)
    print("  ", label, tape.gradient(y, wt).numpy().ravel())
print("F13 a dy of another shape is taken: x (2, 3), y (2, 4), dy (1, 4)")
x = tf.ones((2, 3), tf.float64)
with tf.GradientTape() as tape:
    tape.watch(x)
    y = tf.matmul(x, tf.ones((4, 3), tf.float64), transpose_b=True)
print("  dx shape:", tape.gradient(y, x, output_gradients=tf.ones((1, 4), tf.float64)).shape)
