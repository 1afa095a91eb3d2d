import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper


def run(op, *inputs, **attrs):
    names = [f"i{k}" for k in range(len(inputs))]
    vi = [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(a.shape)) for n, a in zip(names, inputs)]
    graph = helper.make_graph(
        [helper.make_node(op, names, ["y"], **attrs)], "g", vi, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)], ir_version=10)
    so = ort.SessionOptions()
    so.log_severity_level = 4
    try:
        sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        return sess.run(None, {n: a.astype(np.float32) for n, a in zip(names, inputs)})[0].ravel()
    except Exception as e:
        return f"{type(e).__name__}: {str(e).splitlines()[0][-110:]}"


nan, inf = float("nan"), float("inf")
seq = np.array([1.0, nan, 2.0, 0.0, nan, nan])  # windows (k=2, s=1): [1,nan] [nan,2] [2,0] [0,nan] [nan,nan]
print("O1 NaN in MaxPool")
print("  1-D:", run("MaxPool", seq.reshape(1, 1, 6), kernel_shape=[2], strides=[1]))
print("  2-D:", run("MaxPool", seq.reshape(1, 1, 1, 6), kernel_shape=[1, 2], strides=[1, 1]))
print("  3-D:", run("MaxPool", seq.reshape(1, 1, 1, 1, 6), kernel_shape=[1, 1, 2], strides=[1, 1, 1]))
print("O2 MaxPool of -inf values / of a window entirely in padding")
print("  [-inf, -inf]:", run("MaxPool", np.array([[[-inf, -inf]]]), kernel_shape=[2]))
print("  W=1, pads 1,1, k=2, dilation 2:", run("MaxPool", np.array([[[5.0]]]), kernel_shape=[2], pads=[1, 1], dilations=[2]))
print(
    "O3 AveragePool count_include_pad=0, window entirely in padding (0/0):",
    run("AveragePool", np.array([[[5.0]]]), kernel_shape=[2], pads=[1, 1], dilations=[2], count_include_pad=0),
)
print("O4 negative pads")
print("  Conv pads [-1, 0]:", run("Conv", np.arange(1.0, 6.0).reshape(1, 1, 5), np.ones((1, 1, 2)), pads=[-1, 0]))
print("  MaxPool pads [-1, 0]:", run("MaxPool", np.arange(1.0, 6.0).reshape(1, 1, 5), kernel_shape=[2], pads=[-1, 0]))
print("O5 auto_pad SAME with dilation (ONNX: output size ceil(7 / 2) = 4)")
x7 = np.arange(1.0, 8.0).reshape(1, 1, 7)
print(
    "  MaxPool SAME_UPPER k=2 s=2 d=2:", run("MaxPool", x7, kernel_shape=[2], strides=[2], dilations=[2], auto_pad="SAME_UPPER")
)
print(
    "  MaxPool pads [1, 1] (what SAME_UPPER means):",
    run("MaxPool", x7, kernel_shape=[2], strides=[2], dilations=[2], pads=[1, 1]),
)
print("  Conv SAME_UPPER d=2:", run("Conv", x7, np.ones((1, 1, 2)), dilations=[2], auto_pad="SAME_UPPER"))
print("O6 MaxPool auto_pad SAME_UPPER with stride > kernel (total SAME padding clamps to 0)")
print("  MaxPool k=1 s=3 W=2:", run("MaxPool", np.array([[[1.0, 2.0]]]), kernel_shape=[1], strides=[3], auto_pad="SAME_UPPER"))
print(
    "  AveragePool k=1 s=3 W=2:",
    run("AveragePool", np.array([[[1.0, 2.0]]]), kernel_shape=[1], strides=[3], auto_pad="SAME_UPPER"),
)
print("O7 pooling pads must be smaller than the undilated kernel")
print("  MaxPool k=2 d=3 pads [2, 2]:", run("MaxPool", np.ones((1, 1, 5)), kernel_shape=[2], dilations=[3], pads=[2, 2]))
