"""The REST and gRPC services: the FastAPI app (`app.create_app`) and the gRPC servicer
(`grpc_service`, protocol in `protos/workbench.proto`), two front ends of one core (`service`: the
calls, their limits, the key check, request metrics), the engine they serve (`engine`, followed by
`follow`), API keys (`keys`) and batched request metrics (`metrics`).

Start them with ``python -m recsys serve`` and ``python -m recsys serve-grpc``;
`recsys.serving.app` lists the endpoints, `recsys.serving.grpc_service` the calls.
"""
