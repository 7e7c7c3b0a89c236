"""Open Inference Protocol V2 types: one type per protocol concept.

Requests come from strangers, so they are pydantic models with strict fields. Inference
responses are typed dicts, which ``orjson`` writes directly (numpy arrays included) and
which cost no more than the dicts they are: the response path is the hot one and needs no
validation. Metadata responses are frozen dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NotRequired, TypedDict

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

Parameters = dict[str, StrictStr | StrictInt | StrictBool | float]
"""Free-form protocol parameters: scalar values only (``binary_data_size``, ``binary_data``)."""

MAX_TENSORS = 64
MAX_RANK = 16


class RequestInput(BaseModel):
    """One input tensor of an inference request; ``data`` is absent in binary mode."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: StrictStr = Field(min_length=1, max_length=256)
    shape: list[StrictInt] = Field(max_length=MAX_RANK)
    datatype: StrictStr = Field(max_length=16)
    parameters: Parameters | None = None
    data: list[Any] | None = None


class RequestOutput(BaseModel):
    """An output the client asks for, with how it wants it (``binary_data``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: StrictStr = Field(min_length=1, max_length=256)
    parameters: Parameters | None = None


class InferenceRequest(BaseModel):
    """``POST /v2/models/{model}/infer``: named input tensors and the outputs wanted."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: StrictStr | None = Field(default=None, max_length=256)
    parameters: Parameters | None = None
    inputs: list[RequestInput] = Field(min_length=1, max_length=MAX_TENSORS)
    outputs: list[RequestOutput] | None = Field(default=None, max_length=MAX_TENSORS)


class ResponseOutput(TypedDict):
    """One output tensor; ``data`` is flat (a numpy array or strings), absent in binary mode,
    where ``parameters`` hold its ``binary_data_size``."""

    name: str
    datatype: str
    shape: list[int]
    data: NotRequired[Any]
    parameters: NotRequired[dict[str, Any]]


class InferenceResponse(TypedDict):
    """The answer to an inference request."""

    model_name: str
    model_version: str
    id: str
    outputs: list[ResponseOutput]
    parameters: NotRequired[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class MetadataTensor:
    """A tensor as the metadata endpoint describes it (``-1`` for a dynamic axis)."""

    name: str
    datatype: str
    shape: list[int]


@dataclass(frozen=True, slots=True)
class MetadataModelResponse:
    """``GET /v2/models/{model}[/versions/{version}]``."""

    name: str
    versions: list[str]
    platform: str
    inputs: list[MetadataTensor]
    outputs: list[MetadataTensor]
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MetadataServerResponse:
    """``GET /v2``: who answers and which protocol extensions it speaks."""

    name: str
    version: str
    extensions: list[str]
