"""The data plane: a replica serving one variant over the Open Inference Protocol V2.

A request takes few hops, one file each: ``http.py`` (or ``grpc.py``) translates →
``dataplane.py`` admits it and owns readiness → ``batching.py`` groups it with others →
``ferryman.engines.onnx`` runs the model. ``edge.py`` wraps the app (header limits,
``ferryman-model-version`` / ``ferryman-request-id`` on every response, metrics), and
``server.py`` runs it on uvicorn with a graceful drain on SIGTERM.

Endpoints: ``GET /v2/health/live``, ``GET /v2/health/ready``, ``GET /v2``,
``GET /v2/models/{m}[/versions/{v}]``, ``GET …/ready``, ``POST …/infer`` (JSON tensors and
the binary-tensor extension), ``POST /v1/models/{m}:predict`` (TF-Serving),
``POST /predict`` (images or JSON rows → labels and probabilities), ``GET /metrics``; and
``inference.GRPCInferenceService`` when ``serving.grpc_port`` is set.

Run one with ``ferryman serve digits@production`` or ``ferryman serve model.onnx``; in
Python, ``create_app(settings, runtime, identity, reference)`` from ``ferryman.serving.app``.
"""
