import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper

W_SHAPE = [1, 1, 2]


def conv(x_shape, pads):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)
    w = helper.make_tensor_value_info("w", TensorProto.FLOAT, W_SHAPE)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    g = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], pads=pads)], "g", [x, w], [y])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 22)], ir_version=10)
    so = ort.SessionOptions()
    so.log_severity_level = 4
    try:
        s = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
        return s.run(None, {"x": np.arange(1.0, 6.0, dtype=np.float32).reshape(1, 1, 5), "w": np.ones((1, 1, 2), np.float32)})[
            0
        ].ravel()
    except Exception as e:
        return f"{type(e).__name__}: {str(e).splitlines()[0][-70:]}"


print("static x shape [1, 1, 5], pads [-1, 0]:", conv([1, 1, 5], [-1, 0]))
print("symbolic batch ['N', 1, 5], pads [-1, 0]:", conv(["N", 1, 5], [-1, 0]))
print("all symbolic ['N', 'C', 'W'], pads [-1, 0]:", conv(["N", "C", "W"], [-1, 0]))
W_SHAPE = ["O", "I", "K"]
print("symbolic weight shape too (kernel size unknown to shape inference):", conv(["N", "C", "W"], [-1, 0]))
W_SHAPE = [1, 1, "K"]
print("weight shape [1, 1, 'K']:", conv([1, 1, 5], [-1, 0]))
