"""Ship one domain of a teacher or student: a plain transformers folder, or an ONNX file.

What the head is decides the class. A pooler-head model (``model.classifier.HEADS``; BERT's pooler, dropout and one
linear layer per domain) *is* a stock BertForSequenceClassification for each domain: keys ``bert.*`` from
``encoder.*`` (pooler included), ``classifier.*`` from ``heads.<i>.*``, so ``pipeline("text-classification")``
and ``AutoModelForSequenceClassification`` read it as they read any BERT classifier. A "cls"-head model
(dropout and the linear layer on the final [CLS] state, no pooler) cannot be: that class
would put a pooler in between and start it at random. BertForTokenClassification is BERT without a pooler
plus the same dropout + linear on every token, so at position 0 it is that head; such a domain is exported
as one and read as ``logits[:, 0]``.

Each export is checked before it is swapped into place: the folder is loaded back the way a user
would load it and its logits are compared with hrkd's own on real test examples of that domain
(``HF_TOLERANCE``, ``ONNX_TOLERANCE``, ``INT8_PROB_TOLERANCE`` below); a sequence-classification folder
is also run through transformers' text-classification pipeline and its probabilities compared.
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from transformers import (AutoConfig, AutoModelForSequenceClassification, AutoModelForTokenClassification,
                          BertForSequenceClassification, BertForTokenClassification, PreTrainedModel, pipeline)

from hrkd_cli.errors import HrkdError
from hrkd_cli.fsio import read_json, replace_dir, staging_dir
from hrkd_cli.model.checkpoint import load_classifier, members
from hrkd_cli.model.classifier import DomainClassifier, weights_mismatch
from hrkd_cli.model.pretrained import load_tokenizer

EXPORT_FORMAT = "hrkd-export/1"
EXPORT_FILE = "hrkd_export.json"  # marks an exported folder; `hrkd predict` reads its settings from it

# fp32 logits of the exported model vs hrkd's own: the same operations in another attention kernel
# (transformers' SDPA vs our explicit product), so only float rounding differs.
HF_TOLERANCE = 1e-5
# ONNX Runtime fuses and reorders the same fp32 operations; measured differences are about 1e-7.
ONNX_TOLERANCE = 1e-4
# Dynamic int8 quantisation changes the weights themselves; it is checked on class probabilities.
INT8_PROB_TOLERANCE = 0.1
PROBE_EXAMPLES = 64  # test examples of the domain the checks run on
# Used for the checks when the run's prepared data is gone; lengths differ so that padding is exercised.
FALLBACK_PROBE = ["a", "this one works well and i would buy it again", "it broke after two days of use, sadly",
                  "the plot was slow but the ending made up for it, more or less, in the last ten pages"]


# ---------------------------------------------------------------- one domain's classifier


class HrkdHead(nn.Module):
    """An hrkd checkpoint's classifier for one domain: (ids, mask, types) -> logits [B, C]."""

    def __init__(self, model: DomainClassifier, domain_index: int):
        super().__init__()
        self.model = model
        self.domain_index = domain_index

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.model(input_ids, attention_mask, token_type_ids, [(self.domain_index, input_ids.shape[0])]).logits


class StockLogits(nn.Module):
    """An exported stock classifier read the way hrkd reads it: (ids, mask, types) -> logits [B, C]; for a
    BertForTokenClassification (a "cls"-head export) the logits at [CLS]."""

    def __init__(self, model: PreTrainedModel):
        super().__init__()
        self.model = model
        self.at_cls = isinstance(model, BertForTokenClassification)

    def forward(self, input_ids, attention_mask, token_type_ids):
        logits = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits
        return logits[:, 0] if self.at_cls else logits


@dataclass
class DomainModel:
    """Everything needed to score text for one domain, from an hrkd run or an exported folder."""

    domain: str
    module: nn.Module  # (input_ids, attention_mask, token_type_ids) -> logits [B, C]
    tokenizer: object
    label_names: list[str]
    max_seq_length: int
    text_pair: bool | None  # None: not known (the run's data is gone); text_b is then used where given
    source: Path  # the checkpoint directory, or the exported folder
    meta: dict = field(default_factory=dict)  # the checkpoint's hrkd.json ({} for an exported folder)
    data: object = None  # the run's PreparedData when it is still there

    def encode(self, texts: list[str], pairs: list[str] | None = None):
        """Tokenise as `hrkd prepare` did (same truncation and length), padded to the longest row."""
        return self.tokenizer(texts, pairs, truncation="longest_first", max_length=self.max_seq_length, padding=True,
                              return_token_type_ids=True, return_attention_mask=True, return_tensors="pt")

    @torch.no_grad()
    def logits(self, enc) -> torch.Tensor:
        device = next(self.module.parameters()).device
        args = [enc[k].to(device) for k in ("input_ids", "attention_mask", "token_type_ids")]
        return self.module(*args).float().cpu()


def _exported_folder(path: Path, domain: str | None) -> Path | None:
    path = Path(path)
    if (path / EXPORT_FILE).is_file():
        return path
    if domain is not None and (path / domain / EXPORT_FILE).is_file():
        return path / domain
    return None


def _export_info(folder: Path) -> dict:
    info = read_json(folder / EXPORT_FILE)
    if not isinstance(info, dict) or info.get("format") != EXPORT_FORMAT:
        raise HrkdError(f"{folder / EXPORT_FILE}: not written by `hrkd export` (format {info.get('format') if isinstance(info, dict) else None!r})")
    return info


def model_domains(path: Path) -> list[str]:
    """The domains an hrkd run or checkpoint, an export root, or an exported domain folder can score."""
    path = Path(path)
    if (path / EXPORT_FILE).is_file():
        return [_export_info(path)["domain"]]
    if path.is_dir() and not (path / "hrkd.json").is_file():
        found = sorted(p.parent.name for p in path.glob(f"*/{EXPORT_FILE}"))
        if found:
            return found
    return list(members(path))


def _prepared_data(meta: dict):
    """The run's prepared data (for the sequence length, the label names, the probe examples), if still there."""
    # lazy: the store brings datasets (~0.5 s at start-up); `hrkd predict` on an exported folder reads no data
    from hrkd_cli.data.store import load_prepared

    where = meta.get("data_dir")
    if not where or not Path(where).is_dir():
        return None
    try:
        data = load_prepared(where)
    except HrkdError:
        return None
    # Prepared again since (another preset or source): its settings are not the model's.
    return data if data.hash == meta.get("data_hash") else None


def run_record(path: Path) -> dict:
    """The run.json of a run directory, or of the run a checkpoint inside it belongs to (up to two levels up:
    seed-1/best, teacher/single/books/best)."""
    path = Path(path).resolve()
    for where in (path, path.parent, path.parent.parent):
        if (where / "run.json").is_file():
            record = read_json(where / "run.json")
            if isinstance(record, dict):
                return record
    return {}


def label_names(names: list | None, num_labels: int) -> list[str]:
    """The data's label names where it has them, else transformers' LABEL_i."""
    names = list(names or [])
    return [str(names[i]) if i < len(names) and names[i] not in (None, "") else f"LABEL_{i}" for i in range(num_labels)]


def open_domain(path: Path, domain: str, device: torch.device | str = "cpu") -> DomainModel:
    """One domain's classifier from an hrkd run or checkpoint (teacher or student), or an exported folder."""
    path = Path(path)
    folder = _exported_folder(path, domain)
    if folder is not None:
        return _open_exported(folder, domain, device)
    known = members(path)
    if domain not in known:
        raise HrkdError(f"{path}: has no model for domain {domain!r} (domains: {', '.join(known)})")
    ckpt = known[domain]
    model, meta = load_classifier(ckpt, device)
    model.eval()
    data = _prepared_data(meta)
    if data is not None:
        max_len, pair = data.max_seq_length, data.text_pair
    else:
        max_len = ((run_record(ckpt).get("preset") or {}).get("data") or {}).get("max_seq_length")
        pair = None
        if not max_len:
            raise HrkdError(f"{ckpt}: cannot tell the sequence length it was trained with: its prepared data "
                            f"{meta.get('data_dir')} and its run.json are gone")
    tokenizer = load_tokenizer(str(ckpt))  # saved with every teacher and student checkpoint
    names = label_names(meta.get("label_names") or (data.label_names if data is not None else None), model.heads[0].out_features)
    module = HrkdHead(model, meta["domains"].index(domain))
    return DomainModel(domain, module, tokenizer, names, int(max_len), pair, Path(ckpt), meta, data)


def _open_exported(folder: Path, domain: str, device) -> DomainModel:
    info = _export_info(folder)
    if info["domain"] != domain:
        raise HrkdError(f"{folder}: was exported for domain {info['domain']!r}, not {domain!r}")
    if info.get("as") != "hf":
        raise HrkdError(f"{folder}: is an {info.get('as')} export; pass the hrkd run it came from, or an `hrkd export --format hf` folder")
    model = load_stock(folder).to(device).eval()
    tokenizer = load_tokenizer(str(folder))
    names = label_names([model.config.id2label.get(i) for i in range(model.config.num_labels)], model.config.num_labels)
    return DomainModel(domain, StockLogits(model), tokenizer, names, int(info["max_seq_length"]), info.get("text_pair"), folder)


STOCK_CLASSES = {"BertForSequenceClassification": AutoModelForSequenceClassification,
                 "BertForTokenClassification": AutoModelForTokenClassification}


def load_stock(folder: Path) -> PreTrainedModel:
    """An exported folder, loaded as a user would (the Auto class of its config's architecture), with every
    weight accounted for (no benign keys here: the folder was written from exactly this class)."""
    try:
        arch = (AutoConfig.from_pretrained(str(folder)).architectures or ["?"])[0]
        if arch not in STOCK_CLASSES:
            raise HrkdError(f"{folder}: holds a {arch}, not one of the classes hrkd exports ({', '.join(STOCK_CLASSES)})")
        model, info = STOCK_CLASSES[arch].from_pretrained(str(folder), output_loading_info=True, use_safetensors=True)
    except HrkdError:
        raise
    except Exception as err:  # noqa: BLE001 - any loader failure is one line
        raise HrkdError(f"cannot load {folder}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}") from None
    if info["missing_keys"] or info["unexpected_keys"] or info["mismatched_keys"]:
        raise weights_mismatch(folder, info["missing_keys"], info["unexpected_keys"], [str(m) for m in info["mismatched_keys"]])
    return model


# ---------------------------------------------------------------- the stock class


def domain_stock(dm: DomainModel) -> PreTrainedModel:
    """The domain's classifier as a stock transformers class with the same weights (``stock_classifier``)."""
    head = dm.module
    if not isinstance(head, HrkdHead):
        raise HrkdError(f"{dm.source}: is an exported folder already; export the hrkd run it came from")
    return stock_classifier(head.model, head.domain_index, dm.label_names)


def stock_class(model: DomainClassifier) -> type[PreTrainedModel]:
    """BertForSequenceClassification for a pooler head, BertForTokenClassification (read at [CLS]) for "cls"."""
    return BertForSequenceClassification if model.head == "pooler" else BertForTokenClassification


def stock_classifier(model: DomainClassifier, domain_index: int, names: list[str]) -> PreTrainedModel:
    """One domain of an hrkd classifier as a stock transformers classifier with the same weights."""
    encoder = model.encoder
    cls = stock_class(model)
    cfg = copy.deepcopy(encoder.config)
    cfg._attn_implementation = None  # ours ("hrkd_scores") is registered by hrkd only; let transformers pick its own
    cfg.architectures = [cls.__name__]
    cfg.num_labels = len(names)
    cfg.id2label = dict(enumerate(names))
    cfg.label2id = {n: i for i, n in enumerate(names)}
    if cls is BertForSequenceClassification:
        cfg.problem_type = "single_label_classification"
    stock = cls(cfg)
    linear = model.heads[model.head_index(domain_index)]
    state = {f"bert.{k}": v for k, v in encoder.state_dict().items()}
    state["classifier.weight"], state["classifier.bias"] = linear.weight, linear.bias
    missing, unexpected = stock.load_state_dict(state, strict=False)
    if missing or unexpected:  # a transformers release that changed BERT's layout
        raise weights_mismatch(cls.__name__, missing, unexpected)
    return stock.eval()


def stock_description(cls: type[PreTrainedModel]) -> str:
    """How hrkd's logits are read from an exported class, for hrkd_export.json."""
    if cls is BertForTokenClassification:
        return "logits[:, 0] of BertForTokenClassification (dropout + linear on [CLS], no pooler)"
    return "logits of BertForSequenceClassification (pooler, dropout + linear)"


def pipeline_probabilities(folder: Path, texts: list[str], pairs: list[str] | None) -> torch.Tensor:
    """Class probabilities [B, C] of transformers' text-classification pipeline on an exported folder, in
    id2label order, the inputs truncated as in training (the folder's tokenizer holds the length)."""
    clf = pipeline("text-classification", model=str(folder), tokenizer=str(folder), device="cpu")
    inputs = texts if pairs is None else [{"text": a, "text_pair": b} for a, b in zip(texts, pairs)]
    out = clf(inputs, top_k=None, truncation=True, function_to_apply="softmax")
    order = {name: i for i, name in clf.model.config.id2label.items()}
    probs = torch.zeros(len(texts), len(order), dtype=torch.float64)
    for row, scores in enumerate(out):
        for s in scores:
            probs[row, order[s["label"]]] = s["score"]
    return probs


def probe(dm: DomainModel) -> tuple[list[str], list[str] | None]:
    """Examples the exports are checked on: the front of the domain's test split, else a few sentences."""
    if dm.data is not None:
        ds = dm.data.dataset(dm.domain, "test")
        rows = ds[: min(PROBE_EXAMPLES, len(ds))]
        if rows["text"]:
            return list(rows["text"]), (list(rows["text_b"]) if dm.data.text_pair else None)
    return list(FALLBACK_PROBE), (FALLBACK_PROBE[::-1] if dm.text_pair else None)


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max())


# ---------------------------------------------------------------- writers


def _export_meta(dm: DomainModel, fmt: str, checks: dict, extra: dict) -> dict:
    return {
        "format": EXPORT_FORMAT, "as": fmt, "domain": dm.domain, "labels": dm.label_names,
        "max_seq_length": dm.max_seq_length, "text_pair": dm.text_pair, "source": str(dm.source),
        "data_hash": dm.meta.get("data_hash"), "head": stock_description(stock_class(dm.module.model)),
        "checks": checks, **extra,
    }


def _write_folder(final_dir: Path, build: Callable[[Path], dict], dm: DomainModel, fmt: str, card: Callable[[dict], str], extra: dict) -> dict:
    """Build an export in a staging directory, check it, and swap it into place (fsio.replace_dir)."""
    tmp = staging_dir(final_dir)
    try:
        tmp.chmod(0o755)  # a folder to hand on: not the owner-only mode of a fresh temporary directory
        dm.tokenizer.model_max_length = dm.max_seq_length  # `truncation=True` then cuts where training did
        dm.tokenizer.save_pretrained(str(tmp))  # first: the checks load the folder as a user would
        checks = build(tmp)
        # Plain writes: the whole staging directory is swapped in at once below.
        (tmp / EXPORT_FILE).write_text(json.dumps(_export_meta(dm, fmt, checks, extra), indent=2, sort_keys=True) + "\n")
        (tmp / "README.md").write_text(card(checks))
        replace_dir(tmp, final_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return checks


def write_hf(dm: DomainModel, final_dir: Path, card: Callable[[dict], str], extra: dict | None = None) -> dict:
    """``final_dir``: config.json + model.safetensors (stock_classifier's class), tokenizer, model card.
    Returns the checks: the largest |logit difference| against hrkd's model on the probe examples and, for a
    sequence-classification folder, the largest |probability difference| of the text-classification pipeline."""
    texts, pairs = probe(dm)
    enc = dm.encode(texts, pairs)
    reference = dm.logits(enc)
    stock = domain_stock(dm)

    def build(tmp: Path) -> dict:
        stock.save_pretrained(str(tmp))
        loaded = StockLogits(load_stock(tmp).eval())
        with torch.no_grad():
            got = loaded(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"]).float()
        diff = _max_diff(got, reference)
        if not diff <= HF_TOLERANCE:
            raise HrkdError(f"{final_dir}: the exported model's logits differ from hrkd's by {diff:.2e} "
                            f"(more than {HF_TOLERANCE:g}); nothing was written")
        return {"examples": len(texts), "max_abs_logit_diff": diff, "tolerance": HF_TOLERANCE, "class": type(stock).__name__}

    def build_and_pipeline(tmp: Path) -> dict:
        checks = build(tmp)
        if isinstance(stock, BertForSequenceClassification):
            dp = _max_diff(pipeline_probabilities(tmp, texts, pairs), reference.softmax(-1))
            if not dp <= HF_TOLERANCE:
                raise HrkdError(f"{final_dir}: the text-classification pipeline's probabilities differ from hrkd's by "
                                f"{dp:.2e} (more than {HF_TOLERANCE:g}); nothing was written")
            checks["pipeline_max_abs_prob_diff"] = dp
        return checks

    return _write_folder(Path(final_dir), build_and_pipeline, dm, "hf", card, extra or {})


def onnx_runtime():
    """onnx and onnxruntime, or the one line that says how to get them."""
    try:  # lazy: an optional extra; missing, it is the one-line error below
        import onnx  # noqa: F401 - torch.onnx.export needs it
        import onnxruntime
    except ImportError:
        raise HrkdError('--format onnx needs the onnx extra: pip install -e ".[onnx]"') from None
    return onnxruntime


ONNX_INPUTS = ["input_ids", "attention_mask", "token_type_ids"]


def export_onnx_file(model: PreTrainedModel, sample: tuple, path: Path) -> None:
    """Write ``model`` read as hrkd reads it (StockLogits) to ``path``: inputs ONNX_INPUTS of shape [batch,
    sequence], output logits [batch, labels], traced on ``sample`` (a tuple of the three input tensors)."""
    model.config._attn_implementation = "eager"  # the plain matmul-softmax graph; SDPA has no ONNX form in every opset
    wrapper = StockLogits(model).eval()
    with warnings.catch_warnings():
        # The TorchScript exporter (no onnxscript needed) warns about its deprecation and about Python
        # values in transformers' mask code; callers check the written graph numerically.
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapper, sample, str(path), dynamo=False, input_names=ONNX_INPUTS,
                          output_names=["logits"], opset_version=17,
                          dynamic_axes={**{k: {0: "batch", 1: "sequence"} for k in ONNX_INPUTS}, "logits": {0: "batch"}})


def quantize_int8(src: Path, dst: Path) -> None:
    """ONNX Runtime's dynamic quantisation: int8 weights, activations quantised on the fly."""
    from onnxruntime.quantization import QuantType, quantize_dynamic  # lazy: the optional onnx extra

    logging.disable(logging.WARNING)  # its advice to pre-process the graph goes to the root logger
    try:
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
    finally:
        logging.disable(logging.NOTSET)


def _ort_logits(ort, path: Path, enc) -> torch.Tensor:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {k: enc[k].numpy().astype("int64") for k in ("input_ids", "attention_mask", "token_type_ids")}
    return torch.from_numpy(session.run(["logits"], feeds)[0]).float()


def write_onnx(dm: DomainModel, final_dir: Path, card: Callable[[dict], str], quantize: str | None = None,
               extra: dict | None = None) -> dict:
    """``final_dir``: model.onnx (inputs input_ids, attention_mask, token_type_ids of shape [batch, sequence];
    output logits [batch, labels]), model.int8.onnx with ``quantize="int8"``, tokenizer, model card."""
    ort = onnx_runtime()
    texts, pairs = probe(dm)
    enc = dm.encode(texts, pairs)
    reference = dm.logits(enc)
    model = domain_stock(dm)
    # Traced on two rows of different lengths (padding present); checked below on the full probe batch,
    # whose shape differs, so a trace that baked in a shape would fail here and not at the user's.
    sample = dm.encode(FALLBACK_PROBE[:2], FALLBACK_PROBE[2:] if pairs is not None else None)

    def build(tmp: Path) -> dict:
        path = tmp / "model.onnx"
        export_onnx_file(model, tuple(sample[k] for k in ONNX_INPUTS), path)
        diff = _max_diff(_ort_logits(ort, path, enc), reference)
        if not diff <= ONNX_TOLERANCE:
            raise HrkdError(f"{final_dir}: ONNX Runtime's logits differ from PyTorch's by {diff:.2e} "
                            f"(more than {ONNX_TOLERANCE:g}); nothing was written")
        checks = {"examples": len(texts), "max_abs_logit_diff": diff, "tolerance": ONNX_TOLERANCE}
        if quantize == "int8":
            quantize_int8(path, tmp / "model.int8.onnx")
            q = _ort_logits(ort, tmp / "model.int8.onnx", enc)
            dp = _max_diff(q.softmax(-1), reference.softmax(-1))
            agree = float((q.argmax(-1) == reference.argmax(-1)).double().mean())
            if not dp <= INT8_PROB_TOLERANCE:
                raise HrkdError(f"{final_dir}: int8 quantisation moves class probabilities by up to {dp:.3f} "
                                f"(more than {INT8_PROB_TOLERANCE:g}); export without --quantize")
            checks["int8"] = {"max_abs_prob_diff": dp, "label_agreement": agree, "tolerance": INT8_PROB_TOLERANCE}
        return checks

    return _write_folder(Path(final_dir), build, dm, "onnx", card, {"quantize": quantize, **(extra or {})})

