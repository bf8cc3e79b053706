"""ONNX export: the segment pipeline through skl2onnx, the recommender built op by op with the onnx helper API.

skl2onnx converts scikit-learn estimators; the recommender is not one (whatever family validation chose, it
is neighbor lists, a category and a popularity prior, and optional item factors, put together at scoring
time), and skl2onnx has no
converter for such a custom model, so its graph is written here directly. Everything, TopK included,
runs inside the one graph: serve passes a few small arrays and gets the final list back, with no item loop
in Python.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from skl2onnx import to_onnx
from sklearn.pipeline import Pipeline

from model_export.training.recs import QUANTUM, RecsModel
from personalization.features import SEGMENT_DISTANCES, SEGMENT_INPUT, SEGMENT_LABEL
from personalization.recommend import (
    EXCLUDE_PENALTY,
    INPUT_EXCLUDE,
    INPUT_ITEMS,
    INPUT_K,
    INPUT_WEIGHTS,
    OUTPUT_INDICES,
    OUTPUT_SCORES,
)

# ScatterElements' reduction="add" needs opset 16; 17 is widely served by onnxruntime builds.
OPSET = 17


def segment_graph(pipeline: Pipeline, n_features: int) -> bytes:
    """StandardScaler + KMeans as one graph. Doubles in, so serve's Python floats go in unrounded and the
    labels equal scikit-learn's even for a profile that lies almost halfway between two centroids."""
    sample = np.zeros((1, n_features), dtype=np.float64)
    model = to_onnx(pipeline, sample, target_opset={"": OPSET, "ai.onnx.ml": 3})
    graph = model.graph
    renames = {graph.input[0].name: SEGMENT_INPUT, graph.output[0].name: SEGMENT_LABEL}
    if len(graph.output) > 1:
        renames[graph.output[1].name] = SEGMENT_DISTANCES
    for node in graph.node:
        node.input[:] = [renames.get(name, name) for name in node.input]
        node.output[:] = [renames.get(name, name) for name in node.output]
    for value in [*graph.input, *graph.output]:
        value.name = renames.get(value.name, value.name)
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def _init(name: str, array: np.ndarray[Any, Any]) -> TensorProto:
    return numpy_helper.from_array(array, name)


def compact_neighbors(
    neighbor_idx: np.ndarray[Any, Any], neighbor_sim: np.ndarray[Any, Any]
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """The neighbor table without its trailing zero weights: (row start, row length, targets, weights).

    Row r's list is its dense row up to its last non-zero weight, at flat[start[r] : start[r] + length[r]];
    flat position 0 is a zero-weight entry that every padding cell of a request reads. Most items have far
    fewer neighbors than the table is wide (a long tail seen beside a handful of items), so this is a fraction
    of the dense table's bytes, which serve downloads, checks and loads (44 MB -> 5 MB at 55,000 items); and as
    only zero weights are dropped and every list keeps its order, the scores are bit for bit the dense table's.
    """
    sim = np.asarray(neighbor_sim, dtype=np.float32)
    nonzero = sim != 0
    width = sim.shape[1] if sim.ndim == 2 else 0
    # One past each row's last non-zero column (0 for a row of zeros).
    length = np.where(nonzero.any(axis=1), width - np.argmax(nonzero[:, ::-1], axis=1), 0).astype(np.int32)
    start = np.ones(sim.shape[0], dtype=np.int32)
    start[1:] += np.cumsum(length[:-1], dtype=np.int64).astype(np.int32)
    keep = np.arange(width)[None, :] < length[:, None]
    flat_idx = np.concatenate([[0], np.asarray(neighbor_idx, dtype=np.int32)[keep]]).astype(np.int32)
    flat_sim = np.concatenate([[0.0], sim[keep]]).astype(np.float32)
    return start, length, flat_idx, flat_sim


def recs_graph(model: RecsModel) -> bytes:
    """item_idx int64 [n], item_w float32 [n], exclude_idx int64 [m], k int64 [1] -> top_idx, top_score [k].

    K is an input (TopK takes it as a tensor), so one graph serves every slot size.
    """
    n_items = model.n_items
    start, length, flat_idx, flat_sim = compact_neighbors(model.neighbor_idx, model.neighbor_sim)
    initializers = [
        _init("neighbor_start", start),
        _init("neighbor_length", length),
        _init("neighbor_idx", flat_idx),
        _init("neighbor_sim", flat_sim),
        _init("zero", np.asarray(0, dtype=np.int64)),
        _init("one", np.asarray(1, dtype=np.int64)),
        _init("prior", model.prior.astype(np.float32)),
        _init("zeros", np.zeros(n_items, dtype=np.float32)),
        _init("penalty", np.asarray(EXCLUDE_PENALTY, dtype=np.float32)),
        _init("per_quantum", np.asarray(1.0 / QUANTUM, dtype=np.float32)),
        _init("quantum", np.asarray(QUANTUM, dtype=np.float32)),
        _init("flat", np.asarray([-1], dtype=np.int64)),
        _init("axis1", np.asarray([1], dtype=np.int64)),
    ]
    nodes = [
        # Each recent item's neighbor list (compact_neighbors), as a rectangle as wide as the longest: cell (i, c)
        # reads flat position start_i + c, or the zero-weight position 0 past list i's end.
        helper.make_node("Gather", ["neighbor_start", INPUT_ITEMS], ["starts32"], axis=0),
        helper.make_node("Gather", ["neighbor_length", INPUT_ITEMS], ["lengths32"], axis=0),
        helper.make_node("Cast", ["starts32"], ["starts"], to=TensorProto.INT64),
        helper.make_node("Cast", ["lengths32"], ["lengths"], to=TensorProto.INT64),
        helper.make_node("ReduceMax", ["lengths"], ["width"], keepdims=0),
        helper.make_node("Range", ["zero", "width", "one"], ["columns"]),
        helper.make_node("Unsqueeze", ["starts", "axis1"], ["starts_col"]),
        helper.make_node("Unsqueeze", ["lengths", "axis1"], ["lengths_col"]),
        helper.make_node("Add", ["starts_col", "columns"], ["cells_all"]),
        helper.make_node("Less", ["columns", "lengths_col"], ["in_list"]),
        helper.make_node("Where", ["in_list", "cells_all", "zero"], ["cells"]),
        # The lists' targets and weights, the weights times how much that recent item counts.
        helper.make_node("Gather", ["neighbor_idx", "cells"], ["rows_idx32"], axis=0),
        helper.make_node("Cast", ["rows_idx32"], ["rows_idx"], to=TensorProto.INT64),
        helper.make_node("Reshape", ["rows_idx", "flat"], ["targets"]),
        helper.make_node("Gather", ["neighbor_sim", "cells"], ["rows_sim"], axis=0),
        helper.make_node("Unsqueeze", [INPUT_WEIGHTS, "axis1"], ["w_col"]),
        helper.make_node("Mul", ["rows_sim", "w_col"], ["weighted"]),
        helper.make_node("Reshape", ["weighted", "flat"], ["updates"]),
    ]
    base = "prior"
    if model.factors is not None:
        initializers += [_init("item_factors", model.factors.astype(np.float32)), _init("axis0", np.asarray([0]))]
        query = "item_factors"
        if model.query_factors is not None:
            initializers.append(_init("query_factors", model.query_factors.astype(np.float32)))
            query = "query_factors"
        nodes += [
            # The user's vector (the recent items' query factors, weighted and summed), times every item's.
            helper.make_node("Gather", [query, INPUT_ITEMS], ["recent_f"], axis=0),
            helper.make_node("Mul", ["recent_f", "w_col"], ["recent_fw"]),
            helper.make_node("ReduceSum", ["recent_fw", "axis0"], ["user_f"], keepdims=1),
            helper.make_node(
                "Gemm", ["user_f", "item_factors"], ["factor_row"], alpha=float(model.factor_weight), transB=1
            ),
            helper.make_node("Reshape", ["factor_row", "flat"], ["factor_scores"]),
            helper.make_node("Add", ["prior", "factor_scores"], ["base"]),
        ]
        base = "base"
    if model.item_category is not None and model.category_prior is not None:
        initializers += [
            _init("item_category", model.item_category.astype(np.int64)),
            _init("category_prior", model.category_prior.astype(np.float32)),
            _init("category_zeros", np.zeros(model.n_categories, dtype=np.float32)),
        ]
        nodes += [
            # How much of the recent weight falls in each category, spread back over that category's items.
            helper.make_node("Gather", ["item_category", INPUT_ITEMS], ["recent_category"], axis=0),
            helper.make_node(
                "ScatterElements",
                ["category_zeros", "recent_category", INPUT_WEIGHTS],
                ["category_w"],
                axis=0,
                reduction="add",
            ),
            helper.make_node("Gather", ["category_w", "item_category"], ["item_category_w"], axis=0),
            helper.make_node("Mul", ["item_category_w", "category_prior"], ["category_scores"]),
            helper.make_node("Add", [base, "category_scores"], ["base_c"]),
        ]
        base = "base_c"
    nodes += [
        # Sums the neighbors' weighted scores into the catalog-sized vector; repeated targets add up.
        helper.make_node("ScatterElements", [base, "targets", "updates"], ["scores"], axis=0, reduction="add"),
        helper.make_node("Shape", [INPUT_EXCLUDE], ["n_excluded"]),
        helper.make_node("Expand", ["penalty", "n_excluded"], ["penalties"]),
        helper.make_node("ScatterElements", ["zeros", INPUT_EXCLUDE, "penalties"], ["mask"], axis=0),
        # Rounded as the reference rounds (recs.QUANTUM), so exact ties stay ties whatever the sum order.
        helper.make_node("Mul", ["scores", "per_quantum"], ["scaled"]),
        helper.make_node("Round", ["scaled"], ["rounded"]),
        helper.make_node("Mul", ["rounded", "quantum"], ["quantized"]),
        helper.make_node("Add", ["quantized", "mask"], ["masked"]),
        helper.make_node("TopK", ["masked", INPUT_K], [OUTPUT_SCORES, OUTPUT_INDICES], axis=0, largest=1, sorted=1),
    ]
    graph = helper.make_graph(
        nodes,
        "recs",
        [
            helper.make_tensor_value_info(INPUT_ITEMS, TensorProto.INT64, ["n"]),
            helper.make_tensor_value_info(INPUT_WEIGHTS, TensorProto.FLOAT, ["n"]),
            helper.make_tensor_value_info(INPUT_EXCLUDE, TensorProto.INT64, ["m"]),
            helper.make_tensor_value_info(INPUT_K, TensorProto.INT64, [1]),
        ],
        [
            helper.make_tensor_value_info(OUTPUT_INDICES, TensorProto.INT64, ["k"]),
            helper.make_tensor_value_info(OUTPUT_SCORES, TensorProto.FLOAT, ["k"]),
        ],
        initializers,
    )
    model_proto = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="model_export.training.onnx_graphs"
    )
    model_proto.ir_version = 8
    model_proto.doc_string = "Recent items (indices, weights) + exclusions -> top-K catalog indices and scores."
    onnx.checker.check_model(model_proto, full_check=True)
    return bytes(model_proto.SerializeToString())
