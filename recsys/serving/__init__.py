"""The REST service: the FastAPI app (`app.create_app`), the engine it serves (`engine`),
API keys (`keys`) and batched request metrics (`metrics`).

Start it with ``python -m recsys serve``; `recsys.serving.app` lists the endpoints.
"""
