import jax
import jax.numpy as jnp
from jax import lax

print("J1 XLA folds pad + dilated reduce_window of a length-1 dim into the identity under jit")
x = jnp.array([[[7.0]]])  # (N=1, C=1, W=1)


def padded_window_sum(x):  # pad 1 each side, window 2 with dilation 2: reads padding only
    xp = lax.pad(x, 0.0, ((0, 0, 0), (0, 0, 0), (1, 1, 0)))
    return lax.reduce_window(xp, 0.0, lax.add, (1, 1, 2), (1, 1, 1), ((0, 0),) * 3, window_dilation=(1, 1, 2))


print("  eager:", padded_window_sum(x).ravel(), " jit:", jax.jit(padded_window_sum)(x).ravel(), " (exact: 0)")
print("  consequence, the gradient of an average pool (pad 1, k=2, dilation 2, W=1) under jit:")


def avg_pool(x):
    s = lax.reduce_window(x, 0.0, lax.add, (1, 1, 2), (1, 1, 1), ((0, 0), (0, 0), (1, 1)), window_dilation=(1, 1, 2))
    return s / 2.0  # count_include_pad=True divisor: 2 positions of the padded input


grad = jax.jit(jax.grad(lambda x: avg_pool(x).sum()))
print("  jit(grad):", grad(x).ravel(), " eager grad:", jax.grad(lambda x: avg_pool(x).sum())(x).ravel(), " (exact: 0)")
print("J2 no VJP for a dilated max pool")
try:
    jax.grad(lambda x: lax.reduce_window(x, -jnp.inf, lax.max, (1, 1, 2), (1, 1, 1), "VALID", window_dilation=(1, 1, 2)).sum())(
        jnp.ones((1, 1, 4))
    )
except NotImplementedError as e:
    print("  NotImplementedError:", e)
print("J3 negative padding crops")
print(
    "  conv pad (-1, 0):",
    lax.conv_general_dilated(jnp.arange(1.0, 6.0).reshape(1, 1, 5), jnp.ones((1, 1, 2)), (1,), [(-1, 0)]).ravel(),
)
print("J5 integer arrays are computed on, eager and under jit, with or without lhs_dilation")
xi, wi = jnp.ones((1, 1, 3), jnp.int32), jnp.ones((1, 1, 2), jnp.int32)
print("  conv:", lax.conv_general_dilated(xi, wi, (1,), [(0, 0)]))
print("  conv under jit:", jax.jit(lambda x, w: lax.conv_general_dilated(x, w, (1,), [(0, 0)]))(xi, wi))
print("  transposed (lhs_dilation 2):", lax.conv_general_dilated(xi, wi, (1,), [(1, 1)], lhs_dilation=(2,)))
print("  preferred_element_type=float32:",
      lax.conv_general_dilated(xi, wi, (1,), [(0, 0)], preferred_element_type=jnp.float32))
print("  reduce_window sum:", lax.reduce_window(jnp.ones((1, 1, 4), jnp.int32), 0, lax.add, (1, 1, 2), (1, 1, 1), "VALID"))
print("  matmul:", jnp.matmul(jnp.ones((2, 3), jnp.int32), jnp.ones((3, 4), jnp.int32)).dtype)
