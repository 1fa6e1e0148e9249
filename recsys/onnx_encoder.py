"""The embedding model exported to ONNX and run by onnxruntime, in fp32 or int8.

What it computes: the same unit-length sentence embeddings as
``SentenceTransformer.encode(texts, normalize_embeddings=True)`` (see
`recsys.embeddings`), shape (n_texts, dim) float32, without PyTorch at query
time. The model folder's modules (transformer, pooling, normalisation) and a
final L2 normalisation are exported as one graph taking ``input_ids``,
``attention_mask`` and, for models whose tokenizer makes them (BERT),
``token_type_ids``, with dynamic batch and sequence axes. Texts are tokenized
by the folder's own fast tokenizer with the model's `max_seq_length` and
truncation, and encoded in batches of texts of similar length, as
sentence-transformers does.

Two precisions:

- **fp32**: the exported graph as it is; its embeddings equal PyTorch's
  (cosine > 0.9999).
- **int8**: onnxruntime's dynamic quantisation (Jacob et al., "Quantization
  and Training of Neural Networks for Efficient Integer-Arithmetic-Only
  Inference", CVPR 2018): weights stored as int8, one scale per output
  channel, activations quantised per batch at run time. About 4 times smaller
  and faster; its embeddings move (cosine about 0.98 to fp32), so it earns its
  place by its measured nDCG (bench/encoders.py, docs/benchmarks.md).

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
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np

from recsys.embedding_model import default_model_path, default_threads, load_model, model_identity

PRECISIONS = ("fp32", "int8")
FILE_NAMES = {"fp32": "model-fp32.onnx", "int8": "model-int8.onnx"}
# Inputs a transformer encoder may take, in the order of the exported graph's inputs.
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OPSET = 17
_export_lock = threading.Lock()


def export_dir(model_path: str | Path | None = None) -> Path:
    """The folder of a model's exports: ``$WORKBENCH_ONNX_DIR`` or var/onnx, then its identity."""
    root = os.environ.get("WORKBENCH_ONNX_DIR") or Path(__file__).resolve().parent.parent / "var" / "onnx"
    return Path(root) / model_identity(model_path)


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


def _quantize_int8(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Weights int8 with one scale per output channel: embeddings at cosine about 0.98
    # to fp32, against 0.96 with one scale per tensor, at the same speed (measured on
    # MiniLM). The model's properties (max_seq_length...) are carried over by the quantiser.
    # Its advice to pre-process (shape inference, graph optimisation) is for static
    # quantisation of vision models; onnxruntime optimises the graph when it loads it anyway.
    advice = _DropMessage("pre-processing before quantization")
    logging.getLogger().addFilter(advice)
    try:
        _publish(target, lambda path: quantize_dynamic(source, path, per_channel=True,
                                                       weight_type=QuantType.QInt8))
    finally:
        logging.getLogger().removeFilter(advice)


class _DropMessage(logging.Filter):
    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


def export(model_path: str | None = None, precision: str = "fp32", force: bool = False) -> Path:
    """The path of the model's ONNX export in `precision`, exported first if it is missing.

    int8 is quantised from the fp32 export, which is made first if it is missing.
    `force` makes the file of `precision` again (for int8: quantises the fp32 export again).
    """
    check_precision(precision)
    folder = export_dir(model_path)
    target = folder / FILE_NAMES[precision]
    with _export_lock:
        if target.exists() and not force:
            return target
        fp32 = folder / FILE_NAMES["fp32"]
        if precision == "fp32" or not fp32.exists():
            _export_fp32(model_path, fp32)
        if precision == "int8":
            _quantize_int8(fp32, target)
    return target


class OnnxEncoder:
    """Unit sentence embeddings from an ONNX export of a sentence-transformers model.

    `model_path` is the model folder (None: the shipped MiniLM), whose tokenizer
    is used; `precision` is "fp32" or "int8"; `threads` is onnxruntime's
    intra-op pool (default: `default_threads`).
    """

    def __init__(self, model_path: str | None = None, precision: str = "fp32",
                 threads: int | None = None):
        import onnxruntime
        from transformers import AutoTokenizer

        self.model_path = Path(model_path) if model_path else default_model_path()
        self.precision = check_precision(precision)
        self.path = export(model_path, precision)
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.model_path), local_files_only=True)
        options = onnxruntime.SessionOptions()
        # One pool of `threads` for the operators; nodes run one after the other (the
        # default sequential mode), so the inter-op pool would only add idle threads.
        self.threads = threads or default_threads()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(str(self.path), options,
                                                    providers=["CPUExecutionProvider"])
        properties = self.session.get_modelmeta().custom_metadata_map
        self.max_seq_length = int(properties["max_seq_length"])
        self.do_lower_case = properties.get("do_lower_case") == "True"
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.dimension = int(self.session.get_outputs()[0].shape[1])

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Unit-length float32 embeddings of `texts`, shape (len(texts), dim).

        Texts are batched longest first, like sentence-transformers, so a batch
        pads little; the rows come back in the order of `texts`. int8 encodes one
        text at a time: dynamic quantisation scales the activations of the whole
        batch (padding included), so a batched text's embedding would depend on
        its batch-mates, and a query searched alone would not match the same
        query in an evaluation batch.
        """
        if self.precision == "int8":
            batch_size = 1
        texts = [text.lower() if self.do_lower_case else text for text in map(str, texts)]
        vectors = np.empty((len(texts), self.dimension), dtype=np.float32)
        order = np.argsort([-len(text) for text in texts], kind="stable")
        for start in range(0, len(texts), batch_size):
            chosen = order[start:start + batch_size]
            tokens = self.tokenizer([texts[i] for i in chosen], padding=True,
                                    truncation="longest_first", max_length=self.max_seq_length,
                                    return_tensors="np")
            feed = {name: tokens[name].astype(np.int64, copy=False) for name in self.input_names}
            vectors[chosen] = self.session.run(None, feed)[0]
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
        for precision in ("fp32", "int8") if args.int8 else ("fp32",):
            path = export_dir(args.model) / FILE_NAMES[precision]
            existed = path.exists() and not args.force
            started = time.perf_counter()
            try:
                export(args.model, precision, force=args.force)
            except (OSError, ValueError) as error:
                print(f"error: {error}", file=sys.stderr)
                return 1
            result[precision] = {"path": str(path), "bytes": path.stat().st_size,
                                 "seconds": round(time.perf_counter() - started, 2),
                                 "reused": existed}
    print(json.dumps(result), file=stdout)
    return 0
