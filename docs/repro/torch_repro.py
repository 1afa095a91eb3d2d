import torch
import torch.nn.functional as F

print("T1 max_pool, window entirely in padding: backward writes into the next channel")
x = torch.tensor([[[5.0], [7.0]]], requires_grad=True)  # (N=1, C=2, W=1)
y, idx = F.max_pool1d(x, kernel_size=2, stride=2, padding=1, dilation=2, return_indices=True)  # reads -1 and 1: padding only
(dx,) = torch.autograd.grad(y, x, torch.tensor([[[10.0], [100.0]]]))
print("  y =", y.flatten().tolist(), " indices =", idx.flatten().tolist(), " dx =", dx.flatten().tolist())
print("T2 avg_pool3d rejects input smaller than the kernel even when the padded input is not")
for f, shape, k, p in (
    (F.avg_pool1d, (1, 1, 2), 3, 1),
    (F.avg_pool2d, (1, 1, 2, 4), (3, 1), (1, 0)),
    (F.max_pool3d, (1, 1, 2, 4, 4), (3, 1, 1), (1, 0, 0)),
    (F.avg_pool3d, (1, 1, 2, 4, 4), (3, 1, 1), (1, 0, 0)),
):
    try:
        print(f"  {f.__name__}{shape} k={k} p={p}:", tuple(f(torch.ones(shape), k, 1, p).shape))
    except RuntimeError as e:
        print(f"  {f.__name__}{shape} k={k} p={p}: RuntimeError:", e)
print("T3 dilated max_pool: padding limited to half the *undilated* kernel")
try:
    print(" ", F.max_pool1d(torch.ones(1, 1, 9), kernel_size=3, stride=1, padding=2, dilation=2).shape)
except RuntimeError as e:
    print("  k=3, d=2 (effective 5), padding=2: RuntimeError:", e)
print("T4 float16 avg_pool3d on CPU")
try:
    F.avg_pool3d(torch.ones(1, 1, 2, 2, 2, dtype=torch.half), 2)
except NotImplementedError as e:
    print("  NotImplementedError:", e)
