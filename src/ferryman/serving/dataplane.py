"""The protocol-independent data plane: the one place where serving work happens.

REST and gRPC only translate to and from it. It owns readiness (loaded and answering its
golden requests, not draining), admission, deadlines, the response cache and the batcher.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType

from ferryman.config import ServingSettings
from ferryman.engines import ModelEngine
from ferryman.errors import InvalidInput, ModelNotFound, Unavailable, VersionNotFound
from ferryman.names import validate_name
from ferryman.protocol.codecs import TensorLimits, input_specs
from ferryman.protocol.v2 import MetadataModelResponse, MetadataServerResponse, MetadataTensor
from ferryman.reference import ReferenceData, input_guide
from ferryman.serving.batching import Arrays, Batcher, BatchPolicy
from ferryman.serving.cache import ResponseCache, tensor_key
from ferryman.serving.classes import Reading, class_outputs
from ferryman.serving.cpus import fit
from ferryman.serving.metrics import ReplicaIdentity, ReplicaMetrics
from ferryman.serving.payloads import Payload, PayloadLog, PayloadPolicy
from ferryman.serving.readiness import replay_golden
from ferryman.signature import Signature

logger = logging.getLogger(__name__)

EXTENSIONS = ("binary_tensor_data", "tf_serving_predict", "plain_predict", "grpc")


def is_batchable(signature: Signature) -> bool:
    """True when every input and every known output has a dynamic first (batch) axis."""
    inputs_ok = all(spec.shape and spec.shape[0] == -1 for spec in signature.inputs)
    outputs_ok = all(spec.shape is None or spec.shape[:1] == (-1,) for spec in signature.outputs)
    return bool(signature.inputs) and inputs_ok and outputs_ok


class DataPlane:
    """Serves one variant: admits requests, batches them, knows whether it is ready."""

    def __init__(
        self,
        identity: ReplicaIdentity,
        runtime: ModelEngine,
        settings: ServingSettings,
        reference: ReferenceData | None = None,
        cache: ResponseCache | None = None,
    ) -> None:
        self.identity = identity
        self.signature = runtime.metadata()
        self.settings = settings
        self.metrics = ReplicaMetrics(identity)
        self.labels = reference.labels if reference is not None else ()
        self._runtime = runtime
        self._reference = reference
        self._cache = cache
        self._cache_scope = f"{identity.model}/{identity.version}/{identity.variant}"
        self.threads = fit(settings)
        """Model calls at once and intra-op threads per call (see :mod:`.cpus`)."""
        self._executor = ThreadPoolExecutor(
            max_workers=self.threads.calls, thread_name_prefix="model"
        )
        self._admitted = 0
        self._is_batchable = is_batchable(self.signature)
        self.input_specs = input_specs(self.signature)
        """The inputs by name, in graph order, as requests are checked against them."""
        self.tensor_limits = TensorLimits(
            max_elements=settings.max_body_bytes,  # a numeric element takes a byte at the least
            max_string_elements=settings.max_string_elements,
        )
        """The most elements one input tensor may declare."""
        policy = BatchPolicy(
            max_batch_size=settings.max_batch_size,
            max_delay_s=settings.max_delay_ms / 1000,
            queue_capacity=settings.queue_capacity,
            is_batchable=self._is_batchable,
            subject=identity.describe(),
            max_calls=self.threads.calls,
        )
        self._batcher = Batcher(runtime, self._executor, policy, self.metrics, self._arrivals)
        self.classes = class_outputs(
            self.signature,
            self.labels,
            reference.label_values if reference is not None else (),
        )
        """How the model's outputs read as classes (None: no classifier)."""
        counted = 0 if self.classes is None else self.classes.counted
        self._class_counters = self.metrics.prediction_counters(counted) if counted else []
        self.payloads = PayloadLog(
            PayloadPolicy(
                settings.payload_log_capacity,
                settings.payload_input_sample_rate,
                settings.payload_max_input_bytes,
                settings.payload_sample_rate,
            ),
            tuple(reference.input_summaries) if reference is not None else (),
        )
        self.metrics.payload_outcomes = self.payloads.outcomes
        self.metrics.payload_sample_rate = settings.payload_sample_rate
        guide = input_guide(reference) if reference is not None else {}
        self._metadata_parameters: dict[str, str] = {"variant": identity.variant}
        """The V2 metadata's parameters: the variant, and what the inputs take (JSON text,
        as V2 parameters are scalars): an example of each and its range of values."""
        for key in ("example", "range"):
            found = {name: about[key] for name, about in guide.items() if key in about}
            if found:
                self._metadata_parameters[f"input_{key}"] = json.dumps(found)
        self.not_ready_reason: str | None = "the model is loading"
        self.is_draining = False
        self.in_flight = 0
        """Inference requests between arrival at the edge and their answer."""
        self.metrics.in_flight = lambda: self.in_flight  # read at scrape time

    def _arrivals(self) -> int:
        return self._admitted

    @property
    def is_ready(self) -> bool:
        return self.not_ready_reason is None and not self.is_draining

    async def load(self) -> None:
        """Load the model and replay the golden requests; failures leave it not ready."""
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        try:
            await loop.run_in_executor(self._executor, self._runtime.load)
        except Exception as exc:  # the reason is what readiness reports
            self._set_not_ready(f"the model failed to load: {type(exc).__name__}: {exc}")
            return
        self.metrics.load_s.set(time.monotonic() - started)
        reason = await loop.run_in_executor(
            self._executor, replay_golden, self._runtime, self._reference
        )
        if reason is not None:
            self._set_not_ready(f"warm-up failed: {reason}")
            return
        self._batcher.start()
        self.not_ready_reason = None
        self.metrics.is_ready.set(1)
        logger.info("%s is ready", self.identity.describe())

    def _set_not_ready(self, reason: str) -> None:
        self.not_ready_reason = reason
        self.metrics.is_ready.set(0)
        logger.error("%s is not ready: %s", self.identity.describe(), reason)

    async def unload(self) -> None:
        """Stop batching, release the model and the executor."""
        self.is_draining = True
        self.metrics.is_ready.set(0)
        await self._batcher.stop()
        if self._cache is not None:
            await self._cache.close()
        await asyncio.get_running_loop().run_in_executor(self._executor, self._runtime.unload)
        self._executor.shutdown(wait=False)

    def check_model(self, name: str, version: str | None = None) -> None:
        """Raise unless ``name`` (and ``version``, when given) is what this replica serves."""
        identity = self.identity
        if name == identity.model and (version is None or version == identity.version):
            return  # the served name passed validation when the replica was made
        validate_name(name, "model name")
        if name != self.identity.model:
            raise ModelNotFound(
                f"model {name!r} is not served here; this replica serves {self.identity.model!r}"
            )
        if version is not None and version != self.identity.version:
            raise VersionNotFound(
                f"version {version[:64]!r} of {name!r} is not served here; "
                f"this replica serves version {self.identity.version}"
            )

    def check_ready(self) -> None:
        """Raise 503 with the reason unless the replica is ready."""
        if self.is_draining:
            raise Unavailable(f"{self.identity.describe()} is draining; retry elsewhere", 1)
        if self.not_ready_reason is not None:
            raise Unavailable(
                f"{self.identity.describe()} is not ready: {self.not_ready_reason}", 1
            )

    def admit(self) -> Admission:
        """Admit one inference request: ``with plane.admit() as deadline`` (monotonic s)."""
        self.check_ready()
        self._admitted += 1
        return Admission(self, time.monotonic() + self.settings.request_timeout_s)

    def _release(self) -> None:
        self._admitted -= 1

    @property
    def queued(self) -> int:
        """Requests waiting for a model call."""
        return self._batcher.queued

    async def infer(
        self, inputs: Arrays, deadline: float, payload: Payload | None = None
    ) -> Arrays:
        """Run the model on one request's validated inputs; note them in ``payload``.

        A classifier's answer is read as classes once (``payload.reading``): the payload
        log keeps that reading's labels and ``/predict`` answers with it. The top-1 classes
        of a request pinned to the version (``payload.pinned``) are not counted: its client
        chose this variant, and a flood of them would move the prediction drift a rollout
        judges.
        """
        if self._is_batchable and len(inputs) > 1:
            rows = {int(array.shape[0]) for array in inputs.values()}
            if len(rows) > 1:
                raise InvalidInput(
                    f"inputs disagree on the batch size (first axis): {sorted(rows)}; "
                    "send the same number of rows for every input"
                )
        if self._cache is None:
            outputs = await self._batcher.submit(inputs, deadline)
        else:
            outputs = await self._cached_outputs(self._cache, inputs, deadline)
        reading = None if self.classes is None else self.classes.read(outputs)
        pinned = payload is not None and payload.pinned
        if reading is not None and reading.columns is not None and not pinned:
            self._count(reading)
        if payload is not None:
            self.payloads.describe(payload, inputs, reading)
        return outputs

    async def _cached_outputs(
        self, cache: ResponseCache, inputs: Arrays, deadline: float
    ) -> Arrays:
        key = tensor_key(self._cache_scope, inputs)
        cached = await cache.get(key)
        if cached is not None:
            self.metrics.cache_hits.inc()
            return cached
        self.metrics.cache_misses.inc()
        outputs = await self._batcher.submit(inputs, deadline)
        await cache.put(key, outputs)
        return outputs

    def _count(self, reading: Reading) -> None:
        """Count each row's top-1 class (the prediction drift signal)."""
        counters = self._class_counters
        if reading.scores is not None and reading.scores.shape[1] == len(counters):
            for index in reading.columns or ():
                counters[index].value += 1

    def server_metadata(self) -> MetadataServerResponse:
        """The V2 server metadata: who answers and which extensions it speaks."""
        try:
            version = importlib.metadata.version("ferryman")
        except importlib.metadata.PackageNotFoundError:  # running from a source tree
            version = "0+unknown"
        return MetadataServerResponse("ferryman", version, list(EXTENSIONS))

    def model_metadata(self) -> MetadataModelResponse:
        """The V2 model metadata of the served variant."""
        return MetadataModelResponse(
            name=self.identity.model,
            versions=[self.identity.version],
            platform="onnxruntime_onnx",
            inputs=[
                _tensor(spec.name, spec.datatype, spec.shape) for spec in self.signature.inputs
            ],
            outputs=[_tensor(s.name, s.datatype, s.shape) for s in self.signature.outputs],
            parameters=self._metadata_parameters,
        )


class Admission:
    """An admitted request's block: yields its deadline, releases it on the way out.

    A class rather than ``@contextmanager``: this runs once per request, and a generator
    costs three times as much.
    """

    __slots__ = ("_plane", "deadline")

    def __init__(self, plane: DataPlane, deadline: float) -> None:
        self._plane = plane
        self.deadline = deadline

    def __enter__(self) -> float:
        return self.deadline

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._plane._release()


def _tensor(name: str, datatype: str, shape: tuple[int, ...] | None) -> MetadataTensor:
    return MetadataTensor(name=name, datatype=datatype, shape=list(shape or ()))
