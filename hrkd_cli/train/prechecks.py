"""Settings that depend on the teacher's shape, checked from config.json before any data is prepared or model trained.

students.setup() and teach check the same on the built models; without these checks a student that cannot be built
from this teacher was found only after `prepare` and `teach` had run. Only configurations are read (no weights).
"""

from __future__ import annotations

from hrkd_cli.config import Preset
from hrkd_cli.errors import HrkdError
from hrkd_cli.model.classifier import check_slice_shape, uniform_layer_map
from hrkd_cli.model.pretrained import load_bert_config
from hrkd_cli.runs import check_seq_length


def check_teacher_settings(preset: Preset):
    """data.max_seq_length against the teacher's positions; returns the teacher's BertConfig."""
    tcfg = load_bert_config(preset.teacher.model)
    check_seq_length(preset, tcfg)
    return tcfg


def _student_shape(preset: Preset, tcfg) -> tuple[int, int, int] | None:
    """(layers, attention heads, vocabulary size) of the student the preset builds; None for an init not known here."""
    s = preset.student
    if s.init == "general":
        name = s.model or preset.teacher.model
        src = load_bert_config(name)
        if max(s.teacher_layers) > src.num_hidden_layers:
            raise HrkdError(f"student.teacher_layers={s.teacher_layers} names a layer above student.init = 'general' "
                            f"({name}): {src.num_hidden_layers}")
        return len(s.teacher_layers), src.num_attention_heads, src.vocab_size
    if s.init in ("teacher-layers", "teacher-slice"):
        src, name = (load_bert_config(s.layers_from), f"student.layers_from {s.layers_from!r}:") if s.layers_from \
            else (tcfg, "the teacher's")
        if max(s.teacher_layers) > src.num_hidden_layers:
            raise HrkdError(f"student.teacher_layers={s.teacher_layers} names a layer above {name} "
                            f"{src.num_hidden_layers} (teacher.model {preset.teacher.model!r})")
        if s.init == "teacher-slice":
            check_slice_shape(src, s.hidden_size, s.num_heads, s.intermediate_size, name)
            return len(s.teacher_layers), s.num_heads, src.vocab_size
        return len(s.teacher_layers), src.num_attention_heads, src.vocab_size
    if s.init == "pretrained":
        if not s.model:
            raise HrkdError("student.init='pretrained' needs student.model (a hub name or a local path)")
        scfg = load_bert_config(s.model)
        return scfg.num_hidden_layers, scfg.num_attention_heads, scfg.vocab_size
    if s.init == "random":
        if s.hidden_size % s.num_heads:
            raise HrkdError(f"student.hidden_size={s.hidden_size} is not divisible by student.num_heads={s.num_heads}")
        return s.num_layers, s.num_heads, tcfg.vocab_size
    return None


def check_student_settings(preset: Preset) -> None:
    """Everything `hrkd distill` needs of this teacher and student, before it prepares data or trains the teacher:
    the layers a teacher-layers student takes, the uniform layer map n = m*N/M, equal head counts for the
    attention loss (Eq. 3), one vocabulary, and the sequence length."""
    tcfg = check_teacher_settings(preset)
    shape = _student_shape(preset, tcfg)
    if shape is None:
        return
    layers, heads, vocab = shape
    uniform_layer_map(tcfg.num_hidden_layers, layers)
    if preset.distill.attention_loss != "off" and heads != tcfg.num_attention_heads:
        raise HrkdError(f"the attention loss (Eq. 3) needs equal head counts: student {heads}, teacher "
                        f"{tcfg.num_attention_heads}; set distill.attention_loss='off' or student.num_heads")
    if vocab != tcfg.vocab_size:
        raise HrkdError(f"student vocabulary ({vocab}) differs from the teacher's ({tcfg.vocab_size})")
