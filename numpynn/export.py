"""Export: a numpynn Sequential as an ONNX file, to run where numpynn does not (onnxruntime in Python, C++ or a
browser, and every tool that reads ONNX).

The graph computes what model.forward(X, train=False) and model.predict_proba(X) compute, layer by layer:

    input   pixels         (N, D) float32, N dynamic (D = 784: 28 x 28 pixels / 255, as numpynn trains on them)
    outputs logits         (N, K) float32, the last layer's output
            probabilities  (N, K) float32, Softmax(logits / T) along each row, T the model's temperature
                           (1 unless it was calibrated: then a Div node comes before the Softmax)

    Dense        Gemm(X, W, b): W is (D_in, D_out) already, so Y = X @ W + b with no transpose
    ReLU, LeakyReLU(slope), Sigmoid, Tanh      Relu, LeakyRelu(alpha = slope), Sigmoid, Tanh
    Dropout      nothing: at inference Y = X
    BatchNorm    BatchNormalization(X, gamma, beta, running_mean, running_var, epsilon = eps), inference form:
                 the same (X - mean) / sqrt(var + eps) * gamma + beta, per column of (N, D) rows
    Conv2D       Conv(X, W, b, strides = (s, s), pads = (p, p, p, p)): both are cross-correlations and W is
                 (C_out, C_in, k, k), ONNX's OIHW, so the weights go in as they are
    MaxPool2D, AvgPool2D   MaxPool, AveragePool(kernel = size, strides = stride, no padding): leftover rows dropped
    GlobalAvgPool          GlobalAveragePool, then Flatten: (N, C, 1, 1) -> (N, C)
    Flatten      Flatten(axis = 1)
    Unflatten    Reshape to (-1, C, H, W)
    WidthNorm    its equations (widthnorm.py) as nodes: ReduceMax finds each image's brightest pixel and its ink
                 columns, ArgMax the first and last of them, Min, Max and Relu build M from the interval
                 overlaps, Where keeps an inkless image as it is, and MatMul gives X M^T, row by row

An ensemble (ensemble.py) becomes each member's layers, names prefixed member<m>/, then
    logits = ReduceLogSumExp over m of LogSoftmax(Z_m / T_m), minus log M     (log of the mean probability)
    probabilities = Softmax(logits)                                           (the mean itself)
With test-time shifts, the members read the V = 5 views stacked as (V N, D) rows: Reshape to pictures, Pad
with s zeros, one Slice per view, Reshape and Concat; each member's log-probabilities are reshaped to
(V, N, K), and the log-sum-exp runs over members and views, minus log(M V).

The model's header (numpynn version, architecture, dataset, preprocessing, metrics) goes in metadata_props.

Refused, with one line of ExportError: float64 layers (the graph takes float32 pixels), a BatchNorm whose
input is not (N, D) rows (numpynn's would normalise the last axis of an image, ONNX's the channels), a Dense
whose input is not rows, an output that is not (N, K), and any layer this module does not know (a subclass
included). `onnx` is imported only here, inside the functions, so numpynn runs without it.

Left out: float16 or quantized graphs, training graphs, and other opsets than OPSET.
"""
from __future__ import annotations

import json

import numpy as np

from . import __version__
from .conv import AvgPool2D, Conv2D, Flatten, GlobalAvgPool, MaxPool2D, Unflatten
from .layers import BatchNorm, Dense, Dropout, LeakyReLU, ReLU, Sigmoid, Tanh
from .widthnorm import INK, WidthNorm

# Opset 21 (ONNX 1.16, IR version 10): every operator above is older than it, onnxruntime has run it since
# 1.18, and onnxruntime-web runs it too. A newer opset would gain nothing here and shut out older runtimes.
OPSET = 21
INPUT, LOGITS, PROBABILITIES = "pixels", "logits", "probabilities"
INSTALL = "numpynn export needs the onnx package: pip install 'numpynn[onnx]'"


class ExportError(ValueError):
    """A model (or a layer option) that has no faithful ONNX form here, or onnx is missing. One line."""


def require_onnx():
    """The onnx module, or an ExportError saying how to install it."""
    try:
        import onnx
    except ImportError:
        raise ExportError(INSTALL) from None
    return onnx


def _layer_nodes(model, D: int, prefix: str, output: str, nodes: list, weights: list, X: str = INPUT) -> int:
    """Append the nodes and weights of `model`'s layers, from the tensor X (INPUT unless an ensemble's views)
    to the tensor `output` (its logits), each name starting with `prefix` ("" for a single model, "member<m>/"
    in an ensemble). Returns K."""
    from onnx import helper, numpy_helper

    shapes = _shapes(model, D)  # each layer's output shape for one image, from a probe in inference mode

    def node(op: str, inputs: list, i: int, layer, **attributes) -> str:
        Y = f"{prefix}{i}.{type(layer).__name__}.{op}"  # e.g. "0.Dense.Gemm": the layer's index (param_names())
        nodes.append(helper.make_node(op, inputs, [Y], name=Y, **attributes))
        return Y

    def weight(i: int, name: str, array) -> str:
        weights.append(numpy_helper.from_array(np.asarray(array), f"{prefix}{i}.{name}"))
        return f"{prefix}{i}.{name}"

    shape_in = (D,)
    for i, (layer, shape_out) in enumerate(zip(model.layers, shapes)):
        kind = type(layer)
        dtype = getattr(layer, "dtype", np.dtype(np.float32))
        if dtype != np.float32:
            raise ExportError(f"layer {i} ({kind.__name__}) computes in {dtype}; the ONNX graph takes float32 "
                              "pixels: export a float32 model")
        if kind is Dense:
            _require_rows(i, layer, shape_in)
            X = node("Gemm", [X, weight(i, "W", layer.params["W"]), weight(i, "b", layer.params["b"])], i, layer)
        elif kind is ReLU:
            X = node("Relu", [X], i, layer)
        elif kind is LeakyReLU:
            X = node("LeakyRelu", [X], i, layer, alpha=float(layer.slope))
        elif kind is Sigmoid:
            X = node("Sigmoid", [X], i, layer)
        elif kind is Tanh:
            X = node("Tanh", [X], i, layer)
        elif kind is Dropout:
            pass  # inference: Y = X, no node at all
        elif kind is BatchNorm:
            _require_rows(i, layer, shape_in)
            names = [weight(i, name, layer.params[name]) for name in ("gamma", "beta")]
            names += [weight(i, name, layer.buffers[name]) for name in ("running_mean", "running_var")]
            X = node("BatchNormalization", [X, *names], i, layer, epsilon=float(layer.eps))
        elif kind is Conv2D:
            k, s, p = layer.kernel, layer.stride, layer.padding
            X = node("Conv", [X, weight(i, "W", layer.params["W"]), weight(i, "b", layer.params["b"])], i, layer,
                     kernel_shape=[k, k], strides=[s, s], pads=[p, p, p, p])
        elif kind in (MaxPool2D, AvgPool2D):
            op = "MaxPool" if kind is MaxPool2D else "AveragePool"
            X = node(op, [X], i, layer, kernel_shape=[layer.size] * 2, strides=[layer.stride] * 2)
        elif kind is GlobalAvgPool:
            X = node("Flatten", [node("GlobalAveragePool", [X], i, layer)], i, layer, axis=1)
        elif kind is Flatten:
            X = node("Flatten", [X], i, layer, axis=1)
        elif kind is Unflatten:
            X = node("Reshape", [X, weight(i, "shape", np.array([-1, *layer.shape], np.int64))], i, layer)
        elif kind is WidthNorm:
            X = _width_norm_nodes(X, layer, f"{prefix}{i}.WidthNorm.", nodes, weights)
        else:
            raise ExportError(f"layer {i} ({kind.__name__}) has no ONNX form in numpynn's exporter; it exports "
                              f"{', '.join(cls.__name__ for cls in EXPORTABLE)}")
        shape_in = shape_out
    if len(shape_in) != 1:
        raise ExportError(f"the model's output is {('N', *shape_in)} per batch; the ONNX graph gives (N, K) "
                          "logits: end the model with a Dense layer")
    K = shape_in[0]

    # The last layer's output is the graph's "logits"; a model of Dropout alone would have no node to rename.
    if nodes and nodes[-1].output[0] == X:
        nodes[-1].output[0] = output
    else:
        nodes.append(helper.make_node("Identity", [X], [output], name=output))
    return K


def to_onnx(model, header: dict | None = None, D: int = 784):
    """The ONNX model (an onnx.ModelProto) of `model`, a numpynn Sequential taking (N, D) rows, with `header`
    (a model file's header, or None) in its metadata. Checked by onnx.checker before it is returned. For an
    ensemble.Ensemble, each member's layers (names prefixed member<m>/), then logits = log of the mean of the
    members' softmax(Z_m / T_m), as Ensemble computes it: LogSoftmax, ReduceLogSumExp over the members, minus
    log M; probabilities = Softmax(logits) is that mean."""
    onnx = require_onnx()
    from onnx import TensorProto, helper, numpy_helper

    nodes, weights = [], []
    if hasattr(model, "members"):
        K = _ensemble_nodes(model, D, nodes, weights)
    else:
        K = _layer_nodes(model, D, "", LOGITS, nodes, weights)
    scaled = LOGITS
    if model.temperature != 1.0:  # calibrated: softmax(logits / T), the same probabilities as predict_proba
        weights.append(numpy_helper.from_array(np.array(model.temperature, np.float32), "temperature"))
        scaled = "logits_over_temperature"
        nodes.append(helper.make_node("Div", [LOGITS, "temperature"], [scaled], name="temperature"))
    nodes.append(helper.make_node("Softmax", [scaled], [PROBABILITIES], name="softmax", axis=-1))
    def rows(name: str, width: int):  # a float32 (N, width) tensor, N named and left free: any batch size
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", width])

    graph = helper.make_graph(nodes, "numpynn", [rows(INPUT, D)], [rows(LOGITS, K), rows(PROBABILITIES, K)],
                              initializer=weights)
    opset = [helper.make_opsetid("", OPSET)]
    proto = helper.make_model(graph, opset_imports=opset, producer_name="numpynn", producer_version=__version__,
                              ir_version=helper.find_min_ir_version_for(opset))  # newer IR shuts out older runtimes
    proto.doc_string = (f"A numpynn network: {INPUT} (N, {D}) float32 -> {LOGITS} (N, {K}) and {PROBABILITIES} "
                        f"(N, {K}) = Softmax({LOGITS} / {model.temperature:g}).")
    helper.set_model_props(proto, _metadata(model, header or {}))
    try:
        onnx.checker.check_model(proto, full_check=True)  # full_check: shapes are inferred and must agree
    except onnx.checker.ValidationError as error:
        raise ExportError(f"the ONNX graph fails onnx.checker, a bug in numpynn's exporter: "
                          f"{' '.join(str(error).split())[:300]}") from None
    return proto


def _ensemble_nodes(ensemble, D: int, nodes: list, weights: list) -> int:
    """The views (_view_nodes: V = 1 or 5 copies of the images, stacked), each member's graph on them, then
    LOGITS = ReduceLogSumExp over members and views of LogSoftmax(Z_mv / T_m), minus log(M V): (N, K). Returns K."""
    from onnx import helper, numpy_helper

    V = len(ensemble.views)
    X = _view_nodes(ensemble, D, nodes, weights)  # (V N, D)
    stacked = []
    for m, member in enumerate(ensemble.members):
        prefix = f"member{m}/"
        K = _layer_nodes(member, D, prefix, prefix + "logits", nodes, weights, X)  # (V N, K)
        scaled = prefix + "logits"
        if member.temperature != 1.0:
            weights.append(numpy_helper.from_array(np.array(member.temperature, np.float32), prefix + "temperature"))
            nodes.append(helper.make_node("Div", [scaled, prefix + "temperature"], [prefix + "scaled"],
                                          name=prefix + "temperature"))
            scaled = prefix + "scaled"
        nodes.append(helper.make_node("LogSoftmax", [scaled], [prefix + "log_p"], name=prefix + "log_softmax", axis=-1))
        nodes.append(helper.make_node("Reshape", [prefix + "log_p", "views_n_k"], [prefix + "log_p_views"],
                                      name=prefix + "by_view"))  # (V, N, K): the views were stacked view by view
        stacked.append(prefix + "log_p_views")
    weights.append(numpy_helper.from_array(np.array([V, -1, K], np.int64), "views_n_k"))
    weights.append(numpy_helper.from_array(np.array([0], np.int64), "axis0"))
    weights.append(numpy_helper.from_array(np.array(np.log(len(ensemble.members) * V), np.float32), "log_MV"))
    nodes.append(helper.make_node("Concat", stacked, ["log_p_members"], name="members", axis=0))  # (M V, N, K)
    nodes.append(helper.make_node("ReduceLogSumExp", ["log_p_members", "axis0"], ["log_sum"], name="log_sum",
                                  keepdims=0))  # (N, K)
    nodes.append(helper.make_node("Sub", ["log_sum", "log_MV"], [LOGITS], name="log_mean"))
    return K


def _view_nodes(ensemble, D: int, nodes: list, weights: list) -> str:
    """INPUT itself when the ensemble has no shifts; else its V = 5 views stacked, (V N, D): each image as a
    side x side picture, padded with s zero pixels on every side, cut back to side x side at an offset of
    (s - dy, s - dx), which is the image moved dy rows down and dx columns right (ensemble.shifted)."""
    from onnx import helper, numpy_helper

    if not ensemble.shift:
        return INPUT
    s, side = ensemble.shift, ensemble.side
    for name, values in (("views/pictures", [-1, side, side]), ("views/rows", [-1, D]),
                         ("views/pads", [0, s, s, 0, s, s]), ("views/axes", [1, 2])):
        weights.append(numpy_helper.from_array(np.array(values, np.int64), name))
    nodes.append(helper.make_node("Reshape", [INPUT, "views/pictures"], ["views/pictures_in"], name="views/pictures"))
    nodes.append(helper.make_node("Pad", ["views/pictures_in", "views/pads"], ["views/padded"], name="views/pad"))
    rows = []
    for v, (dy, dx) in enumerate(ensemble.views):
        start = np.array([s - dy, s - dx], np.int64)
        weights.append(numpy_helper.from_array(start, f"views/{v}/starts"))
        weights.append(numpy_helper.from_array(start + side, f"views/{v}/ends"))
        nodes.append(helper.make_node("Slice", ["views/padded", f"views/{v}/starts", f"views/{v}/ends", "views/axes"],
                                      [f"views/{v}/picture"], name=f"views/{v}/slice"))  # (N, side, side)
        nodes.append(helper.make_node("Reshape", [f"views/{v}/picture", "views/rows"], [f"views/{v}"],
                                      name=f"views/{v}/rows"))  # (N, D)
        rows.append(f"views/{v}")
    nodes.append(helper.make_node("Concat", rows, ["views"], name="views", axis=0))  # (V N, D), view by view
    return "views"


EXPORTABLE = (Dense, ReLU, LeakyReLU, Sigmoid, Tanh, Dropout, BatchNorm, Conv2D, MaxPool2D, AvgPool2D,
              GlobalAvgPool, Flatten, Unflatten, WidthNorm)


def _width_norm_nodes(X: str, layer, name: str, nodes: list, weights: list) -> str:
    """WidthNorm's nodes, from rows X (N, side*side) to rows again, step by step as widthnorm.width_maps
    computes M (every name starts with `name`). Returns the output's name."""
    from onnx import TensorProto, helper, numpy_helper

    side, w = layer.side, float(layer.width)

    def op(kind: str, inputs: list, out: str, **attributes) -> str:
        nodes.append(helper.make_node(kind, inputs, [name + out], name=name + out, **attributes))
        return name + out

    def const(out: str, array) -> str:
        weights.append(numpy_helper.from_array(np.asarray(array), name + out))
        return name + out

    f32 = np.float32
    images = op("Reshape", [X, const("image_shape", np.array([-1, side, side], np.int64))], "images")  # (N, s, s)
    brightest = op("ReduceMax", [images, const("axes_hw", np.array([1, 2], np.int64))], "brightest")  # (N, 1, 1)
    above = op("Greater", [images, op("Mul", [brightest, const("ink_fraction", f32(INK))], "threshold")], "above")
    lit = op("Greater", [brightest, const("zero", f32(0))], "lit")  # (N, 1, 1) bool: not all black
    ink = op("Cast", [op("And", [above, lit], "ink_bool")], "ink", to=TensorProto.FLOAT)  # (N, s, s) 0 or 1
    columns = op("ReduceMax", [ink, const("axes_h", np.array([1], np.int64))], "columns")  # (N, 1, s)
    has_ink = op("Cast", [op("ReduceMax", [columns, const("axes_w", np.array([2], np.int64))], "any")],
                 "has_ink", to=TensorProto.BOOL)  # (N, 1, 1)

    def column(out: str, last: int) -> str:  # (N, 1, 1) the first (last=0) or last (last=1) column with ink
        index = op("ArgMax", [columns], out + "_index", axis=2, keepdims=1, select_last_index=last)
        return op("Cast", [index], out, to=TensorProto.FLOAT)

    c0, c1 = column("c0", 0), column("c1", 1)
    one = const("one", f32(1))
    end = op("Add", [c1, one], "end")  # (N, 1, 1) c1 + 1: where the ink's last column ends
    b = op("Sub", [end, c0], "b")  # (N, 1, 1) the ink's width
    c = op("Div", [op("Add", [c0, end], "c_sum"), const("two", f32(2))], "c")  # (N, 1, 1) its centre
    step = op("Div", [b, const("width", f32(w))], "step")  # (N, 1, 1)
    start = op("Sub", [c, const("half_width", f32(w / 2))], "start")  # (N, 1, 1) where the ink's w columns begin
    j = const("j", np.arange(side, dtype=f32).reshape(1, side, 1))
    i = const("i", np.arange(side, dtype=f32).reshape(1, 1, side))
    u = op("Add", [c0, op("Mul", [op("Sub", [j, start], "j_from_start"), step], "offset")], "u")  # (N, s, 1)
    overlap = op("Sub", [op("Min", [op("Add", [u, step], "u_end"), op("Add", [i, one], "i_end")], "right"),
                         op("Max", [u, i], "left")], "overlap")  # (N, s, s)
    M = op("Div", [op("Relu", [overlap], "clipped"), step], "M_ink")
    M = op("Where", [has_ink, M, const("identity", np.eye(side, dtype=f32))], "M")  # (N, s_out, s_in)
    Y = op("MatMul", [images, op("Transpose", [M], "M_T", perm=[0, 2, 1])], "Y")  # (N, s, s)  X M^T
    return op("Reshape", [Y, const("row_shape", np.array([-1, side * side], np.int64))], "rows")


def _shapes(model, D: int) -> list[tuple]:
    """Each layer's output shape for one image (without N), from one zero image run in inference mode: the
    shapes numpynn itself computes, so the graph cannot disagree with it about sizes."""
    X = np.zeros((1, D), np.float32)  # (1, D)
    shapes = []
    for i, layer in enumerate(model.layers):
        try:
            X = layer.forward(X, train=False)
        except (ValueError, TypeError) as error:
            raise ExportError(f"layer {i} ({type(layer).__name__}) does not take the output of the layer "
                              f"before it, from (N, {D}) pixels ({' '.join(str(error).split())})") from None
        shapes.append(X.shape[1:])
    return shapes


def _require_rows(i: int, layer, shape_in: tuple) -> None:
    if len(shape_in) != 1:
        raise ExportError(f"layer {i} ({type(layer).__name__}) gets {('N', *shape_in)} images, not (N, D) rows; "
                          "numpynn's math there differs from ONNX's: put a Flatten or GlobalAvgPool before it")


def _metadata(model, header: dict) -> dict[str, str]:
    """metadata_props: text only. The header's parts as JSON, under the header's own names."""
    props = {"numpynn_version": str(header.get("numpynn_version", __version__)),
             "exported_by": f"numpynn {__version__}",
             "architecture": json.dumps([m.spec() for m in model.members] if hasattr(model, "members")
                                        else model.spec()),
             "input": f"{INPUT}: one row per image, float32 (see preprocessing)",
             "outputs": f"{LOGITS}: the last layer's scores; {PROBABILITIES}: Softmax({LOGITS} / T) per row, T = "
                          f"{model.temperature:g}"}
    for key in ("dataset", "preprocessing", "metrics"):
        if key in header:
            props[key] = json.dumps(header[key])
    return props


def save_onnx(proto, path):
    """Write an ONNX model to `path`, whole or not at all (numpynn.atomic.write_atomically)."""
    from .atomic import write_atomically

    return write_atomically(path, proto.SerializeToString())


def compare_with_onnxruntime(proto, model, X) -> dict | None:
    """Run the ONNX model in onnxruntime and the numpynn model on X (N, D) float32: the max |difference| of
    the logits and of the probabilities, numpynn's largest |logit| (the scale the logits' rounding follows),
    and onnxruntime's version. None if onnxruntime is not installed."""
    try:
        import onnxruntime
    except ImportError:
        return None
    session = onnxruntime.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    logits, probabilities = session.run([LOGITS, PROBABILITIES], {INPUT: X})
    Z = model.forward(X, train=False)  # (N, K)
    return {"logits": float(np.abs(logits - Z).max()), "probabilities": float(np.abs(probabilities - model.probabilities(Z)).max()),
            "largest_logit": float(np.abs(Z).max()), "onnxruntime": onnxruntime.__version__}


def check_batch(D: int = 784, n: int = 256) -> np.ndarray:
    """A fixed batch that needs no dataset: an all-black image, an all-white one, and n - 2 of random pixels
    in [0, 1) (seed 0), brighter and busier than digits, so larger activations than MNIST gives.  (n, D)"""
    X = np.random.default_rng(0).random((n, D), dtype=np.float32)  # (n, D)
    X[0], X[1] = 0, 1
    return X
