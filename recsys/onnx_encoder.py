"""The embedding model exported to ONNX and run by onnxruntime, in fp32 or int8.

What it computes: the same unit-length sentence embeddings as
``SentenceTransformer.encode(texts, normalize_embeddings=True)`` (see
`recsys.embeddings`), shape (n_texts, dim) float32, without PyTorch at query
time. The model folder's modules (transformer, pooling, normalisation) and a
final L2 normalisation are exported as one graph taking ``input_ids``,
``attention_mask`` and, for models whose tokenizer makes them (BERT),
``token_type_ids``, with dynamic batch and sequence axes. Texts are tokenized
by the folder's own fast tokenizer with the model's `max_seq_length` and
truncation once, sorted by their number of tokens and encoded in batches padded
to the batch's own longest text, so little is spent on padding.

Two precisions:

- **fp32**: the exported graph as it is; its embeddings equal PyTorch's
  (cosine > 0.9999).
- **int8**: onnxruntime's dynamic quantisation (Jacob et al., "Quantization
  and Training of Neural Networks for Efficient Integer-Arithmetic-Only
  Inference", CVPR 2018), weights stored as int8 with one scale per output
  channel, then rewritten so that activations are quantised with one scale
  per token row (symmetric, 127 levels each side) instead of onnxruntime's one
  scale per tensor. Per tensor, a text's scale came from its whole batch,
  padding included, so its embedding moved with its batch-mates (by up to
  0.034); per row it does not (alone and in a batch agree to 5e-08, float
  rounding, as in fp32), and it is closer to fp32
  (cosine about 0.997 against 0.992 per tensor). About 4 times smaller than
  fp32 and faster in batches; it earns its place by its measured nDCG
  (bench/embed_speed.py, docs/benchmarks.md, "Batch encoding").

A search's query is always encoded alone (`OnnxEncoder.encode_queries`, one text a call, even
for many queries), so it has no batch-mates and one scale per tensor is one scale for the
query: in int8 queries run on onnxruntime's own per-tensor graph (``model-int8-text.onnx``),
whose quantisation and products onnxruntime fuses into one `DynamicQuantizeMatMul`; the
per-row graph's extra operators cost about 0.3 ms of a 1.6 ms query on one thread. The products'
embeddings stay per row; nDCG@10 of the hybrid search moved by less than 0.001 on Home Depot
(docs/benchmarks.md, "Queries on a graph of their own").

Exports are files under ``var/onnx/<model identity>/`` (or under
``$WORKBENCH_ONNX_DIR``), made on first use and published by renaming a
finished temporary file, so a process never reads a half-written model. A
retrained model has another identity, hence its own exports.

>>> encoder = load_encoder(None, "fp32")          # exports on first use (a few seconds)
>>> encoder.encode(["cordless drill"]).shape
(1, 384)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

import numpy as np

from recsys.artifacts import artifact_path
from recsys.embedding_model import default_model_path, default_threads, load_model, model_identity

PRECISIONS = ("fp32", "int8")
# "int8-rows": per-row activation scales. The name changed with the scheme, so an export of
# the batch-dependent per-tensor scheme (model-int8.onnx) is never loaded as this one.
FILE_NAMES = {"fp32": "model-fp32.onnx", "int8": "model-int8-rows.onnx"}
# The graph for one text encoded alone (a query): int8 keeps onnxruntime's per-tensor scales,
# which for one text are one scale per text; fp32 has one graph for both.
ALONE_FILE_NAMES = {"fp32": "model-fp32.onnx", "int8": "model-int8-text.onnx"}
# What each precision's embeddings are, recorded with stored embeddings (recsys.embeddings).
SCHEMES = {"fp32": "onnx fp32", "int8": "onnx int8, weights per channel, activations per row"}
# Inputs a transformer encoder may take, in the order of the exported graph's inputs.
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OPSET = 17
# From this many queries `encode_queries` runs them in `threads` threads (onnxruntime's `run`
# releases the GIL): 2,000 Home Depot queries took 2.9 s one after the other on one thread.
QUERIES_IN_THREADS = 64
_export_lock = threading.Lock()


def export_dir(model_path: str | Path | None = None) -> Path:
    """The folder of a model's exports: ``$WORKBENCH_ONNX_DIR`` or <artifact folder>/onnx, then its
    identity."""
    return artifact_path("onnx", "WORKBENCH_ONNX_DIR") / model_identity(model_path)


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"unknown ONNX precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    return precision


def _publish(target: Path, write: Callable[[Path], None]) -> None:
    """Run `write(temporary)` on a private file next to `target`, then rename it into place.

    The rename is atomic, so readers see the whole file or none; two processes
    exporting at once each write their own temporary file and the last rename wins.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.stem}-{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp.onnx")
    try:
        write(temporary)
        temporary.replace(target)
    finally:
        temporary.unlink(missing_ok=True)


def _export_fp32(model_path: str | None, target: Path) -> None:
    import onnx
    import torch
    import torch.nn.functional as F

    model = load_model(model_path)
    tokenizer = model.tokenizer
    input_names = [name for name in MODEL_INPUTS if name in tokenizer.model_input_names]

    class SentenceEmbedding(torch.nn.Module):
        """Token ids -> unit sentence embeddings: the model's modules, then L2 normalisation.

        The final normalisation is what `encode(normalize_embeddings=True)` adds for
        models without a Normalize module; for those with one it changes nothing.
        """

        def __init__(self):
            super().__init__()
            self.modules_in_order = torch.nn.ModuleList(list(model))

        def forward(self, *inputs):
            features = dict(zip(input_names, inputs))
            for module in self.modules_in_order:
                features = module(features)
            return F.normalize(features["sentence_embedding"], p=2, dim=1)

    example = tokenizer(["cordless drill", "1/2 in. x 10 ft. copper pipe, type L"],
                        padding=True, return_tensors="pt")
    axes = {name: {0: "batch", 1: "sequence"} for name in input_names}
    axes["sentence_embedding"] = {0: "batch"}

    def write(path: Path) -> None:
        # The legacy TorchScript exporter (dynamo=False): it traces the model in about 1 s and
        # writes one self-contained file, which `_publish` can rename atomically. The dynamo
        # exporter took about 6 s here and puts the weights in a separate .data file (two files
        # to publish); both graphs ran at the same speed and gave the same embeddings.
        # Tracing fixes Python branches on shapes; none depends on batch or sequence length in
        # an encoder, and the tests check texts of other lengths than the example's.
        # Its warnings (tracer, deprecation of this exporter) say nothing a user can act on;
        # the tests check the exported graph against PyTorch instead.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(SentenceEmbedding().eval(), tuple(example[n] for n in input_names),
                              str(path), input_names=input_names,
                              output_names=["sentence_embedding"], dynamic_axes=axes,
                              opset_version=OPSET, dynamo=False)
        graph = onnx.load(str(path))
        # What the encoder needs to tokenize as the model does travels inside the file.
        transformer = model[0]
        onnx.helper.set_model_props(graph, {
            "max_seq_length": str(model.max_seq_length),
            "do_lower_case": str(bool(getattr(transformer, "do_lower_case", False))),
            "model_path": str(Path(model_path) if model_path else default_model_path()),
        })
        onnx.save(graph, str(path))

    _publish(target, write)


def _quantize_int8(source: Path, target: Path, per_row: bool = True) -> None:
    """Quantise the fp32 export at `source` to int8 at `target`.

    `per_row=False` keeps onnxruntime's per-tensor activation scales: batch-dependent, so the
    encoder runs that graph on one text at a time only (its queries, `ALONE_FILE_NAMES`).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Weights int8 with one scale per output channel: embeddings at cosine about 0.98
    # to fp32, against 0.96 with one scale per tensor, at the same speed (measured on
    # MiniLM). The model's properties (max_seq_length...) are carried over by the quantiser.
    # Its advice to pre-process (shape inference, graph optimisation) is for static
    # quantisation of vision models; onnxruntime optimises the graph when it loads it anyway.
    advice = _DropMessage("pre-processing before quantization")
    logging.getLogger().addFilter(advice)
    try:
        def write(path: Path) -> None:
            # The quantiser writes a shape-inferred copy beside its input (<stem>-inferred.onnx)
            # and deletes it afterwards; two processes quantising the same export at once (two
            # replicas starting on one artifact folder) deleted each other's copy. Each quantises
            # a private copy of the source instead.
            with tempfile.TemporaryDirectory(dir=path.parent, prefix=".quantize-") as private:
                copy = Path(private) / source.name
                shutil.copyfile(source, copy)
                quantize_dynamic(copy, path, per_channel=True, weight_type=QuantType.QInt8)
            if per_row:
                per_row_activation_scales(path, path)

        _publish(target, write)
    finally:
        logging.getLogger().removeFilter(advice)


def per_row_activation_scales(source: Path, target: Path) -> None:
    """Rewrite a dynamically quantised graph so each token row has its own activation scale.

    onnxruntime's `DynamicQuantizeLinear` gives a whole activation tensor (batch x tokens x
    features) one scale and zero point, so a text's quantised activations depend on the other
    texts of its batch. Each one is replaced by symmetric quantisation per row of the last axis:
    scale = max |x| / 127 over the row, q = round(x / scale) + 128 as uint8 (zero point 128, one
    constant, as `MatMulInteger` takes only a scalar zero point). The product of the activation
    and weight scales that dequantises each `MatMulInteger`'s result keeps only the weight's
    scale, and the row scale multiplies its output afterwards: onnxruntime's fusion into
    `MatMulIntegerToFloat` assumes a scalar activation scale and gave wrong embeddings (cosine
    0.75 to fp32) when the row scales went into that product.
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    constants = {"row_quant_zero_point": np.array(128, np.uint8),
                 "row_quant_levels": np.array(127.0, np.float32),
                 "row_quant_epsilon": np.array(1e-12, np.float32), "row_quant_one": np.array(1.0, np.float32)}
    graph.initializer.extend(numpy_helper.from_array(value, name) for name, value in constants.items())
    row_scale_of: dict[str, str] = {}   # the per-tensor scale's name -> its per-row replacement
    zero_points: set[str] = set()
    nodes = []
    for node in graph.node:
        if node.op_type != "DynamicQuantizeLinear":
            nodes.append(node)
            continue
        x, (quantised, scale, zero_point), name = node.input[0], node.output, node.name
        row_scale_of[scale] = f"{name}_row_scale"
        zero_points.add(zero_point)
        nodes += [
            helper.make_node("Abs", [x], [f"{name}_abs"]),
            helper.make_node("ReduceMax", [f"{name}_abs"], [f"{name}_max"], axes=[-1], keepdims=1),
            helper.make_node("Max", [f"{name}_max", "row_quant_epsilon"], [f"{name}_max_positive"]),
            helper.make_node("Div", [f"{name}_max_positive", "row_quant_levels"], [f"{name}_row_scale"]),
            helper.make_node("Div", ["row_quant_one", f"{name}_row_scale"], [f"{name}_inverse"]),
            helper.make_node("Mul", [x, f"{name}_inverse"], [f"{name}_scaled"]),
            # Scale 1 and zero point 128: rounds (half to even), saturates and casts in one op.
            helper.make_node("QuantizeLinear", [f"{name}_scaled", "row_quant_one", "row_quant_zero_point"],
                             [quantised]),
        ]
    products: dict[str, str] = {}       # Mul(activation scale, weight scale)'s output -> row scale
    for node in nodes:
        for i, name in enumerate(node.input):
            if name in zero_points:
                node.input[i] = "row_quant_zero_point"
            elif name in row_scale_of and node.op_type == "Mul":
                node.input[i] = "row_quant_one"
                products[node.output[0]] = row_scale_of[name]
            elif name in row_scale_of:
                raise ValueError(f"unexpected use of an activation scale by {node.op_type} {node.name}")
    rewritten = []
    for node in nodes:
        rewritten.append(node)
        scale = next((products[name] for name in node.input if name in products), None)
        if node.op_type == "Mul" and scale is not None:
            output = node.output[0]
            node.output[0] = f"{output}_before_row_scale"
            rewritten.append(helper.make_node("Mul", [node.output[0], scale], [output],
                                              name=f"{node.name}_row_scale"))
    del graph.node[:]
    graph.node.extend(rewritten)
    onnx.save(model, str(target))


class _DropMessage(logging.Filter):
    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


def export(model_path: str | None = None, precision: str = "fp32", force: bool = False,
           alone: bool = False) -> Path:
    """The path of the model's ONNX export in `precision`, exported first if it is missing.

    int8 is quantised from the fp32 export, which is made first if it is missing.
    `force` makes the file of `precision` again (for int8: quantises the fp32 export again).
    `alone`: the graph for one text at a time (`ALONE_FILE_NAMES`), the queries'.
    """
    check_precision(precision)
    folder = export_dir(model_path)
    target = folder / (ALONE_FILE_NAMES if alone else FILE_NAMES)[precision]
    with _export_lock:
        if target.exists() and not force:
            return target
        fp32 = folder / FILE_NAMES["fp32"]
        if precision == "fp32" or not fp32.exists():
            _export_fp32(model_path, fp32)
        if precision == "int8":
            _quantize_int8(fp32, target, per_row=not alone)
    return target


class OnnxEncoder:
    """Unit sentence embeddings from an ONNX export of a sentence-transformers model.

    `model_path` is the model folder (None: the shipped MiniLM), whose tokenizer
    is used; `precision` is "fp32" or "int8"; `threads` is onnxruntime's
    intra-op pool (default: `default_threads`).
    """

    def __init__(self, model_path: str | None = None, precision: str = "fp32",
                 threads: int | None = None):
        from transformers import AutoTokenizer

        self.model_path = Path(model_path) if model_path else default_model_path()
        self._model_argument = model_path  # for `export`: None is the shipped model
        self.precision = check_precision(precision)
        self.path = export(model_path, precision)
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.model_path), local_files_only=True)
        self.threads = threads or default_threads()
        self.session = self._session(spinning=True)
        self._batch_session = None
        self._one_text_session = None
        self._query_session = None
        properties = self.session.get_modelmeta().custom_metadata_map
        self.max_seq_length = int(properties["max_seq_length"])
        self.do_lower_case = properties.get("do_lower_case") == "True"
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.dimension = int(self.session.get_outputs()[0].shape[1])
        self.scheme = SCHEMES[precision]

    def _session(self, spinning: bool, threads: int | None = None, path: Path | None = None):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        # One pool of `threads` for the operators; nodes run one after the other (the
        # default sequential mode), so the inter-op pool would only add idle threads.
        options.intra_op_num_threads = threads or self.threads
        options.inter_op_num_threads = 1
        if not spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return onnxruntime.InferenceSession(str(path or self.path), options,
                                            providers=["CPUExecutionProvider"])

    @property
    def batch_session(self):
        """The session for texts that take several batches: its threads sleep between operators
        instead of spinning. On the shared 2-core machine catalog encoding ran about 2 times faster
        so (docs/benchmarks.md, "Batch encoding"): spinning threads took the cores from the thread
        that had work. One query keeps the spinning `session`, whose threads answer at once; both
        run the same graph and kernels, so a text's embedding is the same from either."""
        if self._batch_session is None:
            self._batch_session = self._session(spinning=False)
        return self._batch_session

    @property
    def one_text_session(self):
        """The session for `encode` of one text: one thread, no pool. One short text takes the
        same time on one thread as on two (1.6 ms p50 for MiniLM int8), and a pool left spinning
        after it took the cores from a search's next stages: on Home Depot a hybrid search fell
        from 4.3 to 3.4 ms p50, and with the semantic scan from 15.4 to 6.5 ms
        (docs/benchmarks.md, "Hybrid search speed"). Same graph and kernels, so the embedding is
        the one a batch gives, up to float rounding."""
        if self._one_text_session is None:
            self._one_text_session = self._session(spinning=False, threads=1)
        return self._one_text_session

    @property
    def query_session(self):
        """The session `encode_queries` runs each query on: one thread, on the graph for one text
        alone (`ALONE_FILE_NAMES`; in fp32 the same graph as `one_text_session`, which it is)."""
        if self._query_session is None:
            alone = export(self._model_argument, self.precision, alone=True)
            self._query_session = (self.one_text_session if alone == self.path
                                   else self._session(spinning=False, threads=1, path=alone))
        return self._query_session

    def encode_queries(self, queries: list[str]) -> np.ndarray:
        """Unit-length float32 embeddings of search queries, shape (len(queries), dim): each query
        encoded alone on `query_session`, so a query's embedding is the same whether it comes
        alone (a search) or among many (an evaluation's `search_many`), exactly. In int8 it
        differs from `encode([query])` (one scale per text instead of per token row)."""
        vectors = np.empty((len(queries), self.dimension), dtype=np.float32)
        if not len(queries):
            return vectors
        session = self.query_session
        columns = self._token_ids(queries)

        def encode_one(row: int) -> None:
            feed = {name: np.array([column[row]], dtype=np.int64) for name, column in columns.items()}
            vectors[row] = session.run(None, feed)[0][0]

        if len(queries) < QUERIES_IN_THREADS or self.threads < 2:
            for row in range(len(queries)):
                encode_one(row)
        else:  # an evaluation's many queries: one at a time in each of the pool's threads
            with ThreadPoolExecutor(self.threads) as pool:
                list(pool.map(encode_one, range(len(queries))))
        return vectors

    def _token_ids(self, texts: list[str]) -> dict[str, list[list[int]]]:
        """Each model input's token ids of `texts`, unpadded, tokenized in one call as the model
        was trained (lower-cased where its tokenizer does, truncated to `max_seq_length`). One call
        for all: transformers' tokenizer sets its backend's truncation at every call, so it is not
        called from several threads."""
        texts = [text.lower() if self.do_lower_case else text for text in map(str, texts)]
        tokens = self.tokenizer(texts, truncation="longest_first", max_length=self.max_seq_length)
        return {name: tokens[name] for name in self.input_names}

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Unit-length float32 embeddings of `texts`, shape (len(texts), dim).

        All texts are tokenized in one call, then batched by number of tokens,
        longest first, each batch padded to its own longest text; the rows come
        back in the order of `texts`. A text's embedding does not depend on its
        batch-mates, up to float rounding: padding is masked out of attention and
        pooling, and int8 scales each token's activations on their own
        (`per_row_activation_scales`); the tests check a text alone against the
        same text in batches (tests/test_embed.py).
        """
        vectors = np.empty((len(texts), self.dimension), dtype=np.float32)
        if not len(texts):
            return vectors
        columns = self._token_ids(texts)
        lengths = np.array([len(ids) for ids in columns["input_ids"]])
        order = np.argsort(-lengths, kind="stable")
        pad = {"input_ids": self.tokenizer.pad_token_id or 0}
        if len(texts) == 1:
            session = self.one_text_session
        else:
            session = self.session if len(texts) <= batch_size else self.batch_session
        for start in range(0, len(texts), batch_size):
            chosen = order[start:start + batch_size]
            width = int(lengths[chosen[0]])
            feed = {}
            for name, rows in columns.items():
                batch = np.full((len(chosen), width), pad.get(name, 0), dtype=np.int64)
                for row, i in enumerate(chosen):
                    batch[row, :lengths[i]] = rows[i]
                feed[name] = batch
            vectors[chosen] = session.run(None, feed)[0]
        return vectors


_loading = threading.Lock()


def load_encoder(model_path: str | None = None, precision: str = "fp32") -> OnnxEncoder:
    """An `OnnxEncoder` of `model_path` in `precision`, made (and exported if needed) once.

    Threads that ask at once (a page and the server's warm-up, two first visitors) wait for the one
    making it: transformers imports its tokenizers lazily, and two threads doing so at the same
    time got "cannot import name 'AutoTokenizer'".
    """
    with _loading:
        return cached_encoder(model_path, precision)


@lru_cache(maxsize=4)
def cached_encoder(model_path: str | None, precision: str) -> OnnxEncoder:
    """`load_encoder`'s cache (`cached_encoder.cache_clear()` forgets the encoders made)."""
    return OnnxEncoder(model_path, precision)


# --- the command: python -m recsys export-onnx ... ----------------------------------------


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add `export-onnx` to the CLI's subparsers."""
    parser = subparsers.add_parser(
        "export-onnx", help="export the embedding model to ONNX (JSON on stdout)",
        description="Export a sentence-transformers model to ONNX (fp32) and, with --int8, its "
                    "dynamically quantised int8 variant, into var/onnx/<model identity>/ "
                    "(or $WORKBENCH_ONNX_DIR). Existing exports are kept unless --force.")
    parser.add_argument("--model", help="sentence-transformers model folder "
                                        "(default: the shipped all-MiniLM-L6-v2)")
    parser.add_argument("--int8", action="store_true", help="also make the int8 variant")
    parser.add_argument("--force", action="store_true", help="export again even if the files exist")
    parser.set_defaults(func=run)
    return parser


def run(args) -> int:
    """Run `export-onnx`; prints one JSON object on stdout, returns the exit status."""
    import contextlib

    if args.model and not Path(args.model).is_dir():
        print(f"error: the model folder {args.model} does not exist", file=sys.stderr)
        return 1
    stdout = sys.stdout
    result: dict = {"model": str(Path(args.model) if args.model else default_model_path()),
                    "folder": str(export_dir(args.model))}
    # Exporters' chatter must not reach stdout, which carries the JSON.
    with contextlib.redirect_stdout(sys.stderr):
        # int8 makes both graphs: per row for batches, per text for queries ("int8-text").
        wanted = [("fp32", False), ("int8", False), ("int8", True)] if args.int8 else [("fp32", False)]
        for precision, alone in wanted:
            path = export_dir(args.model) / (ALONE_FILE_NAMES if alone else FILE_NAMES)[precision]
            existed = path.exists() and not args.force
            started = time.perf_counter()
            try:
                export(args.model, precision, force=args.force, alone=alone)
            except (OSError, ValueError) as error:
                print(f"error: {error}", file=sys.stderr)
                return 1
            result[f"{precision}-text" if alone else precision] = {
                "path": str(path), "bytes": path.stat().st_size,
                "seconds": round(time.perf_counter() - started, 2), "reused": existed}
    print(json.dumps(result), file=stdout)
    return 0
