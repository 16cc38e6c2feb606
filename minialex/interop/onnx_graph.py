"""The network as an ONNX inference graph, and ONNX graphs of this network read back.

``build_graph`` walks the table of minialex/models/architecture.py, as the networks themselves
are built, and emits one ONNX node per layer, named like the layer, with the weights as
initialisers under their ``state_dict()`` names (``conv1.weight`` ...). Evaluation mode: no
dropout nodes. ONNX's LRN divides alpha by the window size and spans all channels, so the
paper's per-column LRN becomes Split -> LRN, LRN -> Concat with alpha multiplied by the size.

``read_onnx`` accepts any graph that runs this network's layers in this order (with the switches
its layers show: Relu, Tanh or Sigmoid; LRN or none; any square max-pool): minialex's own
exports (whose metadata gives back the config, classes and preprocessing) and Caffe's
bvlc_alexnet as the ONNX model zoo publishes it (bvlcalexnet-12.onnx: initialisers
conv1_w_0 ..., a Reshape before fc6, Dropout and Softmax nodes). A graph without minialex's
metadata is taken to be Caffe's: BGR input minus Caffe's ImageNet mean. docs/interop.md.
"""

import importlib
from dataclasses import replace

import numpy as np

from ..models import AlexNetConfig, alexnet_config
from ..models import architecture
from ..weights.checkpoint import CheckpointError
from ..atomic import write_bytes
from .formats import FORMAT, checked_state, meta_from_export, require

OPSET = 17
INPUT, OUTPUT = "input", "logits"
# Caffe's ImageNet mean (ilsvrc_2012_mean.npy averaged over its 256x256 pixels), in its BGR order.
CAFFE_MEAN_BGR = (104.00698793, 116.66876762, 122.67891434)
CAFFE_RESIZE = 256
OP = {"conv": "Conv", "relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid", "lrn": "LRN", "pool": "MaxPool",
      "flatten": "Flatten", "linear": "Gemm"}
KIND = {op: kind for kind, op in OP.items()}
KIND["Reshape"] = "flatten"  # Caffe's graph reshapes before fc6


def _onnx(why):
    """The onnx package with its helper and numpy_helper submodules loaded, or one line naming it."""
    onnx = require("onnx", "onnx", why)
    importlib.import_module("onnx.helper")
    importlib.import_module("onnx.numpy_helper")
    return onnx


# -- export ------------------------------------------------------------------------------------
def build_graph(config, state, metadata=None):
    """An onnx.ModelProto of the network ``config`` describes, with the weights ``state``
    (full-shape float32 arrays under the state_dict() names): input ``input`` (N, C, S, S)
    float32, already mean-subtracted; output ``logits`` (N, num_classes). The ONNX checker
    (full check, with shape inference) must accept it."""
    onnx = _onnx("exporting to ONNX")
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    cfg = config if isinstance(config, AlexNetConfig) else AlexNetConfig.from_dict(config)
    table = architecture.layers(cfg)
    nodes, inits = [], []
    x = INPUT
    for layer in table:
        row = layer.row
        if layer.flatten_before:  # (N, C, S, S) -> (N, C*S*S), channel-major like minialex's Flatten
            nodes.append(helper.make_node("Flatten", [x], ["flatten"], name="flatten", axis=1))
            x = "flatten"
        w, b = f"{row.name}.weight", f"{row.name}.bias"
        inits += [numpy_helper.from_array(np.ascontiguousarray(state[w], np.float32), w),
                  numpy_helper.from_array(np.ascontiguousarray(state[b], np.float32), b)]
        out = OUTPUT if layer is table[-1] else row.name
        if row.kind == "conv":
            nodes.append(helper.make_node("Conv", [x, w, b], [out], name=row.name,
                                          kernel_shape=[row.kernel] * 2, strides=[row.stride] * 2,
                                          pads=[row.padding] * 4, group=layer.groups))
        else:  # y = x W^T + b with W (out, in), PyTorch's layout
            nodes.append(helper.make_node("Gemm", [x, w, b], [out], name=row.name, transB=1))
        x = out
        for kind, name in layer.followers:
            if kind in architecture.ACTIVATIONS:  # Relu, Tanh or Sigmoid (the activation switch)
                nodes.append(helper.make_node(OP[kind], [x], [name], name=name))
            elif kind == "pool":  # any window and stride: the pool switch (3/2 in the paper)
                nodes.append(helper.make_node("MaxPool", [x], [name], name=name,
                                              kernel_shape=[cfg.pool_size] * 2, strides=[cfg.pool_stride] * 2))
            elif kind == "lrn":
                _lrn_nodes(helper, numpy_helper, nodes, inits, x, name, cfg, row.width)
            elif kind == "dropout":
                continue  # the identity in evaluation mode: no node
            else:
                raise ValueError(f"no ONNX node for a {kind!r} layer")
            x = name
    batch = "N"
    graph = helper.make_graph(
        nodes, "minialex_alexnet",
        [helper.make_tensor_value_info(INPUT, onnx.TensorProto.FLOAT,
                                       [batch, cfg.in_channels, cfg.input_size, cfg.input_size])],
        [helper.make_tensor_value_info(OUTPUT, onnx.TensorProto.FLOAT, [batch, cfg.num_classes])],
        inits)
    # IR version 8 is what opset 17 shipped with: the oldest runtime that knows the opset reads it.
    model = helper.make_model(graph, producer_name="minialex", ir_version=8,
                              opset_imports=[helper.make_opsetid("", OPSET)],
                              doc_string="AlexNet (Krizhevsky et al. 2012) exported by minialex; "
                                         "input: RGB, 0..255, minus the mean in the metadata")
    if metadata:
        helper.set_model_props(model, dict(metadata))
    onnx.checker.check_model(model, full_check=True)
    return model


def _lrn_nodes(helper, numpy_helper, nodes, inits, x, name, cfg, width):
    """LRN in ONNX's convention (alpha / size, all channels); per column: Split, LRN, LRN, Concat."""
    attrs = dict(size=cfg.lrn_size, alpha=cfg.lrn_alpha_per_size, beta=cfg.lrn_beta, bias=cfg.lrn_k)
    if not cfg.lrn_per_column:
        nodes.append(helper.make_node("LRN", [x], [name], name=name, **attrs))
        return
    half = width // 2
    sizes = f"{name}.split"
    inits.append(numpy_helper.from_array(np.array([half, half], np.int64), sizes))
    halves = [f"{name}.{c}" for c in ("a", "b")]
    nodes.append(helper.make_node("Split", [x, sizes], [h + ".in" for h in halves], name=f"{name}/split", axis=1))
    for h in halves:  # each column's maps on their own, as on the paper's two GPUs
        nodes.append(helper.make_node("LRN", [h + ".in"], [h], name=h, **attrs))
    nodes.append(helper.make_node("Concat", halves, [name], name=f"{name}/concat", axis=1))


def write_onnx(out, config, state, metadata):
    _onnx(f"writing {out}")  # one line naming the extra to install, if onnx is missing
    model = build_graph(config, state, metadata)
    write_bytes(out, model.SerializeToString())  # all or nothing (minialex/atomic.py)


# -- import ------------------------------------------------------------------------------------
class _Refuse(CheckpointError):
    pass


def _attrs(node):
    from onnx import helper
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _label(node):
    return f"{node.op_type} {node.name or node.output[0]!r}"


def _pattern(switches):
    """The layer kinds AlexNet runs, in order, with their names (dropout: no node in inference),
    for the switches (activation, lrn, pool) the graph was found to have."""
    kinds = []
    # (the pools' window and stride change no kind; leaving them out keeps any size from failing here)
    for layer in architecture.layers(alexnet_config("tiny", activation=switches["activation"],
                                                    lrn=switches["lrn"])):
        if layer.flatten_before:
            kinds.append(("flatten", "flatten"))
        kinds.append((layer.row.kind, layer.row.name))
        kinds += [(k, n) for k, n in layer.followers if k != "dropout"]
    return kinds


def _describe_pattern(kinds):
    return " ".join(OP[k] for k, _ in kinds)


def _chain(graph, consts, data, path):
    """The graph as a list of (kind, node, extra) layers, checking that each node reads the one
    before it. Dropout and Identity are skipped (identities at inference), a final Softmax noted."""
    nodes = [n for n in graph.node if n.op_type != "Constant"]
    ops, current, softmax, i = [], data, False, 0
    while i < len(nodes):
        n = nodes[i]
        if not n.input or n.input[0] != current:
            raise _Refuse(f"{path} is not a chain of layers: {_label(n)} does not read {current!r}, the output "
                          "of the node before it")
        t = n.op_type
        if t in ("Dropout", "Identity"):
            current = n.output[0]
        elif t == "Split":
            columns = nodes[i:i + 4]
            if [m.op_type for m in columns] != ["Split", "LRN", "LRN", "Concat"]:
                raise _Refuse(f"{path}: {_label(n)} is not followed by LRN, LRN, Concat (the per-column LRN)")
            split, la, lb, cat = columns
            if (len(split.output) != 2 or [la.input[0], lb.input[0]] != list(split.output)
                    or list(cat.input) != [la.output[0], lb.output[0]] or _attrs(cat).get("axis") != 1
                    or _attrs(split).get("axis", 0) != 1):
                raise _Refuse(f"{path}: {_label(n)} and the nodes after it do not normalise two halves of the "
                              "channels and join them (the per-column LRN)")
            sizes = consts.get(split.input[1]) if len(split.input) > 1 and split.input[1] else _attrs(split).get("split")
            if sizes is not None and len(set(int(v) for v in np.asarray(sizes).reshape(-1))) != 1:
                raise _Refuse(f"{path}: {_label(n)} cuts the channels into unequal parts {list(np.asarray(sizes))}")
            if _attrs(la) != _attrs(lb):
                raise _Refuse(f"{path}: the two columns' LRN nodes {la.name!r} and {lb.name!r} differ")
            ops.append(("lrn", la, 2))
            current, i = cat.output[0], i + 4
            continue
        elif t == "Softmax" and i == len(nodes) - 1:
            softmax, current = True, n.output[0]
        else:
            kind = KIND.get(t)
            if kind is None:
                raise _Refuse(f"{path} is not AlexNet's graph: node {n.name or n.output[0]!r} is a {t}, a layer "
                              "AlexNet has not")
            ops.append((kind, n, 1))
            current = n.output[0]
        i += 1
    outputs = [o.name for o in graph.output]
    if outputs != [current]:
        raise _Refuse(f"{path}: the graph's outputs {outputs} are not its last layer's {current!r}")
    return ops, softmax


def _switches(ops, path):
    """The switches the graph's own layers show (docs/alexnet.md, "Switches"): its activation
    (one op for all seven), whether it has LRN, and its pools' window and stride (one for all
    three, square, stride at most the window); anything else is refused in one line."""
    acts = sorted({k for k, _, _ in ops if k in architecture.ACTIVATIONS})
    if len(acts) > 1:
        raise _Refuse(f"{path} is not AlexNet's graph: it mixes activations ({', '.join(OP[a] for a in acts)}); "
                      "AlexNet uses one after every layer")
    pools = []
    for k, n, _ in ops:
        if k == "pool":
            a = _attrs(n)
            kernel, strides = list(a.get("kernel_shape", [])), list(a.get("strides", [1, 1]))
            if len(kernel) != 2 or kernel[0] != kernel[1] or len(strides) != 2 or strides[0] != strides[1]:
                raise _Refuse(f"{path}: {_label(n)} is not a square max-pooling (kernel {kernel}, strides {strides})")
            pools.append((int(kernel[0]), int(strides[0])))
    if len(set(pools)) > 1:
        raise _Refuse(f"{path}: its max-pools differ ({', '.join(f'{k}x{k}/{s}' for k, s in pools)}); AlexNet's "
                      "three are alike")
    size, stride = pools[0] if pools else (architecture.POOL_KERNEL, architecture.POOL_STRIDE)
    if not 1 <= stride <= size:
        raise _Refuse(f"{path}: its max-pools are {size}x{size}/{stride}, a stride above the window")
    return dict(activation=acts[0] if acts else "relu", lrn=any(k == "lrn" for k, _, _ in ops),
                pool_size=size, pool_stride=stride)


def _check_pattern(ops, path, switches):
    want, got = _pattern(switches), [k for k, _, _ in ops]
    for j, (kind, name) in enumerate(want):
        if j >= len(got) or got[j] != kind:
            found = f"layer {j + 1} is {OP[got[j]]}" if j < len(got) else f"it ends after {len(got)} layers"
            raise _Refuse(f"{path} is not AlexNet's graph: {found} where AlexNet has {OP[kind]} ({name}); "
                          f"AlexNet runs {_describe_pattern(want)}")
    if len(got) > len(want):
        raise _Refuse(f"{path} is not AlexNet's graph: {len(got) - len(want)} more layers after fc8 "
                      f"({OP[got[len(want)]]} ...)")


def _array(consts, name, path, node):
    if name not in consts:
        raise _Refuse(f"{path}: {_label(node)} reads {name!r}, which is no initialiser: only fixed weights "
                      "can be imported")
    return np.asarray(consts[name])


def _round(v):
    """An attribute stored as float32 (1e-4 comes back as 9.99999974e-05), as the decimal it was."""
    return float(f"{float(v):.7g}")


def _conv(node, consts, path):
    a = _attrs(node)
    w = _array(consts, node.input[1], path, node)
    b = _array(consts, node.input[2], path, node) if len(node.input) > 2 and node.input[2] else np.zeros(w.shape[0])
    k = list(a.get("kernel_shape", w.shape[2:]))
    s, p = list(a.get("strides", [1, 1])), list(a.get("pads", [0, 0, 0, 0]))
    bad = []
    if w.ndim != 4 or k[0] != k[1] or list(w.shape[2:]) != k:
        bad.append(f"kernel {k}")
    if s[0] != s[1]:
        bad.append(f"strides {s}")
    if len(set(p)) != 1:
        bad.append(f"pads {p} (minialex pads every side alike)")
    if any(d != 1 for d in a.get("dilations", [1, 1])) or a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        bad.append("dilations or auto_pad")
    if bad:
        raise _Refuse(f"{path}: {_label(node)} has {', '.join(bad)}, which AlexNet's convolutions have not")
    return dict(w=w, b=b.reshape(-1), kernel=k[0], stride=s[0], padding=p[0], group=int(a.get("group", 1)),
                node=node)


def _linear(node, consts, path):
    a = _attrs(node)
    w = _array(consts, node.input[1], path, node)
    if a.get("transA", 0) or _round(a.get("alpha", 1.0)) != 1.0 or _round(a.get("beta", 1.0)) != 1.0 or w.ndim != 2:
        raise _Refuse(f"{path}: {_label(node)} is not a plain fully connected layer (transA, alpha or beta)")
    w = w if a.get("transB", 0) else w.T  # minialex (and PyTorch) keep W as (out, in)
    b = _array(consts, node.input[2], path, node) if len(node.input) > 2 and node.input[2] else np.zeros(w.shape[0])
    return dict(w=w, b=b.reshape(-1), node=node)


def _pool_check(node, path):
    """(end padding, ceil mode) of a max-pool whose window and stride _switches read already."""
    a = _attrs(node)
    pads = list(a.get("pads", [0, 0, 0, 0]))
    if any(d != 1 for d in a.get("dilations", [1, 1])) or pads[:2] != [0, 0] or pads[2] != pads[3]:
        raise _Refuse(f"{path}: {_label(node)} is not AlexNet's max-pooling (dilations, or padding at the start) "
                      f"(kernel {list(a.get('kernel_shape', []))}, strides {list(a.get('strides', [1, 1]))}, "
                      f"pads {pads})")
    return pads[2], bool(a.get("ceil_mode", 0))


def _flatten_check(node, consts, path, fan_in):
    if node.op_type == "Flatten":
        if _attrs(node).get("axis", 1) != 1:
            raise _Refuse(f"{path}: {_label(node)} flattens from axis {_attrs(node)['axis']}, not 1")
        return
    if len(node.input) > 1:
        shape = [int(v) for v in _array(consts, node.input[1], path, node).reshape(-1)]
    else:  # opsets before 5 give the shape as an attribute
        shape = [int(v) for v in _attrs(node).get("shape", [])]
    if len(shape) != 2 or shape[1] not in (-1, fan_in):
        raise _Refuse(f"{path}: {_label(node)} reshapes to {shape}, not (N, {fan_in}) before fc6")


def _input_side(graph_input):
    dims = graph_input.type.tensor_type.shape.dim
    sides = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    if len(sides) == 4 and sides[2] and sides[2] == sides[3]:
        return sides[2]
    return None


def _fit_input_size(cfg, declared, fan_in, path):
    """The input side at which the table gives fc6 ``fan_in`` inputs: the declared one, else the
    next that does within one conv1 stride (Caffe's graph converted at 224 is a 227 network:
    its ceil-mode pools are what make 224 work there), else, undeclared, the smallest."""
    start = declared or 1
    stop = start + cfg.conv1_stride if declared else 4096
    for side in range(start, stop):
        try:
            c = replace(cfg, input_size=side)
        except ValueError:
            continue
        if c.fc6_inputs == fan_in:
            return c
    raise _Refuse(f"{path}: no input size near {declared or 'any'} px gives fc6 its {fan_in} inputs through "
                  "AlexNet's layers")


def read_onnx(path, foreign_channel_order="BGR"):
    """``(arrays, meta)`` in checkpoint form from an ONNX graph of this network, or a one-line
    CheckpointError naming what differs. A graph without minialex's metadata is assumed to
    take ``foreign_channel_order`` input (Caffe's BGR): its conv1 channels are reversed, so the
    network reads RGB like every minialex network, and the preprocessing is Caffe's (resize
    256, crop the network's input size, subtract Caffe's channel means)."""
    onnx = _onnx(f"reading {path}")
    try:
        model = onnx.load(path)
    except Exception as exc:  # noqa: BLE001  protobuf and onnx raise many types
        raise CheckpointError(f"cannot read {path} as ONNX: {' '.join(str(exc).split())}") from None
    graph = model.graph
    consts = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant" and n.attribute:
            consts[n.output[0]] = onnx.numpy_helper.to_array(n.attribute[0].t)
    inputs = [i for i in graph.input if i.name not in consts]
    if len(inputs) != 1:
        raise _Refuse(f"{path}: the graph takes {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); "
                      "AlexNet takes one image batch")
    ops, softmax = _chain(graph, consts, inputs[0].name, path)
    switches = _switches(ops, path)
    _check_pattern(ops, path, switches)

    convs = [_conv(n, consts, path) for k, n, _ in ops if k == "conv"]
    linears = [_linear(n, consts, path) for k, n, _ in ops if k == "linear"]
    lrns = [(_attrs(n), cols) for k, n, cols in ops if k == "lrn"]
    pools = [_pool_check(n, path) for k, n, _ in ops if k == "pool"]
    flatten = next(n for k, n, _ in ops if k == "flatten")
    if len({(tuple(sorted(a.items())), cols) for a, cols in lrns}) > 1:
        raise _Refuse(f"{path}: its two LRN layers differ ({lrns[0][0]} vs {lrns[1][0]})")
    # without LRN (the lrn switch off) its constants are the paper's, which nothing reads
    lrn, columns = lrns[0] if lrns else ({"size": 5, "alpha": 5e-4, "beta": 0.75, "bias": 2.0}, 2)
    size = int(lrn["size"])
    alpha, beta, bias = (_round(lrn.get(key, default)) for key, default in
                         (("alpha", 1e-4), ("beta", 0.75), ("bias", 1.0)))
    per_column = columns == 2
    c1 = convs[0]
    try:
        cfg = AlexNetConfig(
            num_classes=linears[2]["w"].shape[0], in_channels=c1["w"].shape[1],
            channels=tuple(c["w"].shape[0] for c in convs), conv1_kernel=c1["kernel"],
            conv1_stride=c1["stride"], conv1_padding=c1["padding"], fc_width=linears[0]["w"].shape[0],
            lrn_size=size, lrn_k=bias, lrn_beta=beta,
            # per column: the paper's convention (alpha on the sum); over all channels: Caffe's
            lrn_alpha=_round(alpha / size) if per_column else alpha,
            lrn_alpha_over_size=not per_column, lrn_per_column=per_column,
            input_size=max(227, c1["kernel"]), **switches)  # a placeholder size until it is fitted below
    except ValueError as exc:
        raise _Refuse(f"{path}: its layer sizes make no AlexNet ({exc})") from None
    fan_in = linears[0]["w"].shape[1]
    declared = _input_side(inputs[0])

    md = {p.key: p.value for p in model.metadata_props}
    ours = md.get("format") == FORMAT
    notes = []
    if ours:
        extra, meta = meta_from_export(md, path)
        saved = AlexNetConfig.from_dict(meta["model_config"])
        # The switches are in both (the graph's layers, the metadata's config): they must agree.
        differ = [f"{k} {getattr(saved, k)} vs {v}" for k, v in switches.items() if getattr(saved, k) != v]
        if differ:
            raise _Refuse(f"{path}: its metadata and its graph differ in the switches (metadata vs graph): "
                          + ", ".join(differ))
        lrn_fields = {} if saved.lrn else dict(lrn_size=cfg.lrn_size, lrn_k=cfg.lrn_k, lrn_beta=cfg.lrn_beta,
                                               lrn_per_column=cfg.lrn_per_column)  # no LRN: nothing to compare
        same = (replace(saved, input_size=cfg.input_size, lrn_alpha=cfg.lrn_alpha, dropout=cfg.dropout,
                        init_std=cfg.init_std, lrn_alpha_over_size=cfg.lrn_alpha_over_size, **lrn_fields) == cfg
                and (not saved.lrn
                     or abs(saved.lrn_alpha_on_sum - cfg.lrn_alpha_on_sum) <= 1e-6 * cfg.lrn_alpha_on_sum))
        if not same or saved.fc6_inputs != fan_in:
            raise _Refuse(f"{path}: its metadata describes another network than its graph")
        cfg = saved
    else:
        cfg = _fit_input_size(cfg, declared, fan_in, path)
        if declared and declared != cfg.input_size:
            notes.append(f"the graph declares {declared}x{declared} inputs; its layers fit "
                         f"{cfg.input_size}x{cfg.input_size} (conv1 padding {cfg.conv1_padding}), which the "
                         "network is built for")

    # Shapes the table fixes: every conv's kernel, stride and padding, its groups, the pools.
    table = architecture.layers(cfg)
    problems = []
    for c, layer in zip(convs, [l for l in table if l.row.kind == "conv"]):
        row = layer.row
        if (c["kernel"], c["stride"], c["padding"]) != (row.kernel, row.stride, row.padding):
            problems.append(f"{row.name} is {c['kernel']}x{c['kernel']}/{c['stride']} padding {c['padding']}, "
                            f"AlexNet's {row.kernel}x{row.kernel}/{row.stride} padding {row.padding}")
        if c["group"] != layer.groups:
            problems.append(f"{row.name} has group {c['group']}, AlexNet's {layer.groups}")
    for (pad_end, ceil), layer in zip(pools, [l for l in table if "pool" in l.row.then]):
        side = layer.out_side
        k, st = cfg.pool_size, cfg.pool_stride
        plain = (side - k) // st + 1
        span = side + pad_end - k
        padded = (-(-span // st) if ceil else span // st) + 1
        if padded != plain:  # extra end padding that a window reads: not minialex's pooling
            problems.append(f"the pool after {layer.row.name} gives {padded} outputs from {side} (padding or "
                            f"ceil mode), AlexNet's {k}x{k}/{st} pooling {plain}")
    if problems:
        raise _Refuse(f"{path} is not this AlexNet: " + "; ".join(problems))
    _flatten_check(flatten, consts, path, cfg.fc6_inputs)

    names = architecture.weight_names(cfg)
    state = {}
    for name, layer in zip(names, convs + linears):
        state[f"{name}.weight"], state[f"{name}.bias"] = layer["w"], layer["b"]
    state = checked_state(cfg.to_dict(), state, path)
    if not ours and foreign_channel_order == "BGR" and cfg.in_channels == 3:
        state["conv1.weight"] = np.ascontiguousarray(state["conv1.weight"][:, ::-1])
        notes.append("no minialex metadata: taken as Caffe's bvlc_alexnet, BGR input; conv1's input channels "
                     "are reversed so the network reads RGB, and the preprocessing is Caffe's")
    if softmax:
        notes.append("the graph ends in Softmax; minialex's network stops at the logits (the same ranking)")

    arrays = {f"model/{k}": v for k, v in state.items()}
    if ours:
        arrays.update(extra)
        meta["description"] = f"{path} (ONNX, exported from {md.get('source', 'minialex')})"
    else:
        arrays["stats/mean_rgb"] = np.asarray(CAFFE_MEAN_BGR[::-1], np.float32)
        meta = {"model_config": cfg.to_dict(), "classes": None, "names": None,
                "preprocess": {"resize": max(CAFFE_RESIZE, cfg.input_size), "crop": cfg.input_size,
                               "mean": "channel"},
                "description": f"{path} (ONNX graph of an AlexNet, {cfg.num_parameters():,} parameters)"}
    meta["notes"] = notes
    return arrays, meta
