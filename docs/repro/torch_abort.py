import numpy as np
import torch
import torch.nn.functional as F

x = torch.tensor(
    np.array(
        [
            1.0,
            2.0,
            0.0,
            -1.0,
            0.0,
            3.0,
            -2.0,
            0.0,
            1.0,
            -1.0,
            0.0,
            -2.0,
            2.0,
            0.0,
            1.0,
            -3.0,
            2.0,
            0.0,
            3.0,
            1.0,
            1.0,
            0.0,
            1.0,
            -3.0,
            1.0,
            0.0,
            -1.0,
            -1.0,
            2.0,
            2.0,
            1.0,
            1.0,
            1.0,
            -1.0,
            -2.0,
            1.0,
        ],
        dtype=np.float16,
    ).reshape(3, 3, 1, 4),
    requires_grad=True,
)
y, idx = F.max_pool2d(x, kernel_size=2, stride=(1, 2), padding=1, dilation=2, return_indices=True)
print("y:", y.shape, "indices per plane (plane has 4 elements):", idx[0, 0].flatten().tolist())
(dx,) = torch.autograd.grad(y, x, torch.ones_like(y))
print("dx sum", float(dx.sum()), "dy sum", float(torch.ones_like(y).sum()))
