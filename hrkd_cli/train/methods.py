"""The distillation methods: one registry entry per ``distill.method`` (docs/adding-a-method.md).

An entry names the method's loss, its student builder, its row name and the teacher kind it distils from;
the loops look a method up here instead of testing its name. Two loops serve them: ``joint``
(hrkd_cli/train/distill.py: every step holds a sub-batch of every domain, or one student per domain with
``per_domain``) and ``baseline`` (hrkd_cli/train/baselines.py: one student per domain on its own data, the
loss weighted per example or taken against several teachers).

The names also live in hrkd_cli/vocabulary.py, which imports no torch, so that the preset schema and the
tables read them without loading a model; :func:`register` writes a new method's names there too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from hrkd_cli.model.baselines import meta_kd_loss, mtn_kd_loss
from hrkd_cli.model.kd_model import eq5_loss, eq17_loss, plain_student, relational_student
from hrkd_cli.vocabulary import DEFAULT_TEACHER, METHOD_NAMES

LOOPS = ("joint", "baseline")


@dataclass(frozen=True)
class Method:
    """A distillation method.

    loss: the joint loop's step loss ``(DistillConfig, DomainLosses, relational output or None) -> tensor``
      (Eq. 5, Eq. 17); the baseline loop's ``meta_kd_loss`` / ``mtn_kd_loss``.
    student: ``(DistillConfig, student layers, domains, teacher width) -> module or None``, the method's own
      trainable part beside the student and its projections (HRKD's relational module), saved with them.
    row: the method's name in table rows, ``<teacher> -(<row>)-> BERT_S``.
    teacher: the teacher kind it distils from unless distill.teacher_kind says otherwise.
    per_domain: the joint loop trains one student per domain, each on its own domain (TinyBERT-KD).
    loop: "joint" or "baseline".
    """

    name: str
    loss: Callable
    row: str
    teacher: str
    student: Callable = plain_student
    per_domain: bool = False
    loop: str = "joint"


METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add ``method`` to the registry and its row name and default teacher to hrkd_cli.vocabulary (which the
    preset schema and the run names read). A name is registered once."""
    if method.name in METHODS:
        raise ValueError(f"distill.method {method.name!r} is registered already")
    if method.loop not in LOOPS:
        raise ValueError(f"method {method.name!r}: loop {method.loop!r} is not one of {', '.join(LOOPS)}")
    METHODS[method.name] = method
    METHOD_NAMES[method.name] = method.row
    DEFAULT_TEACHER[method.name] = method.teacher
    return method


for _method in (
    Method("tinybert", eq5_loss, METHOD_NAMES["tinybert"], DEFAULT_TEACHER["tinybert"], per_domain=True),
    Method("multi-domain", eq5_loss, METHOD_NAMES["multi-domain"], DEFAULT_TEACHER["multi-domain"]),
    Method("hrkd", eq17_loss, METHOD_NAMES["hrkd"], DEFAULT_TEACHER["hrkd"], student=relational_student),
    Method("meta-kd", meta_kd_loss, METHOD_NAMES["meta-kd"], DEFAULT_TEACHER["meta-kd"], loop="baseline"),
    Method("mtn-kd", mtn_kd_loss, METHOD_NAMES["mtn-kd"], DEFAULT_TEACHER["mtn-kd"], loop="baseline"),
):
    METHODS[_method.name] = _method  # the built-in names are vocabulary's already
