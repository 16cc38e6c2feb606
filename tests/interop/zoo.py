"""A small stand-in for the ONNX model zoo's bvlcalexnet-12.onnx, written node by node here (not by
minialex's exporter): Caffe's AlexNet converted through Caffe2, with its names and layout:

    data_0 (1, 3, S, S) BGR -> Conv conv1_w_0/conv1_b_0 -> conv1_1 -> Relu conv1_2 -> LRN norm1_1
    -> MaxPool pool1_1 -> Conv (group 2) conv2_1 -> Relu -> LRN norm2_1 -> MaxPool pool2_1
    -> Conv conv3_1 -> Relu -> Conv (group 2) conv4_1 -> Relu -> Conv (group 2) conv5_1 -> Relu
    -> MaxPool pool5_1 -> Reshape by OC2_DUMMY_1 -> OC2_DUMMY_0 -> Gemm fc6_w_0 (transB) -> Relu
    -> Dropout -> Gemm fc7 -> Relu -> Dropout -> Gemm fc8_1 -> Softmax prob_1

LRN over all channels with Caffe's constants (size 5, alpha 1e-4, beta 0.75, bias 1), conv1
11x11/4 unpadded. By default the input is declared 224x224 and each pool pads its bottom and
right edge by one (how the ceil-mode pooling of Caffe lets a 224 input reach fc6's 6x6), as the
zoo's file declares 224 for a network whose Caffe original reads 227.
"""

import numpy as np

# The paper's sizes by default; the tests use narrower layers with the same geometry.
PAPER = dict(channels=(96, 256, 384, 384, 256), fc=4096, classes=1000)


def weights(channels, fc, classes, seed=0):
    """Caffe-layout weights: {layer: (W, b)}, W of Conv (F, C/group, K, K), of Gemm (out, in)."""
    rng = np.random.default_rng(seed)
    c1, c2, c3, c4, c5 = channels
    shapes = {"conv1": (c1, 3, 11, 11), "conv2": (c2, c1 // 2, 5, 5), "conv3": (c3, c2, 3, 3),
              "conv4": (c4, c3 // 2, 3, 3), "conv5": (c5, c4 // 2, 3, 3), "fc6": (fc, c5 * 36),
              "fc7": (fc, fc), "fc8": (classes, fc)}
    out = {}
    for name, shape in shapes.items():
        fan_in = int(np.prod(shape[1:]))
        w = rng.standard_normal(shape) * (2.0 / fan_in) ** 0.5
        out[name] = (w.astype(np.float32), (rng.standard_normal(shape[0]) * 0.1).astype(np.float32))
    return out


def caffe_zoo_graph(params, side=224, pool_pads=(0, 0, 1, 1), groups=(1, 2, 1, 2, 2), extra_node=None,
                    drop_lrn2=False):
    """An onnx.ModelProto in the zoo's layout holding ``params`` (from ``weights``). The keyword
    arguments make broken variants for the refusal tests."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits, nodes = [], []
    for name, (w, b) in params.items():
        inits += [numpy_helper.from_array(w, f"{name}_w_0"), numpy_helper.from_array(b, f"{name}_b_0")]
    inits.append(numpy_helper.from_array(np.array([1, -1], np.int64), "OC2_DUMMY_1"))
    lrn = dict(size=5, alpha=1e-4, beta=0.75, bias=1.0)
    pool = dict(kernel_shape=[3, 3], strides=[2, 2], pads=list(pool_pads))

    def conv(name, x, k, s, p, g):
        nodes.append(helper.make_node("Conv", [x, f"{name}_w_0", f"{name}_b_0"], [f"{name}_1"], name=f"{name}_1",
                                      kernel_shape=[k, k], strides=[s, s], pads=[p] * 4, group=g, dilations=[1, 1]))
        nodes.append(helper.make_node("Relu", [f"{name}_1"], [f"{name}_2"], name=f"{name}_2"))
        return f"{name}_2"

    x = conv("conv1", "data_0", 11, 4, 0, groups[0])
    nodes.append(helper.make_node("LRN", [x], ["norm1_1"], name="norm1_1", **lrn))
    nodes.append(helper.make_node("MaxPool", ["norm1_1"], ["pool1_1"], name="pool1_1", **pool))
    x = conv("conv2", "pool1_1", 5, 1, 2, groups[1])
    if drop_lrn2:
        nodes.append(helper.make_node("MaxPool", [x], ["pool2_1"], name="pool2_1", **pool))
    else:
        nodes.append(helper.make_node("LRN", [x], ["norm2_1"], name="norm2_1", **lrn))
        nodes.append(helper.make_node("MaxPool", ["norm2_1"], ["pool2_1"], name="pool2_1", **pool))
    x = conv("conv3", "pool2_1", 3, 1, 1, groups[2])
    x = conv("conv4", x, 3, 1, 1, groups[3])
    x = conv("conv5", x, 3, 1, 1, groups[4])
    nodes.append(helper.make_node("MaxPool", [x], ["pool5_1"], name="pool5_1", **pool))
    x = "pool5_1"
    if extra_node is not None:  # a layer AlexNet has not
        nodes.append(helper.make_node(extra_node, [x], ["extra_1"], name="extra_1"))
        x = "extra_1"
    nodes.append(helper.make_node("Reshape", [x, "OC2_DUMMY_1"], ["OC2_DUMMY_0"], name="OC2_DUMMY_0"))
    x = "OC2_DUMMY_0"
    for name in ("fc6", "fc7", "fc8"):
        nodes.append(helper.make_node("Gemm", [x, f"{name}_w_0", f"{name}_b_0"], [f"{name}_1"], name=f"{name}_1",
                                      transB=1))
        x = f"{name}_1"
        if name != "fc8":
            nodes.append(helper.make_node("Relu", [x], [f"{name}_2"], name=f"{name}_2"))
            nodes.append(helper.make_node("Dropout", [f"{name}_2"], [f"{name}_3"], name=f"{name}_3"))
            x = f"{name}_3"
    nodes.append(helper.make_node("Softmax", [x], ["prob_1"], name="prob_1", axis=1))
    classes = params["fc8"][0].shape[0]
    graph = helper.make_graph(nodes, "bvlc_alexnet",
                              [helper.make_tensor_value_info("data_0", TensorProto.FLOAT, [1, 3, side, side])],
                              [helper.make_tensor_value_info("prob_1", TensorProto.FLOAT, [1, classes])], inits)
    model = helper.make_model(graph, producer_name="onnx-caffe2", ir_version=7,
                              opset_imports=[helper.make_opsetid("", 12)])
    onnx.checker.check_model(model)
    return model


def with_input_side(model, side):
    """A copy of ``model`` declaring (1, 3, side, side) input, to run it at another size."""
    import onnx
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    dims = copy.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_value = dims[3].dim_value = side
    return copy


def with_output(model, name):
    """A copy of ``model`` that also returns the intermediate tensor ``name`` (e.g. the logits fc8_1)."""
    import onnx
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    copy.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    return copy
