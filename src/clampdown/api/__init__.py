"""The HTTP service: FastAPI routers under /api/v1, health endpoints, the embedded worker."""
