"""Loading teachers and building students (local directory, hub id, config, or teacher layers).

A classification/regression task loads ``AutoModelForSequenceClassification``, an instruction
task ``AutoModelForCausalLM``. ``trust_remote_code`` is never enabled: only architectures that
ship with transformers can run. Every failure becomes a ``ModelError`` with a readable message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
)

from geokd_core.errors import ModelError
from geokd_core.spec import InitFromTeacher, ModelRef, StudentConfig

# Names of the per-layer module lists in transformers' encoders/decoders (bert: encoder.layer.3,
# gpt2: transformer.h.3, llama/opt: model.layers.3, t5-style: block.3).
_LAYER_KEY = re.compile(r"(\.(?:layer|layers|h|block)\.)(\d+)(\.)")


@dataclass
class Models:
    """The models of one job; ``teacher`` is None for finetune/evaluate."""

    student: PreTrainedModel
    teacher: PreTrainedModel | None
    tokenizer: Any


def auto_class(task_type: str) -> type:
    """The transformers auto class with the head that ``task_type`` needs."""
    if task_type == "causal_lm":
        return AutoModelForCausalLM
    if task_type in ("classification", "regression"):
        return AutoModelForSequenceClassification
    raise ModelError(f"unknown task type {task_type!r}")


def _head_kwargs(task_type: str, num_labels: int) -> dict[str, Any]:
    if task_type == "causal_lm":
        return {}
    kwargs: dict[str, Any] = {"num_labels": num_labels}
    if task_type == "regression":
        kwargs["problem_type"] = "regression"
    return kwargs


def head_kind(config: PretrainedConfig) -> str:
    """``classifier``, ``causal`` (an LM head), ``decoder`` (a decoder-only family, no head) or ``encoder``."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    archs = getattr(config, "architectures", None) or []
    if any(a.endswith("ForSequenceClassification") for a in archs):
        return "classifier"
    if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs):
        return "causal"
    mt = getattr(config, "model_type", "")
    if mt in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and mt not in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        return "decoder"
    return "encoder"


def arch_name(config: PretrainedConfig) -> str:
    """The architecture a config names (``BertForSequenceClassification``), else its model type."""
    return (getattr(config, "architectures", None) or [getattr(config, "model_type", "?")])[0]


def head_mismatch(config: PretrainedConfig, task_type: str, num_labels: int, role: str) -> str | None:
    """Why a model with ``config`` cannot serve a ``task_type`` task, or None (shared with preflight).

    A causal-LM task needs a decoder; a classification/regression task needs an encoder, and a
    head that was already trained must have the task's number of labels.
    """
    head, arch = head_kind(config), arch_name(config)
    if task_type == "causal_lm":
        if head not in ("causal", "decoder"):
            return f"{arch} is not a causal LM, but instruction data needs one (AutoModelForCausalLM)"
        return None
    if head in ("causal", "decoder"):
        return (f"{arch} is a causal LM; {task_type} data needs an encoder/classifier "
                "(use source=instruct for causal LMs)")
    if head == "classifier" and config.num_labels != num_labels:
        return f"the {role}'s classification head has {config.num_labels} labels, the data has {num_labels}"
    return None


def _load_kwargs(ref: ModelRef) -> dict[str, Any]:
    """from_pretrained kwargs shared by config, model and tokenizer (remote code is never trusted)."""
    kwargs: dict[str, Any] = {"trust_remote_code": False, "revision": ref.revision}
    if ref.gguf_file:
        kwargs["gguf_file"] = ref.gguf_file
    return kwargs


def load_pretrained(ref: ModelRef, task_type: str, num_labels: int, where: str) -> PreTrainedModel:
    """Load ``ref.model`` (local dir or hub id, optionally a GGUF file) with the task's head."""
    assert ref.model is not None
    kwargs = _load_kwargs(ref)
    try:
        config = AutoConfig.from_pretrained(ref.model, **kwargs)
    except (OSError, ValueError, KeyError, ImportError) as exc:
        raise ModelError(f"{where}: cannot load a model config from {ref.model!r}: {exc}") from exc
    if (why := head_mismatch(config, task_type, num_labels, where)) is not None:
        raise ModelError(f"{where}: {why}")
    try:
        model = auto_class(task_type).from_pretrained(ref.model, **kwargs, **_head_kwargs(task_type, num_labels))
    except ImportError as exc:  # e.g. GGUF files need the optional `gguf` package
        raise ModelError(f"{where}: loading {ref.model!r} needs an optional package ({exc}); "
                         "for GGUF install `geokd[gguf]`") from exc
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelError(f"{where}: cannot load {ref.model!r} for {task_type}: {exc}") from exc
    # transformers >= 5 loads a checkpoint in its stored dtype. A student trained with fp16/bf16
    # weights loses every AdamW update below the weights' resolution (a fine-tune then barely
    # moves), and the losses compare float32 features: train and compare in float32, and let
    # `train.mixed_precision` decide where lower precision is used.
    if model.dtype != torch.float32:
        model = model.float()
    return model


def load_tokenizer(ref: ModelRef) -> Any:
    """The tokenizer stored with ``ref.model`` (pad token falls back to EOS for decoder-only models)."""
    assert ref.model is not None
    kwargs = _load_kwargs(ref)
    try:
        tok = AutoTokenizer.from_pretrained(ref.model, **kwargs)
    except (OSError, ValueError, KeyError, ImportError) as exc:
        raise ModelError(f"cannot load a tokenizer from {ref.model!r}: {exc}") from exc
    if tok.pad_token is None and tok.eos_token is not None:
        tok.pad_token = tok.eos_token
    return tok


def num_layers(model: PreTrainedModel) -> int:
    """Number of transformer blocks (``output_hidden_states`` returns this + 1 tensors)."""
    return int(model.config.num_hidden_layers)


def hidden_size(model: PreTrainedModel) -> int:
    return int(model.config.hidden_size)


def student_config(teacher_cfg: PretrainedConfig, sc: StudentConfig) -> PretrainedConfig:
    """The teacher's config with the student's depth/width/heads (same family, same vocabulary)."""
    d = teacher_cfg.to_dict()
    cfg = type(teacher_cfg).from_dict(d)
    cfg.num_hidden_layers = sc.num_layers
    cfg.hidden_size = sc.hidden_size
    cfg.num_attention_heads = sc.num_heads
    inter = sc.intermediate_size or 4 * sc.hidden_size
    for name in ("intermediate_size", "n_inner", "ffn_dim"):
        if name in d:
            setattr(cfg, name, inter)
    # Families with extra width-tied fields (llama: kv heads / head_dim, opt: projection dim).
    if "num_key_value_heads" in d:
        cfg.num_key_value_heads = sc.num_heads
    if d.get("head_dim") is not None:
        cfg.head_dim = sc.hidden_size // sc.num_heads
    if "word_embed_proj_dim" in d:
        cfg.word_embed_proj_dim = sc.hidden_size
    if "embedding_size" in d and d["embedding_size"] == d.get("hidden_size"):
        cfg.embedding_size = sc.hidden_size
    cfg.architectures = None
    return cfg


def init_from_teacher_layers(teacher: PreTrainedModel, spec: InitFromTeacher) -> PreTrainedModel:
    """DistilBERT-style student: the teacher's embeddings, head and the listed layers (0-based).

    Raises:
        ModelError: a layer index is not below the teacher's depth.
    """
    depth = num_layers(teacher)
    bad = [i for i in spec.layers if i >= depth]
    if bad:
        raise ModelError(f"student.init_from_teacher.layers: {bad} out of range for a {depth}-layer teacher")
    cfg = type(teacher.config).from_dict(teacher.config.to_dict())
    cfg.num_hidden_layers = len(spec.layers)
    student = type(teacher)(cfg)
    t_state = teacher.state_dict()
    new_state = {}
    for key in student.state_dict():
        new_state[key] = t_state[_teacher_key(key, spec.layers)].detach().clone()
    student.load_state_dict(new_state)
    return student


def _teacher_key(student_key: str, layers: list[int]) -> str:
    """Map ``encoder.layer.1.x`` to ``encoder.layer.<layers[1]>.x``; other keys are shared."""
    return _LAYER_KEY.sub(lambda m: f"{m.group(1)}{layers[int(m.group(2))]}{m.group(3)}", student_key, count=1)


def build_models(
    teacher_ref: ModelRef | None,
    student_ref: ModelRef,
    task_type: str,
    num_labels: int,
) -> Models:
    """Load the teacher (frozen, eval mode) and build the student; the tokenizer is the teacher's.

    The student must share the teacher's vocabulary: both read the same ``input_ids``.
    """
    teacher = None
    if teacher_ref is not None:
        teacher = load_pretrained(teacher_ref, task_type, num_labels, "teacher")
        teacher.eval()
        teacher.requires_grad_(False)
    if student_ref.model is not None:
        student = load_pretrained(student_ref, task_type, num_labels, "student")
    elif student_ref.init_from_teacher is not None:
        assert teacher is not None
        student = init_from_teacher_layers(teacher, student_ref.init_from_teacher)
    else:
        assert teacher is not None and student_ref.config is not None
        student = auto_class(task_type).from_config(student_config(teacher.config, student_ref.config))
    tokenizer = load_tokenizer(teacher_ref if teacher_ref is not None else student_ref)
    if teacher is not None and teacher.config.vocab_size != student.config.vocab_size:
        raise ModelError(
            f"student vocabulary ({student.config.vocab_size}) differs from the teacher's "
            f"({teacher.config.vocab_size}); teacher and student must share one tokenizer"
        )
    for m in (teacher, student):
        if m is not None and m.config.pad_token_id is None and tokenizer.pad_token_id is not None:
            # Decoder-only classifiers find the last real token through pad_token_id.
            m.config.pad_token_id = tokenizer.pad_token_id
    student.train()
    return Models(student=student, teacher=teacher, tokenizer=tokenizer)


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present; asking for CUDA without one is a readable error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ModelError("train.device=cuda but no CUDA device is available")
    return torch.device(name)


def save_student(model: PreTrainedModel, tokenizer: Any, out: Path) -> Path:
    """``save_pretrained`` of the student and its tokenizer into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
