"""cnnviz web layer: thin FastAPI routers over cnncore."""
