"""A trained model as one self-contained file: ONNX (float32, or int8) or TorchScript.

    .venv/bin/python -m pytest tests/training/test_export.py -p no:django -q

`export_checkpoint(checkpoint, path, fmt=...)` loads a checkpoint (`training.models`) and
writes it as a file that needs neither LabelLoop nor, for ONNX, PyTorch:

- input ``pixels``: uint8 (N, C, S, S), NCHW, 0..255, the image as the worker decodes it
  (`training.data.decode_image`: grey "L" or "RGB", letterboxed to S). Normalisation, and a
  backbone's resize and grey-to-RGB repeat, happen inside the model.
- output ``probabilities``: float32 (N, K), softmax over the classes. N is free (any batch).
- metadata (`export_metadata`): classes, input size, channels, colour mode, the normalisation
  the model applies, input and output names, dtypes and shapes. ONNX keeps it as JSON in
  ``metadata_props["labelloop"]``; TorchScript in the extra file ``labelloop.json``.
  `read_metadata(path)` reads either back.

ONNX comes from `torch.onnx.export(dynamo=True)`: the exporter PyTorch 2.9+ defaults to (the
TorchScript-based one is deprecated), offline, needs `onnxscript`; it returns the model in
memory (`ONNXProgram.model_proto`), so the weights are kept inside the one file instead of an
external ``.data`` file, and the metadata is added before it is written.

int8 (ONNX only) is ONNX Runtime's static quantization in QDQ format: weights int8 per output
channel, activations uint8 with ranges calibrated (MinMax) on `calibration`, uint8 images of
the project. Dynamic quantization would leave the convolutions, nearly all of the compute, in
float. PyTorch's own int8 path for TorchScript (torch.ao eager/FX quantization) is deprecated
in PyTorch 2.13 and cannot trace a backbone's shape checks, so TorchScript is float32 only.
TorchScript itself (`torch.jit.trace`, `save`, `load`) is deprecated in PyTorch 2.13 in favour
of `torch.export`; it still works, and it is what the issue asks for and what C++ (libtorch)
and older serving stacks load, so it stays, with ONNX the recommended format.
"""

from __future__ import annotations

import io
import json
import tempfile
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from training.backbones import Backbone
from training.models import Classifier, load_checkpoint

FORMATS = ("onnx", "torchscript")
QUANTIZATIONS = ("int8",)
EXPORT_FORMAT = "labelloop-export-1"
METADATA_KEY = "labelloop"  # ONNX metadata_props key; TorchScript extra file METADATA_KEY.json
INPUT_NAME = "pixels"
OUTPUT_NAME = "probabilities"
# Images the int8 activation ranges are calibrated on: MinMax ranges settle within a few
# hundred images; more costs calibration time (one float pass each) and buys nothing.
CALIBRATION_IMAGES = 256
CALIBRATION_BATCH = 32  # images per calibration pass
RESIZE_NOTE = (
    "letterbox: scale the long side to input_size (bilinear), centre, pad with the median "
    "colour of the border; a square image is simply resized to input_size x input_size"
)


class Probabilities(nn.Module):
    """The exported graph: uint8 pixels -> softmax probabilities (dropout off: eval mode)."""

    def __init__(self, model: Classifier) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return F.softmax(self.model(pixels), dim=1)


def normalization(model: Classifier) -> tuple[list[float], list[float]]:
    """The per-channel (mean, std) in pixel units that the model applies in all: its own
    `Normalize`, then a backbone trunk's; (x - m1) / s1 then (. - m2) / s2 is
    (x - (m1 + m2 s1)) / (s1 s2)."""
    m1, s1 = model.normalize.mean.flatten(), model.normalize.std.flatten()
    trunk = model.trunk
    if not isinstance(trunk, Backbone):
        return m1.tolist(), s1.tolist()
    m2, s2 = trunk.mean.flatten(), trunk.std.flatten()
    return (m1 + m2 * s1).tolist(), (s1 * s2).tolist()


def export_metadata(
    model: Classifier,
    meta: dict,
    *,
    fmt: str,
    quantize: str | None,
    classes: Sequence[str] | None = None,
    extra: dict | None = None,
) -> dict:
    """What a user of the file needs, from the model and its checkpoint's meta. `classes`
    overrides meta["classes"] (the names as renamed since training); `extra` is added as is
    (project, model version, ...)."""
    size, channels = int(meta["input_size"]), int(meta["input_channels"])
    names = list(classes if classes is not None else meta["classes"])
    if len(names) != model.num_classes:
        raise ValueError(f"{len(names)} class names for a model of {model.num_classes} classes")
    mean, std = normalization(model)
    inner = model.trunk.input_size if isinstance(model.trunk, Backbone) else None
    return {
        "format": EXPORT_FORMAT,
        "model_format": fmt,
        "quantize": quantize,
        "classes": names,
        "input_size": size,
        "input_channels": channels,
        "color_mode": "L" if channels == 1 else "RGB",
        "mean": mean,
        "std": std,
        "input": {
            "name": INPUT_NAME,
            "dtype": "uint8",
            "shape": ["N", channels, size, size],
            "layout": "NCHW",
            "range": [0, 255],
            "resize": RESIZE_NOTE,
            "normalization": (
                f"inside the model: resized to {inner} px for the backbone, then "
                if inner and inner != size
                else "inside the model: "
            )
            + "(pixels - mean) / std per channel of the network",
        },
        "output": {
            "name": OUTPUT_NAME,
            "dtype": "float32",
            "shape": ["N", len(names)],
            "meaning": "softmax probabilities, in the order of classes",
        },
        "arch": meta["arch"],
        "arch_options": dict(meta.get("arch_options", {})),
        "torch": str(torch.__version__),
        **(extra or {}),
    }


def export_model(
    model: Classifier,
    meta: dict,
    path: str | Path,
    *,
    fmt: str,
    quantize: str | None = None,
    calibration: np.ndarray | None = None,
    classes: Sequence[str] | None = None,
    extra: dict | None = None,
) -> dict:
    """Write `model` to `path` as `fmt` (`FORMATS`), int8 when `quantize` == "int8" (ONNX only,
    calibrated on `calibration`: uint8 (N, C, S, S)). Returns the metadata stored in it."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {list(FORMATS)}, got {fmt!r}")
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise ValueError(f"quantize must be one of {list(QUANTIZATIONS)} or None, got {quantize!r}")
    if quantize and fmt != "onnx":
        raise ValueError("int8 is exported as ONNX only (ONNX Runtime's static quantization)")
    metadata = export_metadata(
        model, meta, fmt=fmt, quantize=quantize, classes=classes, extra=extra
    )
    size, channels = metadata["input_size"], metadata["input_channels"]
    if quantize and (calibration is None or calibration.shape[1:] != (channels, size, size)):
        shape = None if calibration is None else calibration.shape
        raise ValueError(f"int8 needs calibration images (N, {channels}, {size}, {size}): {shape}")
    wrapper = Probabilities(model.cpu().eval()).eval()
    # Two rows: a batch of one would let the exporter specialise the batch dimension to 1.
    example = torch.zeros((2, channels, size, size), dtype=torch.uint8)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "torchscript":
        _write_torchscript(wrapper, example, target, metadata)
        return metadata
    proto = _onnx_float(wrapper, example)
    if quantize:
        proto = _onnx_int8(proto, calibration)
    _set_onnx_metadata(proto, metadata)
    import onnx

    onnx.save_model(proto, str(target))
    return metadata


def export_checkpoint(checkpoint: str | Path, path: str | Path, **kwargs) -> dict:
    """`export_model` of a checkpoint file (`training.models.save_checkpoint`)."""
    model, meta = load_checkpoint(str(checkpoint))
    return export_model(model, meta, path, **kwargs)


def read_metadata(path: str | Path) -> dict:
    """The metadata of an exported file, ONNX or TorchScript (a zip archive)."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            name = next(
                (n for n in archive.namelist() if n.endswith(f"extra/{METADATA_KEY}.json")), None
            )
            if name is None:
                raise ValueError(f"{path}: a TorchScript file without {METADATA_KEY}.json")
            return json.loads(archive.read(name))
    import onnx

    proto = onnx.load_model(str(path), load_external_data=False)
    props = {p.key: p.value for p in proto.metadata_props}
    if METADATA_KEY not in props:
        raise ValueError(f"{path}: an ONNX file without metadata {METADATA_KEY!r}")
    return json.loads(props[METADATA_KEY])


def _write_torchscript(wrapper: nn.Module, example: torch.Tensor, target: Path, metadata: dict):
    with torch.no_grad(), warnings.catch_warnings():
        # A backbone's checks of the input's channels and side become constants of the trace,
        # which is right: the file takes one input shape (any batch), the one in its metadata.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # check_trace off: it re-runs the model on the example and compares, which costs a
        # pass and checks nothing the tests do not (they compare with the model's outputs).
        traced = torch.jit.trace(wrapper, example, check_trace=False)
    buffer = io.BytesIO()
    torch.jit.save(traced, buffer, _extra_files={f"{METADATA_KEY}.json": json.dumps(metadata)})
    target.write_bytes(buffer.getvalue())


def _onnx_float(wrapper: nn.Module, example: torch.Tensor):
    batch = torch.export.Dim("batch")
    program = torch.onnx.export(
        wrapper,
        (example,),
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_shapes=({0: batch},),
        dynamo=True,
        external_data=False,
        verbose=False,
    )
    return program.model_proto


def _onnx_int8(proto, calibration: np.ndarray):
    """Static QDQ quantization of `proto`, activation ranges calibrated on `calibration`."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches: Iterator[dict] = (
                {INPUT_NAME: np.ascontiguousarray(calibration[i : i + CALIBRATION_BATCH])}
                for i in range(0, len(calibration), CALIBRATION_BATCH)
            )

        def get_next(self) -> dict | None:
            return next(self.batches, None)

    with tempfile.TemporaryDirectory(prefix="labelloop-int8-") as tmp:
        float_path, pre_path, out_path = (str(Path(tmp) / n) for n in ("f.onnx", "p.onnx", "q"))
        onnx.save_model(proto, float_path)
        # Shape inference and graph optimisation (batch norms folded into convolutions) first,
        # as ONNX Runtime recommends: a folded conv quantizes as one op, not two.
        quant_pre_process(float_path, pre_path, skip_symbolic_shape=True)
        quantize_static(
            pre_path,
            out_path,
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
        return onnx.load_model(out_path)


def _set_onnx_metadata(proto, metadata: dict) -> None:
    for prop in list(proto.metadata_props):
        if prop.key == METADATA_KEY:
            proto.metadata_props.remove(prop)
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(metadata)
    proto.producer_name = "labelloop"
