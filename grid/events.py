"""Case events (grid.case-events.v1) as a discriminated union on ``type``.

Every event has the same envelope (:class:`CaseEvent`: ids, ``seq``, states, actor, time,
reason, place) and a ``data`` object whose fields depend on ``type``: one payload model per
event type (:class:`DispatchedData`, :class:`MergedData`, …), one event class per type (or
per group of types sharing a payload, e.g. ``dispatched``/``redispatched``).
:data:`EVENT_TYPES` maps each type to its class; :func:`parse_event` reads a JSON object
into the right class; :data:`AnyCaseEvent` is the union for pydantic fields.

The wire format is the one writers have always produced:

* ``data`` holds exactly the keys the writer set: a payload dumps only the fields that
  were given (parsed or constructed), so an absent optional key stays absent and a key
  written as ``null`` stays ``null``. Writers build payloads with :meth:`EventData.of`,
  which leaves out ``None`` values as the old writers did.
* Leniency (history demands it): every payload accepts and keeps keys it does not know
  (``extra="allow"``: an older or newer writer's extra field round-trips), and every field
  an old writer may have left out is optional. Required are only the fields every writer
  has always written (e.g. ``dispatched``: department, work_order_id).
* ``report``, ``placement`` and ``decision`` are embedded wire documents (grid.report/1,
  the locator's placement, the rules' decision) kept as their JSON objects: readers that
  need the full model parse them with :meth:`ReportedData.parsed_report` etc.
* A type this reader does not know (a newer writer) parses as :class:`UnknownEvent`, its
  ``data`` kept as given: the read side folds it as a plain state change. Its envelope is
  still this version's (``grid.case-event/1``: known states and roles); a new state or role
  is a new schema version. A body that does not parse is a ValueError (pydantic's
  ValidationError): the store's writer skips that one record and logs it.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from types import UnionType
from typing import (
    TYPE_CHECKING,
    Annotated,
    Any,
    Literal,
    Self,
    Union,
    cast,
    get_args,
    get_origin,
)

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    SerializerFunctionWrapHandler,
    Tag,
    TypeAdapter,
    model_serializer,
)
from pydantic.config import JsonSchemaExtraCallable

from grid.wire import CASE_EVENT_SCHEMA, CaseState, Priority, Role, Satisfaction, Tier, Wire

if TYPE_CHECKING:
    from grid.models import Decision, Placement, Report

# a time inside ``data``: written with ``datetime.isoformat()`` (``+00:00``, never ``Z``)
IsoTime = Annotated[datetime, PlainSerializer(lambda v: v.isoformat(), return_type=str)]
Doc = dict[str, Any]  # an embedded wire document, as JSON


class _AsWritten(BaseModel):
    """Dumps only the fields that were set (given when built, or present when parsed) and
    keeps unknown keys: what was read is what is written back."""

    model_config = ConfigDict(extra="allow", frozen=True)

    @model_serializer(mode="wrap")
    def _as_written(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        out: dict[str, Any] = handler(self)
        keep = self.model_fields_set | set(self.__pydantic_extra__ or ())
        return {k: v for k, v in out.items() if k in keep}

    @classmethod
    def of(cls, **fields: Any) -> Self:
        """The payload of the given fields that are not ``None`` (absent on the wire, as
        writers have always done); a name the model does not define is a TypeError."""
        unknown = fields.keys() - _field_names(cls)
        if unknown:
            raise TypeError(f"{cls.__name__} has no field(s) {', '.join(sorted(unknown))}")
        return cls(**{k: v for k, v in fields.items() if v is not None})


@cache
def _field_names(cls: type[BaseModel]) -> frozenset[str]:
    return frozenset(cls.model_fields)


class EventData(_AsWritten):
    """Base payload: every event a command causes carries its ``command_id``."""

    command_id: str | None = None


class LegalStageOpened(_AsWritten):
    """A legal-process stage opening (``dispatched.legal_stage``, ``legal_stage_closed.next``)."""

    stage: str
    name_zh: str = ""
    name_en: str = ""
    limit: str = ""
    closes_when: str = ""
    opened_at: IsoTime
    due: IsoTime


class PartOpened(_AsWritten):
    """An assisting department's work order opened by the first dispatch (协办)."""

    department: str
    unit: str | None = None
    unit_name: str | None = None
    work_order_id: str


class ReportedData(EventData):
    """The opening report, where it lies and its classification (``type_code``, ``category``
    and ``kind`` are written even when ``None``). ``via``: the intake principal."""

    report: Doc
    placement: Doc
    type_code: str | None = None
    category: str | None = None
    kind: str | None = None
    via: str | None = None

    def parsed_report(self) -> Report:
        from grid.models import Report

        return Report.model_validate(self.report)

    def parsed_placement(self) -> Placement:
        from grid.models import Placement

        return Placement.model_validate(self.placement)


class DecisionData(EventData):
    """An event carrying the rules' decision (absent on a ``filed`` without one)."""

    decision: Doc | None = None

    def parsed_decision(self) -> Decision | None:
        from grid.models import Decision

        return None if self.decision is None else Decision.model_validate(self.decision)


class TransferredData(DecisionData):
    services: list[str] = Field(default_factory=list)  # numbers: 110, 119, 120


class ClassifiedData(DecisionData):
    """Manual triage (``classified``) or the grid's follow-up of an emergency
    (``follow_up_opened``: ``transferred_to`` the services' numbers)."""

    type_code: str | None = None
    transferred_to: list[str] | None = None


class EvidenceData(EventData):
    evidence_photos: list[str] = Field(default_factory=list)


class SelfClosedData(DecisionData, EvidenceData):
    """Self-disposal: with the decision at intake; without it for ``self_dispose``."""


class DispatchedData(EventData):
    """A work order: the lead's; on a joint case's first dispatch the assisting parts; on a
    legal-process case's first dispatch its first stage."""

    department: str
    unit: str | None = None
    unit_name: str | None = None
    work_order_id: str
    priority: Priority | None = None
    tier: Tier | None = None
    assisting: list[PartOpened] | None = None
    legal_stage: LegalStageOpened | None = None


class LegalStageClosedData(EvidenceData):
    stage: str
    due: IsoTime | None = None
    on_time: bool | None = None
    note: str = ""
    by_disposal: bool | None = None
    next: LegalStageOpened | None = None


class LeadDisposedData(EvidenceData):
    waiting_for: list[str] = Field(default_factory=list)  # assisting departments still open


class PartData(EvidenceData):
    """An assisting part reported done (``part_reported``) or closed out by the lead."""

    department: str | None = None
    unit: str | None = None
    work_order_id: str


class CallbackData(EventData):
    satisfaction: Satisfaction
    comment: str = ""
    reopened: bool = False
    note: str | None = None


class DepartmentData(EventData):
    """``returned``: the department that returned it."""

    department: str | None = None


class ReworkData(EvidenceData):
    department: str | None = None


class ReopenedData(EventData):
    department: str | None = None
    deadlines: dict[str, IsoTime] = Field(default_factory=dict)  # new dispose / verify


class ExtensionRequestedData(EventData):
    minutes: int


class ExtensionGrantedData(EventData):
    minutes: int | None = None
    deadlines: dict[str, IsoTime] = Field(default_factory=dict)


class SupervisedData(EventData):
    level: Tier
    key: str  # f"{stage}@{level}": one order per stage and level
    stage: str | None = None


class WarnedData(EventData):
    stage: str | None = None


class MergedData(EventData):
    report_id: str
    reporter_id: str | None = None
    fingerprint: str | None = None  # absent on merges recorded before fingerprints


class CommandRejectedData(EventData):
    action: str | None = None
    refused: Literal["forbidden", "conflict"] | None = None  # absent when the case is unknown


class CaseEvent(Wire):
    """One state change of a case: the envelope of every event on grid.case-events.v1.

    Instances are always of a subclass (one per type, :data:`EVENT_TYPES`); build them with
    the subclass or :func:`make_event`, read them with :func:`parse_event` (which
    ``CaseEvent.model_validate`` calls)."""

    schema_: Literal["grid.case-event/1"] = Field(CASE_EVENT_SCHEMA, alias="schema")
    event_id: str  # f"{case_id}:{seq}" — idempotent key
    case_id: str
    seq: int
    type: str
    state_from: CaseState | None
    state_to: CaseState
    actor: str
    role: Role
    at: datetime
    reason: str = ""
    data: EventData = Field(default_factory=EventData)
    district: str | None = None
    street: str | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @classmethod
    def model_validate(cls, obj: Any, **kw: Any) -> Self:
        """On ``CaseEvent`` itself: :func:`parse_event` (the class ``type`` names)."""
        if cls is CaseEvent:
            return cast(Self, _ADAPTER.validate_python(obj, **kw))
        return super().model_validate(obj, **kw)

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, **kw: Any) -> Self:
        if cls is CaseEvent:
            return cast(Self, _ADAPTER.validate_json(json_data, **kw))
        return super().model_validate_json(json_data, **kw)


class ReportedEvent(CaseEvent):
    type: Literal["reported"]
    data: ReportedData


class TransferredEvent(CaseEvent):
    type: Literal["transferred"]
    data: TransferredData


class DecidedEvent(CaseEvent):
    """Triage waiting for a person, or a filing (with the decision when it is made)."""

    type: Literal["triaged", "filed"]
    data: DecisionData


class ClassifiedEvent(CaseEvent):
    type: Literal["classified", "follow_up_opened"]
    data: ClassifiedData


class SelfClosedEvent(CaseEvent):
    type: Literal["self_closed"]
    data: SelfClosedData


class DispatchedEvent(CaseEvent):
    type: Literal["dispatched", "redispatched"]
    data: DispatchedData


class LegalStageClosedEvent(CaseEvent):
    type: Literal["legal_stage_closed"]
    data: LegalStageClosedData


class LeadDisposedEvent(CaseEvent):
    type: Literal["lead_disposed"]
    data: LeadDisposedData


class EvidenceEvent(CaseEvent):
    """Disposal (the department's evidence) and verification (the supervisor's photo)."""

    type: Literal["disposed", "verified"]
    data: EvidenceData


class PartEvent(CaseEvent):
    type: Literal["part_reported", "part_closed_out"]
    data: PartData


class CallbackEvent(CaseEvent):
    type: Literal["callback"]
    data: CallbackData


class ReopenedEvent(CaseEvent):
    type: Literal["reopened"]
    data: ReopenedData


class ReturnedEvent(CaseEvent):
    type: Literal["returned"]
    data: DepartmentData


class ReworkEvent(CaseEvent):
    type: Literal["rework"]
    data: ReworkData


class ExtensionRequestedEvent(CaseEvent):
    type: Literal["extension_requested"]
    data: ExtensionRequestedData


class ExtensionGrantedEvent(CaseEvent):
    type: Literal["extension_granted"]
    data: ExtensionGrantedData


class SupervisedEvent(CaseEvent):
    type: Literal["supervised"]
    data: SupervisedData


class WarnedEvent(CaseEvent):
    type: Literal["warned"]
    data: WarnedData


class MergedEvent(CaseEvent):
    type: Literal["merged"]
    data: MergedData


class CommandEvent(CaseEvent):
    """Events whose payload is only the command that caused them."""

    type: Literal["accepted", "rejected", "closed", "arbitration", "extension_denied"]
    data: EventData


class CommandRejectedEvent(CaseEvent):
    """An illegal command (``seq`` 0): history only, never a state change."""

    type: Literal["command_rejected"]
    data: CommandRejectedData


def _not_a_known_type(schema: dict[str, Any]) -> None:
    schema["properties"]["type"]["not"] = {"enum": sorted(EVENT_TYPES)}


class UnknownEvent(CaseEvent):
    """A type this reader does not know (a newer writer): ``data`` kept as given (every key
    an extra of :class:`EventData`). Folded as a plain state change; never written here."""

    model_config = ConfigDict(json_schema_extra=cast(JsonSchemaExtraCallable, _not_a_known_type))

    data: EventData


KNOWN: tuple[type[CaseEvent], ...] = (
    ReportedEvent, TransferredEvent, DecidedEvent, ClassifiedEvent, SelfClosedEvent,
    DispatchedEvent, LegalStageClosedEvent, LeadDisposedEvent, EvidenceEvent, PartEvent,
    CallbackEvent, ReopenedEvent, ReturnedEvent, ReworkEvent, ExtensionRequestedEvent,
    ExtensionGrantedEvent, SupervisedEvent, WarnedEvent, MergedEvent, CommandEvent,
    CommandRejectedEvent,
)
# event type -> its class (a class with a Literal of several types serves each of them)
EVENT_TYPES: dict[str, type[CaseEvent]] = {
    t: cls for cls in KNOWN for t in get_args(cls.model_fields["type"].annotation)}


def _tag(v: Any) -> str:
    """The union member for ``v`` (a JSON object or an event): its type's class name."""
    if isinstance(v, CaseEvent):
        return type(v).__name__
    t = v.get("type") if isinstance(v, dict) else None
    return EVENT_TYPES.get(t, UnknownEvent).__name__ if isinstance(t, str) else "UnknownEvent"


if TYPE_CHECKING:
    AnyCaseEvent = CaseEvent
else:
    AnyCaseEvent = Annotated[
        Union[tuple(Annotated[c, Tag(c.__name__)] for c in (*KNOWN, UnknownEvent))],  # noqa: UP007
        Discriminator(_tag)]

_ADAPTER: TypeAdapter[CaseEvent] = TypeAdapter(AnyCaseEvent)


def event_json_schema() -> dict[str, Any]:
    """The JSON Schema of a case event: one of the event classes, chosen by ``type``."""
    s = _ADAPTER.json_schema(by_alias=True, mode="validation")
    s["title"] = "CaseEvent"
    s["description"] = ("One state change of a case (grid.case-events.v1): the envelope with "
                        "the data of its type; an unknown type is read as UnknownEvent.")
    return s


def parse_event(obj: Any) -> CaseEvent:
    """A case event from its JSON object (or an event): the class its ``type`` names,
    :class:`UnknownEvent` for a type this reader does not know."""
    return _ADAPTER.validate_python(obj)


def parse_event_json(raw: str | bytes | bytearray) -> CaseEvent:
    """A case event from its JSON text."""
    return _ADAPTER.validate_json(raw)


def dump_event(e: CaseEvent) -> dict[str, Any]:
    """The JSON object of ``e`` as it goes on the wire."""
    return e.model_dump(mode="json", by_alias=True)


def make_event(kind: str, **envelope: Any) -> CaseEvent:
    """The event of type ``kind`` from its envelope fields and ``data`` (a payload of the
    type's payload model, or a dict of its fields). An unknown kind is a KeyError: writers
    write only the types above."""
    cls = EVENT_TYPES[kind]
    return cls(type=kind, **envelope)


@cache
def payload_model(kind: str) -> type[EventData]:
    """The payload model of event type ``kind``."""
    ann = EVENT_TYPES[kind].model_fields["data"].annotation
    assert isinstance(ann, type) and issubclass(ann, EventData)
    return ann


def _type_name(ann: Any) -> str:
    """A short readable form of a payload field's type (for the docs' table)."""
    args = get_args(ann)
    origin = get_origin(ann)
    if origin is Annotated:
        return _type_name(args[0])
    if origin in (Union, UnionType):
        return " | ".join(_type_name(a) for a in args if a is not type(None))
    if origin is Literal:
        return " \\| ".join(repr(a) for a in args).replace("'", "")
    if origin is dict and args[1] is Any:
        return "object"
    if origin in (list, dict):
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in args)}]"
    return ann.__name__ if isinstance(ann, type) else str(ann)


def event_types_markdown() -> str:
    """The event types and their payload fields as a Markdown table (README and
    docs/architecture.md carry it; a unit test checks they match). ``?``: optional."""
    rows = ["| type | class | `data` fields (`?` optional; all payloads also `command_id?`) |",
            "| --- | --- | --- |"]
    by_class: dict[type[CaseEvent], list[str]] = {}
    for t, cls in EVENT_TYPES.items():
        by_class.setdefault(cls, []).append(t)
    for cls, types in by_class.items():
        model = payload_model(types[0])
        fields = [f"`{name}{'' if f.is_required() else '?'}`: {_type_name(f.annotation)}"
                  for name, f in model.model_fields.items() if name != "command_id"]
        rows.append(f"| {' · '.join(f'`{t}`' for t in types)} | `{cls.__name__}` "
                    f"(`{model.__name__}`) | {', '.join(fields) or '—'} |")
    rows.append("| any other | `UnknownEvent` (`EventData`) | every key kept as given |")
    rows.append("")
    for nested in (PartOpened, LegalStageOpened):
        fields = [f"`{name}{'' if f.is_required() else '?'}`: {_type_name(f.annotation)}"
                  for name, f in nested.model_fields.items()]
        rows += [f"`{nested.__name__}`: {', '.join(fields)}.", ""]
    rows.append("A `datetime` in `data` is ISO 8601 text with its UTC offset; an `object` is "
                "an embedded document kept as JSON (`report`: grid.report/1).")
    return "\n".join(rows) + "\n"
